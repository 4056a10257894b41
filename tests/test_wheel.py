"""A wheel built from this checkout is a whole ganlab: every module of the source tree is in it.

The development install is editable, so it imports whatever is in the checkout, and a package
that the build configuration leaves out (ganlab.studies and ganlab.train.population once were)
only shows in a non-editable install. The wheel is built from a copy of the sources (an in-tree
build leaves build/ behind, and setuptools copies a stale build/lib into the next wheel), unpacked,
and every module found by walking ganlab/ and plugins/ is imported from it in a process that
cannot see the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> the import name it installs as (package-dir in pyproject.toml)
TREES = {ROOT / "ganlab": "ganlab", ROOT / "plugins": "ganlab_plugins"}
#: a separate distribution with its own pyproject.toml (tests/test_example_plugin.py installs it)
NOT_SHIPPED = ROOT / "plugins" / "examples"


def source_modules() -> list[str]:
    """Every module of ganlab and ganlab_plugins, named from the files in the source tree."""
    names = []
    for folder, package in TREES.items():
        for path in sorted(folder.rglob("*.py")):
            if path.is_relative_to(NOT_SHIPPED):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join((package, *parts)))
    return names


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the checkout's sources, built with no network."""
    source = tmp_path / "source"
    junk = shutil.ignore_patterns("__pycache__", ".pytest_cache")  # not "dist": ganlab.dist is a package
    shutil.copytree(ROOT / "ganlab", source / "ganlab", ignore=junk)
    shutil.copytree(ROOT / "plugins", source / "plugins", ignore=junk)
    for path in ROOT.iterdir():  # pyproject.toml, setup.py, README.md (the long description)...
        if path.is_file():
            shutil.copy2(path, source / path.name)
    out = tmp_path / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
         "--disable-pip-version-check", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("ganlab-*.whl")
    return wheel


# Runs in the child: the checkout's editable-install finder (site-packages/__editable__*) would
# otherwise supply a subpackage the wheel lacks, so it is taken off sys.meta_path first.
CHILD = """
import importlib, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path.insert(0, sys.argv[1])
found, failed = {}, {}
for name in json.loads(sys.argv[2]):
    try:
        found[name] = getattr(importlib.import_module(name), "__file__", None)
    except BaseException as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"found": found, "failed": failed}))
"""


@pytest.mark.slow
def test_the_wheel_holds_and_imports_every_module_of_the_source_tree(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    names = source_modules()
    assert {"ganlab.studies", "ganlab.train.population", "ganlab_plugins.heads"} <= set(names)  # the walk sees them
    # __main__ modules run the CLI when imported: that they are in the wheel is checked by file.
    runnable = [n for n in names if n.rsplit(".", 1)[-1] != "__main__"]
    for name in set(names) - set(runnable):
        assert (unpacked / Path(*name.split("."))).with_suffix(".py").is_file(), f"{name} is not in the wheel"
    # -I: no cwd, no PYTHONPATH, no user site on sys.path; cwd is tmp_path, away from the checkout.
    done = subprocess.run([sys.executable, "-I", "-c", CHILD, str(unpacked), json.dumps(runnable)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert not result["failed"], f"modules of the source tree that do not import from the wheel {wheel.name}: " \
                                 + json.dumps(result["failed"], indent=1)
    outside = {n: f for n, f in result["found"].items() if f is None or not Path(f).resolve().is_relative_to(
        unpacked.resolve())}
    assert not outside, f"modules imported from outside the wheel: {outside}"
    assert (unpacked / "ganlab" / "scaffold" / "templates" / "shared" / "pyproject.toml.tmpl").is_file()  # package data
