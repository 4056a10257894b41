"""Every third-party package that ganlab imports is declared in pyproject.toml.

A package that only arrives as a dependency of a dependency (or that happens to be on
the developer's machine) works until it does not: a fresh virtual environment built from
pyproject.toml is what a new user gets. The checker reads the imports themselves (with
``ast``: top-level and function-level, so a lazy import is checked like any other) and
maps each module to the distributions that install it.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "plugins" / "examples" / "ganlab-temperature"
#: The project's own import names: ganlab and its built-in plugins (package-dir "plugins").
OWN = frozenset({"ganlab", "ganlab_plugins"})


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them (Scikit_Learn == scikit-learn)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a requirement string names ("SQLAlchemy>=1.4; python_version<'4'")."""
    return normalise(Requirement(requirement).name)


def imported_modules(files: Iterable[Path]) -> dict[str, set[Path]]:
    """Top-level module name -> files importing it, for every absolute import at any depth."""
    found: dict[str, set[Path]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:  # not an import, or a relative one (always the package's own code)
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path)
    return found


def undeclared_imports(files: Iterable[Path], requirements: Iterable[str], own: Iterable[str] = OWN) -> list[str]:
    """One message per third-party module that no requirement in ``requirements`` installs.

    A module is fine when one of the distributions providing it (as installed here,
    ``importlib.metadata.packages_distributions``) is declared; a module that no installed
    distribution provides is reported too: nothing in this environment shows where it
    would come from, and importing it fails.
    """
    declared = {requirement_name(r) for r in requirements}
    distributions = importlib.metadata.packages_distributions()
    skip = set(sys.stdlib_module_names) | set(own)
    problems = []
    for module, where in sorted(imported_modules(files).items()):
        if module in skip:
            continue
        users = ", ".join(sorted(_shown(path) for path in where))
        providers = sorted({normalise(d) for d in distributions.get(module, [])})
        if not providers:
            problems.append(f"{module} (imported by {users}): no installed distribution provides it")
        elif not declared.intersection(providers):
            problems.append(f"{module} (imported by {users}): its distribution {'/'.join(providers)} "
                            "is not declared")
    return problems


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]


def _sources(*folders: Path, exclude: Path | None = None) -> list[Path]:
    files = [p for folder in folders for p in sorted(folder.rglob("*.py"))]
    return [p for p in files if exclude is None or not p.is_relative_to(exclude)]


def _fail_on(problems: list[str], pyproject: Path, table: str) -> None:
    assert not problems, (f"imported but not declared in {table} of {_shown(pyproject)} "
                          "(or the environment is older than pyproject.toml: pip install -e '.[dev]'):\n  "
                          + "\n  ".join(problems))


# ---- the project ----------------------------------------------------------------------------
def test_every_third_party_import_of_ganlab_and_its_plugins_is_a_declared_dependency() -> None:
    files = _sources(ROOT / "ganlab", ROOT / "plugins", exclude=ROOT / "plugins" / "examples")
    assert len(files) > 40 and ROOT / "ganlab" / "record" / "tracker.py" in files  # the scan sees the code
    problems = undeclared_imports(files, _project(ROOT / "pyproject.toml")["dependencies"])
    _fail_on(problems, ROOT / "pyproject.toml", "[project].dependencies")


@pytest.mark.slow
def test_every_third_party_import_of_the_tests_is_declared_with_the_dev_extra() -> None:
    project = _project(ROOT / "pyproject.toml")
    files = sorted((ROOT / "tests").glob("*.py"))  # not the plugin fixtures, some of which fail on purpose
    # Tests import each other, conftest and the benchmarks' helpers as plain modules.
    local = {p.stem for p in files} | {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    problems = undeclared_imports(files, [*project["dependencies"], *project["optional-dependencies"]["dev"]],
                                  own=OWN | local)
    _fail_on(problems, ROOT / "pyproject.toml", "[project].dependencies or the dev extra")


def test_the_example_plugin_declares_what_it_imports_in_its_own_pyproject() -> None:
    """The example is a separate package: it is judged by its own pyproject.toml."""
    project = _project(EXAMPLE / "pyproject.toml")
    own = {"ganlab_temperature"}
    problems = undeclared_imports(_sources(EXAMPLE / "src"), project["dependencies"], own=own)
    _fail_on(problems, EXAMPLE / "pyproject.toml", "[project].dependencies")
    problems = undeclared_imports(_sources(EXAMPLE / "tests"),
                                  [*project["dependencies"], *project["optional-dependencies"]["test"]], own=own)
    _fail_on(problems, EXAMPLE / "pyproject.toml", "[project].dependencies or the test extra")


# ---- the checker can fail -------------------------------------------------------------------
SYNTHETIC = '''\
import os
import numpy as np
from . import sibling
from .. import parent
import ganlab.config
from ganlab_plugins import heads


def later():
    import tomli_w
    from sqlalchemy.orm import configure_mappers


class Lazy:
    def method(self):
        import click.exceptions
        import no_such_distribution_for_ganlab_tests
'''


def test_the_checker_names_undeclared_and_uninstalled_imports_at_any_depth(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(SYNTHETIC, encoding="utf-8")
    # mlflow installs sqlalchemy and click: arriving that way is not being declared.
    problems = undeclared_imports([source], ["numpy>=1.24", "mlflow>=3.0"])
    named = {problem.split(" ", 1)[0] for problem in problems}
    assert named == {"tomli_w", "sqlalchemy", "click", "no_such_distribution_for_ganlab_tests"}, problems
    assert all(f"imported by {source}" in problem for problem in problems)
    assert any(p.startswith("sqlalchemy ") and "sqlalchemy is not declared" in p for p in problems), problems
    assert any(p.startswith("no_such_distribution_for_ganlab_tests ") and "no installed distribution" in p
               for p in problems), problems


@pytest.mark.slow
def test_the_checker_matches_distribution_names_as_pep_503_does(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("import PIL.Image\nimport sklearn\nimport sqlalchemy\nimport click\n", encoding="utf-8")
    requirements = ["Pillow>=9", "Scikit_Learn>=1.3", "SQLAlchemy >= 1.4 ; python_version >= '3'", "click>=8"]
    assert undeclared_imports([source], requirements) == []
    assert [p.split(" ", 1)[0] for p in undeclared_imports([source], requirements[1:])] == ["PIL"]


def test_the_checker_reads_the_synthetic_imports_it_is_given(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text(SYNTHETIC, encoding="utf-8")
    assert set(imported_modules([source])) == {"os", "numpy", "ganlab", "ganlab_plugins", "tomli_w",
                                               "sqlalchemy", "click", "no_such_distribution_for_ganlab_tests"}
