"""Test plugin: raises in on_step_end at every step."""

from typing import Any

from ganlab import hookimpl


@hookimpl
def on_step_end(ctx: Any, step: int, losses: Any) -> None:
    raise RuntimeError(f"step hook exploded at step {step}")
