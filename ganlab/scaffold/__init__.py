"""Templates behind ``ganlab new-plugin``: a working plugin package per component kind.

A generated package is what docs/plugins.md describes: a ``pyproject.toml``
with one entry point in the ``ganlab`` group, a light registration module
(``plugin.py``), the component's implementation in a module the factory
imports (``impl.py``), a README and a test written with :mod:`ganlab.testing`
that passes as soon as the package is installed.

The templates are files under ``templates/``: ``shared/`` for the files every
kind has, ``<kind>/`` for the implementation, the test body and a few values
(``values.toml``). They use :class:`string.Template` (``$name``) so that the
Python code in them needs no brace escaping. This module imports nothing heavy.

A package of several kinds (``--kind head --kind loss``) is one plugin, NAME, with
one component per kind: the first is named NAME, each other one NAME-KIND
(:func:`component_names`); ``lifecycle`` adds opt-in hooks to the same plugin.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from string import Template

from ganlab import __version__
from ganlab.errors import GanlabError, did_you_mean

KINDS = ("head", "loss", "architecture", "dataset", "metric", "regularizer", "augmentation", "optimizer", "lifecycle")
KIND_ALIASES = {"arch": "architecture", "objective": "loss", "data": "dataset", "reg": "regularizer",
                "augment": "augmentation", "optimiser": "optimizer"}
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_MAX_NAME = 40


@dataclass(frozen=True)
class Names:
    """Every name derived from the one the user typed."""

    component: str  # "fancy-head": the component and entry-point name
    distribution: str  # "ganlab-fancy-head": the directory and the pip name
    package: str  # "ganlab_fancy_head": the import package


def names_for(name: str) -> Names:
    """Validate ``name`` and derive the package's names; refuse with one clear line."""
    base = name[len("ganlab-"):] if name.startswith("ganlab-") else name
    if not _NAME.match(base) or len(base) > _MAX_NAME:
        raise GanlabError(
            f"plugin name '{name}' is not valid: use lowercase letters, digits and single hyphens, "
            f"starting with a letter, at most {_MAX_NAME} characters (e.g. 'tempered-softmax')"
        )
    return Names(component=base, distribution=f"ganlab-{base}", package=f"ganlab_{base.replace('-', '_')}")


def normalise_kind(kind: str) -> str:
    kind = KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise GanlabError(f"unknown plugin kind '{kind}'{did_you_mean(kind, KINDS)} (valid: {', '.join(KINDS)})")
    return kind


def _template(*parts: str) -> str:
    """A template file's text: ``templates/shared/...`` or ``templates/<kind>/...``, beside this module."""
    return files(__name__).joinpath("templates", *parts).read_text(encoding="utf-8")


def _own_or_shared(kind: str, name: str) -> str:
    """``templates/<kind>/NAME`` where the kind has its own (a lifecycle plugin registers no component),
    else ``templates/shared/NAME``."""
    own = files(__name__).joinpath("templates", kind, name)
    return own.read_text(encoding="utf-8") if own.is_file() else _template("shared", name)


def component_names(names: Names, kinds: list[str]) -> dict[str, str]:
    """Each kind's component name: NAME for the first kind that registers a component, NAME-KIND for
    every other one (``my-pack``, ``my-pack-loss``, ``my-pack-regularizer``), so that each reads as
    what it is wherever it is named (``--loss my-pack-loss``, ``ganlab.loss``'s tag, a metric's keys).
    A lifecycle part registers no component: its entry is the plugin's name, NAME (``plugins.NAME.*``)."""
    out: dict[str, str] = {}
    first = True
    for kind in kinds:
        if kind == "lifecycle" or first:
            out[kind] = names.component
            first = first and kind == "lifecycle"
        else:
            out[kind] = f"{names.component}-{kind}"
    return out


def describe(kinds: list[str], components: dict[str, str]) -> str:
    """``head 'my-pack', loss 'my-pack-loss' and lifecycle hooks`` (one kind: ``head 'my-pack'``)."""
    if len(kinds) == 1:
        return f"{kinds[0]} '{components[kinds[0]]}'"
    parts = [f"{kind} '{components[kind]}'" for kind in kinds if kind != "lifecycle"]
    parts += ["lifecycle hooks"] if "lifecycle" in kinds else []
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def _values(names: Names, kind: str, component: str, what: str) -> dict[str, str]:
    major_minor = ".".join(__version__.split(".")[:2])
    values = {
        "name": component, "plugin": names.component, "dist": names.distribution, "package": names.package,
        "kind": kind, "what": what, "ganlab_min": major_minor,
    }
    kind_values = {**tomllib.loads(_template(kind, "values.toml")), "test_body": _template(kind, "test_body.py.tmpl")}
    values.update({key: Template(text).substitute(values) for key, text in kind_values.items()})
    values["test_imports"] = _test_imports(values["test_body"])
    return values


def render(names: Names, kind: str, component: str | None = None) -> dict[str, str]:
    """The package's files, relative path -> text, for one component of ``kind`` named ``component``
    (default: the package's own name)."""
    component = component or names.component
    values = _values(names, kind, component, describe([kind], {kind: component}))
    templates = {
        "pyproject.toml": _template("shared", "pyproject.toml.tmpl"),
        "README.md": _own_or_shared(kind, "README.md.tmpl"),
        f"src/{names.package}/__init__.py": _template("shared", "__init__.py.tmpl"),
        f"src/{names.package}/plugin.py": _own_or_shared(kind, "plugin.py.tmpl"),
        f"src/{names.package}/impl.py": _template(kind, "impl.py.tmpl"),
        f"tests/test_{names.package}.py": _own_or_shared(kind, "test.py.tmpl"),
    }
    return {path: Template(text).substitute(values) for path, text in templates.items()}


#: where the part of a kind's plugin.py that goes into a multi-kind package's registration module starts
_BLOCK_START = {"lifecycle": "\n\n#: the name ganlab loads"}
_MANY_HEADER = '''"""Registration of plugin '{plugin}': the {what}.

ganlab imports this module (the entry point) for every command, so it imports
nothing heavy: each factory imports its component's module when a run uses it.{lifecycle}
"""

from __future__ import annotations

from typing import Any

from ganlab import Option, hookimpl
'''
_MANY_LIFECYCLE = """

Its lifecycle hooks (docs/plugins.md, "Lifecycle hooks") are opt-in: options in a
``[plugins.{plugin}]`` table or ``--set plugins.{plugin}.OPTION=VALUE``; they do nothing
until a run sets ``plugins.{plugin}.enabled=true``."""


def render_many(names: Names, kinds: list[str]) -> dict[str, str]:
    """A package with one component of each kind (named as :func:`component_names` says) and, with
    ``lifecycle``, hooks beside them: one registration module, one implementation module per kind
    (``<kind>.py``), one test file per kind."""
    if len(kinds) == 1:
        return render(names, kinds[0])
    components = component_names(names, kinds)
    what = describe(kinds, components)
    singles = {kind: render(names, kind, components[kind]) for kind in kinds}
    ordered = sorted(kinds, key=lambda kind: kind == "lifecycle")  # the hooks after the components
    package = f"src/{names.package}"
    plugin_path, impl_path = f"{package}/plugin.py", f"{package}/impl.py"
    lifecycle = _MANY_LIFECYCLE.format(plugin=names.component) if "lifecycle" in kinds else ""
    title, rest = _MANY_HEADER.format(plugin=names.component, what=what, lifecycle=lifecycle).split("\n", 1)
    blocks = ["\n".join(textwrap.wrap(title, 110, break_on_hyphens=False)) + "\n" + rest]
    for kind in ordered:
        block = singles[kind][plugin_path]
        block = block[block.index(_BLOCK_START.get(kind, "\n\ndef _make(")):]
        block = block.replace("def _make(", f"def _make_{kind}(").replace(", _make,", f", _make_{kind},")
        blocks.append(block.replace(f"{names.package}.impl import", f"{names.package}.{kind} import"))
    out = {plugin_path: "".join(blocks)}
    for kind, rendered in singles.items():
        out[f"{package}/{kind}.py"] = rendered[impl_path]
        test = rendered[f"tests/test_{names.package}.py"]
        out[f"tests/test_{names.package}_{kind}.py"] = test.replace(f"{names.package}.impl import",
                                                                    f"{names.package}.{kind} import")
    shared = _values(names, kinds[0], components[kinds[0]], what)
    out[f"{package}/__init__.py"] = Template(_template("shared", "__init__.py.tmpl")).substitute(shared)
    out["pyproject.toml"] = Template(_template("shared", "pyproject.toml.tmpl")).substitute(shared)
    out["README.md"] = "\n\n".join(
        [f"# {names.distribution}\n\nA ganlab plugin, `{names.component}`, with the {what}: the first "
         "component is named after the plugin, each other one after the plugin and its kind. One registration "
         f"module (`src/{names.package}/plugin.py`), one implementation module and one test file per kind. "
         "Install with `pip install -e \".[test]\"`, test with `pytest`."]
        + [singles[kind]["README.md"].split("\n", 2)[2].replace("## ", f"## {kind}: ")
           .replace(f"A ganlab lifecycle plugin, `{names.component}`: it registers no component, it watches",
                    f"Beside its components, plugin `{names.component}` watches")
           .replace(f"src/{names.package}/impl.py", f"src/{names.package}/{kind}.py")
           .replace(f"tests/test_{names.package}.py", f"tests/test_{names.package}_{kind}.py")
           for kind in ordered])
    return out


def write_package(names: Names, kind: str | list[str], parent: Path) -> Path:
    """Write the package as ``parent/<distribution>``; never touch an existing directory.

    Files go to a temporary sibling first and are renamed into place, so an
    interrupted scaffold leaves nothing half-written behind.
    """
    target = parent / names.distribution
    if target.exists() or target.is_symlink():
        raise GanlabError(f"{target} already exists; remove it or choose another NAME or --dir (nothing was written)")
    if not parent.is_dir():
        raise GanlabError(f"--dir {parent} is not a directory")
    files = render_many(names, [kind] if isinstance(kind, str) else list(kind))
    staging = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=parent))
    try:
        package = staging / names.distribution  # made by mkdir, so it gets the user's umask, not 0700
        for relative, text in files.items():
            path = package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.rename(package, target)  # atomic, and fails rather than merging if target appeared meanwhile
        staging.rmdir()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise GanlabError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _test_imports(body: str) -> str:
    """The standard-library and third-party imports a generated test uses, and no others."""
    lines = ["import math"] if "math." in body else []
    lines.append("from importlib.metadata import entry_points")
    if "Path(" in body:
        lines.append("from pathlib import Path")
    third_party = [f"import {module}" for module in ("pytest", "torch") if f"{module}." in body]
    if third_party:
        lines += ["", *third_party]
    return "\n".join(lines)


