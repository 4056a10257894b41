"""Options for lifecycle plugins (``plugin_options`` hook, ``[plugins.NAME]``) and opt-in plugins.

A plugin declaring ``enabled = Option(bool, False)`` is installed but off: its hooks run only in
the runs that enable it, which is checked here by what its hooks saw, in the same process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run_in_process

from ganlab import Option, hookimpl
from ganlab.testing import run_steps


class EveryNth:
    """Counts the steps it sees, every ``every`` steps, when enabled."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.options: list[dict[str, Any]] = []

    @hookimpl
    def plugin_options(self) -> dict[str, Any]:
        return {"every": Option(int, 2, "steps between counts", min=1),
                "enabled": Option(bool, False, "count in this run")}

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        self.options.append(dict(ctx.plugin_options["every-nth"]))

    @hookimpl
    def on_step_end(self, ctx: Any, step: int) -> None:
        if step % ctx.plugin_options["every-nth"]["every"] == 0:
            self.seen.append(step)


def _manager(plugin: EveryNth) -> Any:
    from ganlab.testing import make_plugin_manager

    manager = make_plugin_manager()
    manager.register_object(plugin, "every-nth", builtin=False)
    return manager


def test_an_opt_in_plugin_runs_only_where_enabled_and_reads_its_options() -> None:
    plugin = EveryNth()
    manager = _manager(plugin)
    run_steps(dataset="tiny-vectors", steps=4, manager=manager)
    assert plugin.seen == [] and plugin.options == []  # installed, not enabled: no hook ran
    run_steps(dataset="tiny-vectors", steps=6, manager=manager,
              sets=["plugins.every-nth.enabled=true", "plugins.every-nth.every=3"])
    assert plugin.seen == [3, 6]
    assert plugin.options == [{"every": 3, "enabled": True}]
    run_steps(dataset="tiny-vectors", steps=4, manager=manager)  # and off again in the next run
    assert plugin.seen == [3, 6]


def test_a_plugins_table_in_a_file_sets_the_options(tmp_path: Path) -> None:
    from ganlab.config import ConfigBuilder

    plugin = EveryNth()
    manager = _manager(plugin)
    path = tmp_path / "run.toml"
    path.write_text('[plugins.every-nth]\nenabled = true\nevery = 5\n')
    config = ConfigBuilder().add_file(path).build(manager.registry)
    assert config.plugin_options["every-nth"] == {"every": 5, "enabled": True}
    assert config.flat()["plugins.every-nth.every"] == 5


PLUGIN_FILE = '''
from ganlab import Option, hookimpl


@hookimpl
def plugin_options():
    return {"every": Option(int, 2, "steps between prints", min=1)}


@hookimpl
def on_step_end(ctx, step):
    if step % ctx.plugin_options["printer"]["every"] == 0:
        print(f"printer step {step}")
'''


def test_plugin_options_through_the_cli_are_recorded_and_validated(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "printer.py").write_text(PLUGIN_FILE)
    base = ["run", "--plugin", "printer.py", "--dataset", "ring8", "--steps", "4", "--batch-size", "8",
            "--eval-every", "0", "--sample-every", "0", "--set", "metrics=none"]
    done = run_in_process([*base, "--set", "plugins.printer.every=4"], workdir)
    assert done.returncode == 0, done.stderr
    assert "printer step 4" in done.stdout and "printer step 2" not in done.stdout
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.data.params["plugins.printer.every"] == "4"
    for bad, message in ((["--set", "plugins.printer.every=0"], "plugins.printer.every"),
                         (["--set", "plugins.printer.evry=3"], "unknown option 'plugins.printer.evry'; did you mean 'every'?"),
                         (["--set", "plugins.printr.every=3"], "plugin 'printr' takes no options; did you mean 'printer'?")):
        done = run_in_process([*base, *bad], workdir)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert message in done.stderr, done.stderr
    assert len(mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])) == 1
