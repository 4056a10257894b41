"""Where the core's secondary commands (runs, sweep, compare, report, sample, export, import, ui, new-plugin) are attached."""

from __future__ import annotations

from typing import Any


def register_core_commands(app: Any) -> None:
    """Attach the core's own commands; each module imports heavy things only when its command runs."""
    from ganlab.cli import archive as cmd_archive
    from ganlab.cli import compare as cmd_compare
    from ganlab.cli import new_plugin as cmd_new_plugin
    from ganlab.cli import report as cmd_report
    from ganlab.cli import runs as cmd_runs
    from ganlab.cli import sample as cmd_sample
    from ganlab.cli import study as cmd_study
    from ganlab.cli import sweep as cmd_sweep
    from ganlab.cli import ui as cmd_ui

    for module in (cmd_runs, cmd_sweep, cmd_study, cmd_compare, cmd_report, cmd_sample, cmd_archive, cmd_ui,
                   cmd_new_plugin):
        module.register(app)
