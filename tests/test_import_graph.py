"""No import cycles among ganlab's own modules (ganlab/ and the built-in plugins in plugins/).

The graph is read from the source with ``ast``, so it sees what a run could
import, not only what one test happened to: imports at the top of a module and
inside functions both count (a function-level import hides a cycle from the
interpreter at start-up, not from the design). ``from x import y`` where ``y``
is a submodule is an edge to ``x.y``; otherwise to ``x``. Relative imports are
resolved against the importing module.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> import name
PACKAGES = {"ganlab": "ganlab", "plugins": "ganlab_plugins"}
#: folders inside those that are not part of the package (separately installable examples)
SKIPPED = ("examples",)

Graph = dict[str, set[str]]


def module_files(root: Path, packages: Mapping[str, str]) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, whether it is a package's ``__init__``)."""
    found: dict[str, tuple[Path, bool]] = {}
    for folder, import_name in packages.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(base).with_suffix("")
            if any(part in SKIPPED for part in relative.parts):
                continue
            parts = [import_name, *(p for p in relative.parts if p != "__init__")]
            found[".".join(parts)] = (path, path.name == "__init__.py")
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    anchor = module.split(".") if is_package else module.split(".")[:-1]
    anchor = anchor[: len(anchor) - (node.level - 1)]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _imported(module: str, is_package: bool, tree: ast.AST) -> Iterator[str]:
    """Every module name an import statement anywhere in ``tree`` names (functions included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, is_package, node)
            for alias in node.names:
                yield f"{source}.{alias.name}"  # a submodule, or a name: _owner trims it back to source


def _owner(name: str, known: Mapping[str, object]) -> str | None:
    """The longest known module that ``name`` is, or lies inside (``pkg.mod.attr`` -> ``pkg.mod``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, packages: Mapping[str, str]) -> Graph:
    """Module -> the project modules it imports (other projects' modules are left out)."""
    modules = module_files(root, packages)
    graph: Graph = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for target in _imported(name, is_package, tree):
            owner = _owner(target, modules)
            if owner is not None and owner != name:
                graph[name].add(owner)
    return graph


def _components(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def _path_back(graph: Graph, members: set[str], start: str) -> list[str]:
    """The shortest path start -> ... -> start inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is on no cycle of its component")  # cannot happen for a real component


def import_cycles(graph: Graph) -> list[list[str]]:
    """Cycles as paths ``[a, b, ..., a]``: for each group of mutually importing modules, enough
    cycles that every module of the group is named in one."""
    cycles = []
    for members in _components(graph):
        named: set[str] = set()
        for member in members:
            if member not in named:
                cycle = _path_back(graph, set(members), member)
                named.update(cycle)
                cycles.append(cycle)
    return cycles


def describe(cycles: list[list[str]]) -> str:
    return "\n".join("  " + " -> ".join(cycle) for cycle in cycles)


def test_ganlab_and_its_builtin_plugins_have_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert "ganlab.plugins" in graph and "ganlab_plugins.heads" in graph  # the graph did find the sources
    assert "ganlab.registry" in graph["ganlab.plugins"]
    cycles = import_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s); break each (move the shared code down a layer):\n" + describe(cycles)


def test_no_module_below_the_command_line_imports_it() -> None:
    """The CLI sits on top: the core and the plugins never import ``ganlab.cli`` (only the
    ``python -m ganlab`` entry point does), so the engine, studies and record work without Typer."""
    graph = import_graph(ROOT, PACKAGES)
    assert "ganlab.studies.worker" in graph and "ganlab.cli.sweep" in graph
    upward = sorted(f"{module} -> {target}" for module, targets in graph.items()
                    if not module.startswith("ganlab.cli") and module != "ganlab.__main__"
                    for target in targets if target == "ganlab.cli" or target.startswith("ganlab.cli."))
    assert not upward, "imports into ganlab.cli from below it:\n  " + "\n  ".join(upward)


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def test_the_checker_finds_cycles_hidden_in_functions_submodule_imports_and_relative_imports(tmp_path: Path) -> None:
    _write(tmp_path / "src", {
        "__init__.py": "",
        # a <-> b: b's import is inside a function, and relative
        "a.py": "import pkg.b\n",
        "b.py": "def later():\n    from . import a\n",
        # c -> sub.d -> sub -> c: 'from pkg.sub import d' names the submodule d; '..' climbs out of sub
        "c.py": "from pkg.sub import d\n",
        "sub/__init__.py": "from .. import c\n",
        "sub/d.py": "from pkg.sub import helper_name\n",
        # no cycle: e imports a name of f, f imports nothing of ours
        "e.py": "from pkg.f import value\nimport os\n",
        "f.py": "value = 1\n",
    })
    graph = import_graph(tmp_path, {"src": "pkg"})
    assert graph["pkg.c"] == {"pkg.sub.d"} and graph["pkg.e"] == {"pkg.f"}
    cycles = import_cycles(graph)
    assert sorted(cycles) == [["pkg.a", "pkg.b", "pkg.a"], ["pkg.c", "pkg.sub.d", "pkg.sub", "pkg.c"]]
    assert "pkg.a -> pkg.b -> pkg.a" in describe(cycles)


def test_the_checker_passes_a_package_without_cycles(tmp_path: Path) -> None:
    _write(tmp_path / "src", {
        "__init__.py": "from .core import run\n",
        "core.py": "from . import util\n\ndef run():\n    from pkg.util import helper\n",
        "util.py": "import json\n",
    })
    graph = import_graph(tmp_path, {"src": "pkg"})
    assert graph == {"pkg": {"pkg.core"}, "pkg.core": {"pkg.util"}, "pkg.util": set()}
    assert import_cycles(graph) == []
