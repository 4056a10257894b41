"""Where the core's secondary commands (runs, sweep, compare, sample, ui, new-plugin) are attached."""

from __future__ import annotations

from typing import Any


def register_core_commands(app: Any) -> None:
    """Attach the core's own commands; each module imports heavy things only when its command runs."""
    from ganlab import cmd_compare, cmd_new_plugin, cmd_runs, cmd_sample, cmd_sweep, cmd_ui

    for module in (cmd_runs, cmd_sweep, cmd_compare, cmd_sample, cmd_ui, cmd_new_plugin):
        module.register(app)
