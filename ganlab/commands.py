"""Where the core's secondary commands (sweep, compare, sample, ui, runs) are attached."""

from __future__ import annotations

from typing import Any


def register_core_commands(app: Any) -> None:
    """Attach the core's own commands; each module imports heavy things only when run."""
    import importlib

    for module in ("ganlab.cmd_runs", "ganlab.cmd_sweep", "ganlab.cmd_compare", "ganlab.cmd_sample",
                   "ganlab.cmd_ui", "ganlab.cmd_new_plugin"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # not written yet in this checkout
            raise
        mod.register(app)
