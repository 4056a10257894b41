"""Plugin faults and lifecycle dispatch, through the CLI (in a real process where the behaviour depends on
it: entry points on a new process's path, GANLAB_VERBOSE handed to child processes).

* any BaseException out of a plugin's import or hooks is a plugin error, reported like the
  others (a ``sys.exit()`` must not end ganlab silently with exit 0); KeyboardInterrupt is
  always taken as the user's Ctrl-C;
* a plugin the user named (``--plugin``, ``GANLAB_PLUGINS``) that cannot be loaded is an
  error before anything runs; an installed entry-point plugin is left out with a warning;
* lifecycle hooks go through pluggy's own call loop: ``wrapper=True``, ``hookwrapper=True``,
  ``tryfirst``/``trylast`` and hook-call monitoring work, ``GANLAB_TRACE_HOOKS=1`` traces the
  calls, and a third-party implementation that raises is still reported once and skipped;
* ``--verbose`` sets GANLAB_VERBOSE=1 for the command and every process it starts.

More cases, each with the store checked before and after, are in tests/test_bad_input.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import TINY, run_cli, run_in_process
from ganlab import hookimpl
from ganlab.errors import PluginError
from ganlab.plugins import PluginManager
from test_plugins import on_path, write_distribution

PLUGINS = Path(__file__).parent / "plugins_for_tests"
ERROR = "ganlab: error:"


def plugin(name: str) -> str:
    return str(PLUGINS / f"{name}.py")


def lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def untracked(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_in_process(["run", *TINY, "--no-tracking", *args], cwd, env=env)


# ---- 1. BaseExceptions from a plugin ----------------------------------------------------
@pytest.mark.parametrize("strict", [False, True], ids=["default", "strict"])
def test_sys_exit_at_import_of_a_named_plugin_is_an_error(workdir: Path, strict: bool) -> None:
    env = {"GANLAB_STRICT_PLUGINS": "1"} if strict else {}
    out = run_in_process(["run", "--plugin", plugin("exits_at_import"), "--dry-run"], workdir, env=env)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""  # nothing ran: no configuration printed
    (line,) = lines(out.stderr)
    assert line.startswith(f"{ERROR} plugin 'exits_at_import'") and "SystemExit" in line, line
    assert "sys.exit(0)" in line and "--plugin" in line


@pytest.mark.slow
def test_sys_exit_at_import_of_an_entry_point_plugin_is_left_out(tmp_path: Path, workdir: Path) -> None:
    site = tmp_path / "site"
    write_distribution(site, "exiting-gan", {"exits_at_import": Path(plugin("exits_at_import")).read_text()})
    out = run_cli(["components", "head", "--json"], cwd=workdir, env=on_path(site))
    assert out.returncode == 0, out.stderr
    assert "sigmoid" in {c["name"] for c in json.loads(out.stdout)}  # the command carried on
    (warning,) = lines(out.stderr)
    assert warning.startswith("ganlab: warning: plugin 'exits_at_import'") and "SystemExit" in warning

    strict = run_cli(["components", "head", "--json"], cwd=workdir, env={**on_path(site), "GANLAB_STRICT_PLUGINS": "1"})
    assert strict.returncode == 2 and strict.stdout == ""
    (line,) = lines(strict.stderr)
    assert line.startswith(f"{ERROR} plugin 'exits_at_import'") and "SystemExit" in line


@pytest.mark.slow
def test_base_exceptions_in_lifecycle_hooks_are_isolated(workdir: Path) -> None:
    """GeneratorExit in on_run_start and sys.exit(0) in on_step_end: each reported once; the run ends normally."""
    record = workdir / "events.jsonl"
    env = {"GANLAB_TEST_RECORD": str(record)}
    recorder = str(Path(__file__).parent / "plugins_for_tests" / "lifecycle_recorder.py")
    out = untracked("--plugin", plugin("exits_in_hooks"), "--plugin", recorder, cwd=workdir, env=env)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in lines(out.stderr) if line.startswith("ganlab: warning:")]
    assert len(warnings) == 2, out.stderr
    assert "raised in on_run_start: GeneratorExit" in warnings[0]
    assert "raised in on_step_end: SystemExit: it called sys.exit(0)" in warnings[1]
    seen = events(record)
    assert [e["step"] for e in seen if e["event"] == "exits_in_hooks.on_step_end"] == [1]  # skipped after failing
    assert [e["step"] for e in seen if e["event"] == "step"] == [1, 2, 3, 4]  # the other plugin saw every step
    assert seen[-1] == {"event": "end", "status": "FINISHED", "step": 4}

    env["GANLAB_STRICT_PLUGINS"] = "1"
    strict = untracked("--plugin", plugin("exits_in_hooks"), cwd=workdir, env=env)
    assert strict.returncode == 2, strict.stderr
    assert lines(strict.stderr)[-1].startswith(f"{ERROR} plugin 'exits_in_hooks'")
    assert "GeneratorExit" in lines(strict.stderr)[-1] and "Traceback" not in strict.stderr


def test_keyboard_interrupt_from_a_plugin_is_taken_as_the_users(workdir: Path) -> None:
    """A real Ctrl-C may land inside a plugin's code, so KeyboardInterrupt is never made a warning."""
    with pytest.raises(KeyboardInterrupt):
        PluginManager(warn=lambda message: None, strict_named=False).load([plugin("interrupts_at_import")])
    out = run_in_process(["run", "--plugin", plugin("interrupts_at_import"), "--dry-run"], workdir)
    assert out.returncode == 130 and lines(out.stderr) == ["ganlab: interrupted"], out.stderr


# ---- 2. named plugins must load; entry points are isolated ---------------------------------
def test_a_named_plugin_that_cannot_be_loaded_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = str(tmp_path / "missing.py")
    with pytest.raises(PluginError, match=r"plugin 'missing' .* no plugin file .* named with --plugin"):
        PluginManager(warn=lambda message: None).load([missing])
    with pytest.raises(PluginError, match=r"raised in register_heads: RuntimeError: registry on fire"):
        PluginManager(warn=lambda message: None).load([plugin("register_raises")]).registry  # noqa: B018
    monkeypatch.setenv("GANLAB_PLUGINS", missing)
    with pytest.raises(PluginError, match="named in GANLAB_PLUGINS"):
        PluginManager(warn=lambda message: None).load()
    warnings: list[str] = []
    lenient = PluginManager(warn=warnings.append, strict_named=False).load()
    assert lenient.infos["missing"].error and len(warnings) == 1 and "no plugin file" in warnings[0]


def test_a_plugin_named_twice_is_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANLAB_PLUGINS", plugin("factory_raises"))
    warnings: list[str] = []
    manager = PluginManager(warn=warnings.append).load([plugin("factory_raises")])
    assert not warnings and manager.registry.get("head", "exploding").provenance.plugin == "factory_raises"


def test_missing_named_plugin_is_said_once_and_nothing_runs(workdir: Path, mlflow_client: Any) -> None:
    out = run_in_process(["run", *TINY, "--plugin", "./missing.py"], workdir)
    assert out.returncode == 2, out.stderr
    (line,) = lines(out.stderr)  # the CLI loads plugins twice: the error is still said once
    assert line.startswith(f"{ERROR} plugin 'missing'") and "no plugin file at missing.py" in line
    assert "leave it out of the command line" in line
    assert mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]) == []


def test_a_command_from_a_missing_named_plugin_names_the_plugin(workdir: Path) -> None:
    out = run_in_process(["hello", "--plugin", "hello_command.py"], workdir)
    assert out.returncode == 2
    (line,) = lines(out.stderr)
    assert line.startswith(f"{ERROR} plugin 'hello_command'") and "no plugin file" in line  # not "No such command"


def test_plugins_command_still_lists_a_named_plugin_that_fails(workdir: Path) -> None:
    out = run_in_process(["plugins", "--json", "--plugin", plugin("exits_at_import")], workdir)
    assert out.returncode == 0, out.stderr
    rows = {p["name"]: p for p in json.loads(out.stdout)["plugins"]}
    assert "SystemExit" in rows["exits_at_import"]["error"]
    assert len(lines(out.stderr)) == 1 and "exits_at_import" in out.stderr


# ---- 3. lifecycle hooks through pluggy -----------------------------------------------------------
@pytest.mark.slow
def test_wrappers_and_ordering_around_the_builtin_tracker(workdir: Path, mlflow_client: Any) -> None:
    record = workdir / "events.jsonl"
    out = run_in_process(["run", *TINY, "--checkpoint-every", "2", "--plugin", plugin("hook_order")], workdir,
                  env={"GANLAB_TEST_RECORD": str(record)})
    assert out.returncode == 0, out.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    run_id = run.info.run_id
    seen = events(record)
    start = [e for e in seen if e["event"].endswith("on_run_start")]
    assert start == [  # tryfirst before the tracker opened the run, trylast after, the wrapper around all
        {"event": "tryfirst.on_run_start", "run_id": None},
        {"event": "trylast.on_run_start", "run_id": run_id},
        {"event": "wrapper.on_run_start", "before": None, "after": run_id},
    ]
    assert [(e["step"], e["failed"]) for e in seen if e["event"] == "hookwrapper.on_step_end"] == [
        (1, False), (2, False), (3, False), (4, False)]
    checkpoints = [(e["event"], e["step"], e["checkpoint_exists"]) for e in seen if "checkpoint" in e["event"]]
    assert checkpoints == [("wrapper.before_checkpoint", 2, False), ("on_checkpoint", 2, True),
                           ("wrapper.before_checkpoint", 4, False), ("on_checkpoint", 4, True)]


def test_trace_hooks_prints_each_lifecycle_call(workdir: Path) -> None:
    out = untracked("--plugin", plugin("hook_order"), cwd=workdir,
                    env={"GANLAB_TRACE_HOOKS": "1", "GANLAB_TEST_RECORD": str(workdir / "events.jsonl")})
    assert out.returncode == 0, out.stderr
    traced = [line for line in lines(out.stderr) if line.startswith("ganlab: hook ")]
    in_step = [t for t in traced if t.startswith(("ganlab: hook on_after_d_step", "ganlab: hook on_after_g_step"))]
    assert in_step[:2] == ["ganlab: hook on_after_d_step(step=1): no implementations",
                           "ganlab: hook on_after_g_step(step=1): no implementations"] and len(in_step) == 8
    traced = [t for t in traced if t not in in_step]
    assert [t.split("(")[0] for t in traced] == ["ganlab: hook on_run_start"] + ["ganlab: hook on_step_end"] * 4 + [
        "ganlab: hook on_samples", "ganlab: hook on_evaluate", "ganlab: hook on_run_end"]
    assert traced[0] == ("ganlab: hook on_run_start(): hook_order (wrapper), hook_order (tryfirst), "
                         "ganlab.progress, hook_order (trylast)")
    assert traced[2] == "ganlab: hook on_step_end(step=2): hook_order (hookwrapper), ganlab.progress"
    assert traced[-1] == "ganlab: hook on_run_end(status=FINISHED): ganlab.progress"


def test_failing_third_party_wrappers_and_hooks_are_isolated(workdir: Path) -> None:
    record = workdir / "events.jsonl"
    out = untracked("--plugin", plugin("failing_wrappers"), "--plugin", plugin("hook_order"), cwd=workdir,
                    env={"GANLAB_TEST_RECORD": str(record)})
    assert out.returncode == 0, out.stderr
    warnings = [line for line in lines(out.stderr) if line.startswith("ganlab: warning:")]
    assert [w.split(" raised in ")[1].split(";")[0] for w in warnings] == [
        "on_step_end: RuntimeError: wrapper broke before its yield",
        "on_evaluate: ValueError: evaluation hook broke",
        "on_run_end: RuntimeError: wrapper broke after its yield",
    ]
    seen = events(record)
    assert [e["step"] for e in seen if e["event"] == "failing_wrappers.on_step_end"] == [1, 2]  # skipped after 2
    # the failing wrapper changed nothing for the others: every step's call went on without an error
    assert [(e["step"], e["failed"]) for e in seen if e["event"] == "hookwrapper.on_step_end"] == [
        (1, False), (2, False), (3, False), (4, False)]
    assert "ganlab: finished at step 4/4" in out.stderr
    assert "ganlab: hook " not in out.stderr  # no tracing unless GANLAB_TRACE_HOOKS=1


class _Probe:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    @hookimpl
    def on_step_end(self, step: int) -> None:
        self.calls.append(step)
        if self.fail:
            raise ValueError("probe failed")


def test_notify_goes_through_pluggy_monitoring_and_isolates_only_third_parties() -> None:
    warnings: list[str] = []
    manager = PluginManager(warn=warnings.append)
    good, bad = _Probe(), _Probe(fail=True)
    manager.register_object(good, "good", builtin=False)
    manager.register_object(bad, "bad", builtin=False)
    monitored: list[tuple[str, list[str]]] = []

    def before(name: str, impls: Any, kwargs: Any) -> None:
        monitored.append((name, [impl.plugin_name for impl in impls]))

    manager.pm.add_hookcall_monitoring(before, lambda *args: None)
    for step in (1, 2):
        manager.notify("on_step_end", ctx=None, step=step, losses={})
    assert monitored == [("on_step_end", ["good", "bad"])] * 2
    assert good.calls == [1, 2] and bad.calls == [1]  # reported once, skipped from then on
    assert len(warnings) == 1 and "plugin 'bad'" in warnings[0] and "raised in on_step_end" in warnings[0]

    builtin = PluginManager(warn=warnings.append)
    builtin.register_object(_Probe(fail=True), "core")
    with pytest.raises(ValueError, match="probe failed"):  # a built-in's failure is a ganlab bug: it propagates
        builtin.notify("on_step_end", ctx=None, step=1, losses={})


# ---- 4. --verbose ------------------------------------------------------------------------------------
def _without_verbose() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "GANLAB_VERBOSE"}


def _ganlab(args: list[str], cwd: Path, record: Path) -> subprocess.CompletedProcess[str]:
    env = {**_without_verbose(), "GANLAB_TEST_RECORD": str(record)}
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_verbose_reaches_the_plugins_and_child_processes(workdir: Path) -> None:
    record = workdir / "verbose.jsonl"
    out = _ganlab(["run", "--verbose", *TINY, "--no-tracking", "--plugin", plugin("verbose_probe")], workdir, record)
    assert out.returncode == 0, out.stderr
    assert events(record) == [{"event": "import", "GANLAB_VERBOSE": "1"},  # set before plugins are imported
                              {"event": "child", "GANLAB_VERBOSE": "1"}]  # and inherited by what the run starts

    quiet = workdir / "quiet.jsonl"
    out = _ganlab(["run", "--dry-run", "--plugin", plugin("verbose_probe")], workdir, quiet)
    assert out.returncode == 0, out.stderr
    assert events(quiet) == [{"event": "import", "GANLAB_VERBOSE": None}]


@pytest.mark.slow
def test_resume_accepts_verbose(workdir: Path) -> None:
    record = workdir / "verbose.jsonl"
    out = _ganlab(["resume", "0123456789abcdef0123456789abcdef", "--verbose", "--plugin", plugin("verbose_probe")],
                  workdir, record)
    assert out.returncode == 2
    assert lines(out.stderr)[-1].startswith(f"{ERROR} no run '0123456789abcdef")  # not "no such option"
    assert events(record) == [{"event": "import", "GANLAB_VERBOSE": "1"}]
