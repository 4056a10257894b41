"""The suite's own hygiene: CI runs the README's set-up, and no test leaks global state.

The leak guard and the shuffled order live in tests/conftest.py; here they run on a small
synthetic test module in a real pytest subprocess, with a copy of that conftest.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_setup_commands() -> list[str]:
    """The README's first ```bash block, one command a line, comments dropped."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("```bash") + 1
    block = lines[start:lines.index("```", start)]
    return [shlex.join(words) for words in (shlex.split(line, comments=True) for line in block) if words]


def test_ci_runs_exactly_the_readmes_two_setup_commands() -> None:
    done = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-commands"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    assert commands == readme_setup_commands()
    install, test = (shlex.split(command) for command in commands)
    assert install[:3] == ["pip", "install", "-e"] and install[-1] == ".[dev]", commands
    assert test[:3] == ["python", "-m", "pytest"], commands


def test_ci_installs_into_a_fresh_virtual_environment() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'rm -rf "$VENV"' in script and 'python3 -m venv "$VENV"' in script
    assert "system-site-packages" not in script  # the machine's own packages must not hide a missing one
    assert script.index('source "$VENV/bin/activate"') < script.index('eval "$install_cmd"')
    assert ".ci-venv/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


LEAKY = '''\
import os

import torch


def test_a_sets_an_environment_variable():
    os.environ["GANLAB_LEAK_PROBE"] = "1"


def test_b_switches_on_deterministic_algorithms():
    torch.use_deterministic_algorithms(True)


def test_c_undoes_a_monkeypatch_of_torchs_compiler_config(monkeypatch):
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)


def test_d_changes_directory(tmp_path):
    os.chdir(tmp_path)


def test_e_finds_everything_put_back(tmp_path):
    import torch._inductor.config

    assert "GANLAB_LEAK_PROBE" not in os.environ
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch._inductor.config.fallback_random is False
    assert os.getcwd() != str(tmp_path)


def test_f_clean_changes_are_fine(monkeypatch, tmp_path):
    import torch._inductor.config

    monkeypatch.setenv("GANLAB_LEAK_PROBE", "2")
    monkeypatch.chdir(tmp_path)
    with torch._inductor.config.patch(fallback_random=True):
        assert torch._inductor.config.fallback_random
'''


def _synthetic_suite(tmp_path: Path, source: str) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    (tmp_path / "test_synthetic.py").write_text(source, encoding="utf-8")
    return tmp_path


def _pytest(folder: Path, *args: str, shuffle: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GANLAB_TEST_SHUFFLE", "PYTEST_ADDOPTS")}
    if shuffle is not None:
        env["GANLAB_TEST_SHUFFLE"] = shuffle
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_test_that_leaks_global_state_fails_naming_the_change_and_the_next_test_finds_it_undone(
        tmp_path: Path) -> None:
    done = _pytest(_synthetic_suite(tmp_path, LEAKY), "-p", "no:randomly")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "test_a_sets_an_environment_variable left global state changed" in out
    assert "os.environ['GANLAB_LEAK_PROBE']: '<unset>' -> '1'" in out
    assert "torch.are_deterministic_algorithms_enabled(): False -> True" in out
    assert "torch._inductor.config.fallback_random was deleted" in out
    assert "test_d_changes_directory left global state changed" in out and "cwd: " in out
    assert "6 passed, 4 errors" in out, out  # e and f pass: the guard put everything back


@pytest.mark.slow
def test_the_order_is_shuffled_only_when_asked_and_reproducibly(tmp_path: Path) -> None:
    source = "".join(f"def test_{i:02d}():\n    pass\n\n\n" for i in range(30))
    folder = _synthetic_suite(tmp_path, source)

    def order(shuffle: str | None) -> list[str]:
        done = _pytest(folder, "--collect-only", shuffle=shuffle)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (f"test order shuffled with GANLAB_TEST_SHUFFLE={shuffle}" in done.stdout) == bool(shuffle)
        return [line for line in done.stdout.splitlines() if "::test_" in line]

    plain = order(None)
    assert plain == [f"test_synthetic.py::test_{i:02d}" for i in range(30)]
    shuffled = order("7")
    assert sorted(shuffled) == plain and shuffled != plain
    assert order("7") == shuffled and order("8") != shuffled
