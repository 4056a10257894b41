"""docs/quickstart-plugin.md works as written: its code blocks are read from the page and run at a
tiny size, so the page and this test cannot drift apart.

Every ```python block starting with ``# file: NAME`` is written to NAME; every command of a ```bash
block is run by the handler below that knows it, and a command no handler knows fails the test.
"""

from __future__ import annotations

import importlib
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY, run_in_process

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "quickstart-plugin.md"
#: the commands that need the generated package installed
INSTALLED = ('pip install -e ganlab-my-sparsemax[test]', "python -m pytest ganlab-my-sparsemax",
             "ganlab run --head my-sparsemax")
TINY_RUN = ["--dataset", "ring8", "--set", "arch.hidden_scale=0.125", "--device", "cpu", *TINY]


def blocks(language: str) -> list[str]:
    """The bodies of the page's fenced blocks whose info string is ``language`` ("" for a plain fence)."""
    found, info, body = [], None, []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if info is None and line.startswith("```"):
            info, body = line[3:].strip(), []
        elif info is not None and line == "```":
            if info == language:
                found.append("\n".join(body) + "\n")
            info = None
        elif info is not None:
            body.append(line)
    assert info is None, "docs/quickstart-plugin.md has a fence that is never closed"
    return found


def commands() -> list[list[str]]:
    return [words for block in blocks("bash") for line in block.splitlines()
            if (words := shlex.split(line, comments=True))]


def test_the_page_fits_on_one_page_and_its_head_is_about_ten_lines() -> None:
    assert len(PAGE.read_text(encoding="utf-8").splitlines()) <= 150
    (plugin,) = [b for b in blocks("python") if b.startswith("# file: my_heads.py")]
    head = plugin[plugin.index("class "):plugin.index("@hookimpl")].strip().splitlines()
    assert len([line for line in head if line.strip()]) <= 10, head


@pytest.fixture
def modules_of_the_page(monkeypatch: pytest.MonkeyPatch) -> Any:
    """What the page's files and packages import is forgotten afterwards, so no other test sees it."""
    before = set(sys.modules)
    yield monkeypatch
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("my_heads", "test_my_heads", "ganlab_my_sparsemax"):
            del sys.modules[name]


def test_every_block_of_the_quickstart_runs(workdir: Path, modules_of_the_page: pytest.MonkeyPatch) -> None:
    files = {}
    for block in blocks("python"):
        first, _, body = block.partition("\n")
        assert first.startswith("# file: "), f"a python block without '# file: NAME':\n{block}"
        files[first.removeprefix("# file: ")] = block
        (workdir / first.removeprefix("# file: ")).write_text(block, encoding="utf-8")
    assert set(files) == {"my_heads.py", "test_my_heads.py"}
    # every ganlab command imports the plugin: the page's file must not import torch when loaded
    probe = f"import sys; sys.path.insert(0, {str(workdir)!r}); import my_heads; print('torch' in sys.modules)"
    light = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert light.stdout.strip() == "False", light.stderr
    modules_of_the_page.syspath_prepend(str(workdir))

    ran = []
    for words in commands():
        line = " ".join(words)
        if words[:2] == ["ganlab", "components"]:
            done = run_in_process(words[1:], cwd=workdir)
            assert done.returncode == 0 and "my-sparsemax" in done.stdout and "my_heads" in done.stdout, done
        elif words[:2] == ["ganlab", "run"] and "--plugin" in words:
            done = run_in_process([*words[1:], *TINY_RUN], cwd=workdir)
            assert done.returncode == 0, done.stderr
        elif words[:4] == ["python", "-m", "pytest", "test_my_heads.py"]:
            module = importlib.import_module("test_my_heads")
            tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
            assert tests
            for test in tests:
                test()
        elif words[:2] == ["ganlab", "new-plugin"]:
            done = run_in_process(words[1:], cwd=workdir)
            assert done.returncode == 0, done.stderr
            package = workdir / "ganlab-my-sparsemax"
            (layout,) = [b for b in blocks("") if "pyproject.toml" in b]
            for path in (line.split()[0] for line in layout.splitlines() if line.strip()):
                assert (package / path).is_file(), f"the page shows {path}, which new-plugin did not write"
            (entry_point,) = blocks("toml")
            assert entry_point.strip() in (package / "pyproject.toml").read_text(encoding="utf-8")
        elif line in INSTALLED:
            # Installing is tested on generated packages by tests/test_new_plugin.py; here the generated
            # package's head trains from its source, as the installed entry point would load it.
            if not any(done in ran for done in INSTALLED):
                from ganlab.testing import run_steps

                modules_of_the_page.syspath_prepend(str(workdir / "ganlab-my-sparsemax" / "src"))
                plugin = importlib.import_module("ganlab_my_sparsemax.plugin")
                recorded = run_steps(head="my-sparsemax", plugins=[plugin], steps=2)
                assert len(recorded["loss.d"]) == 2
        else:
            pytest.fail(f"docs/quickstart-plugin.md runs `{line}`, which this test does not know how to run")
        ran.append(line)
    assert any("new-plugin" in line for line in ran) and any("--plugin" in line for line in ran)
