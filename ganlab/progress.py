"""A rich progress bar with the current losses, updated at logging intervals only."""

from __future__ import annotations

import sys
import time
from typing import Any

from ganlab import hookimpl


class ProgressBar:
    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None
        self.started = 0.0

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[losses]}"), TimeRemainingColumn(),
            disable=not sys.stderr.isatty(), transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(ctx.config.default_run_name(), total=ctx.config.steps,
                                           completed=ctx.step, losses="")

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        if step % ctx.config.log_every and step != ctx.config.steps:
            return
        text = "  ".join(f"{k.split('.')[-1]}={float(v):.4f}" for k, v in losses.items())
        self.progress.update(self.task, completed=step, losses=text)

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        if self.progress is not None:
            self.progress.stop()
        elapsed = time.monotonic() - self.started
        where = f" run {ctx.run_id}" if ctx.run_id else ""
        print(f"ganlab: {status.lower()} at step {ctx.step}/{ctx.config.steps} in {elapsed:.1f}s{where}",
              file=sys.stderr)
