"""Progress while a run trains, updated at logging intervals only.

On a terminal: a rich progress bar, moved every step, with the current losses (at logging
steps) and the rate and ETA measured by ganlab from the first step on (rich's own estimate shows
nothing until it has seen many updates: minutes on a slow CPU run). Otherwise (stderr sent to a file, a pipe, a CI log) a bar would print nothing
useful, so plain lines go out instead::

    ganlab: step 200/1000 loss.d=1.3412 loss.g=0.7021 12.3 steps/s ETA 1m05s

about every tenth of the run or every 30 seconds, whichever comes first, and
never between logging steps (``log_every``), where the losses are on the host.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ganlab import hookimpl
from ganlab.registry import headline_first

#: plain progress lines: at least this often, when logging steps allow
LINE_SECONDS = 30.0
#: ... and at least once per this fraction of the run
LINE_FRACTION = 10
#: metrics named in the summary at the run's end (the rest are in the record)
SUMMARY_METRICS = 8


def format_eta(seconds: float) -> str:
    """``65`` -> ``1m05s``; ``7265`` -> ``2h01m``; ``9`` -> ``9s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def losses_line(losses: dict[str, Any]) -> str:
    """``loss.d=0.6931 loss.g=0.6931``: a step's losses as a progress line and the summary show them."""
    return " ".join(f"{key}={float(value):.4f}" for key, value in losses.items())


class ProgressBar:
    def __init__(self, plain: bool | None = None) -> None:
        self.progress: Any = None
        self.task: Any = None
        self.started = 0.0
        # plain lines where stderr is no terminal; None: decide when the run starts
        self.plain = plain
        self.first_step = 0
        self.last_line = 0.0
        self.line_every = 1
        self.last_tenth = 0
        self.losses: tuple[int, str] | None = None  # (step, "loss.d=… loss.g=…") at the last logging step
        self.evaluated: tuple[int, dict[str, float]] | None = None  # the last evaluation's metrics

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        self.started = self.last_line = time.monotonic()
        self.first_step = ctx.step  # a resumed run's rate counts only the steps it trains
        if self.plain is None:
            self.plain = not sys.stderr.isatty()
        if self.plain:
            self.line_every = max(1, -(-ctx.config.steps // LINE_FRACTION))
            self.last_tenth = ctx.step // self.line_every
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[losses]}"), TextColumn("{task.fields[speed]}"),
            console=Console(stderr=True), transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(ctx.config.default_run_name(), total=ctx.config.steps,
                                           completed=ctx.step, losses="", speed="")

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        logged = not step % ctx.config.log_every or step == ctx.config.steps
        if logged:
            self.losses = (step, losses_line(losses))
        if self.plain:
            if logged:
                self.plain_line(ctx, step, losses)
            return
        fields: dict[str, Any] = {"completed": step, "speed": self.speed(ctx, step, time.monotonic())}
        if logged:  # the losses are on the host only at logging steps
            fields["losses"] = "  ".join(f"{k.split('.')[-1]}={float(v):.4f}" for k, v in losses.items())
        self.progress.update(self.task, **fields)

    def speed(self, ctx: Any, step: int, now: float) -> str:
        """``12.3 steps/s ETA 1m05s`` from the steps this process trained ('' before the first)."""
        elapsed, done = now - self.started, step - self.first_step
        if elapsed <= 0 or done <= 0:
            return ""
        rate = done / elapsed
        pace = f"{rate:.1f} steps/s" if rate >= 0.1 else f"{1 / rate:.0f} s/step"  # a large run on a CPU
        return f"{pace} ETA {format_eta((ctx.config.steps - step) / rate)}"

    def plain_line(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        """A line when this logging step starts a new tenth of the run, or 30 s have passed since the last."""
        now = time.monotonic()
        tenth = step // self.line_every
        due = tenth > self.last_tenth or now - self.last_line >= LINE_SECONDS
        self.last_tenth = tenth
        if not due:
            return
        self.last_line = now
        total = ctx.config.steps
        speed = self.speed(ctx, step, now)
        print(f"ganlab: step {step}/{total} {losses_line(losses)}" + (f" {speed}" if speed else ""), file=sys.stderr,
              flush=True)

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float]) -> None:
        self.evaluated = (step, dict(metrics))

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        """The run's end on one screen: how it ended and how long it took, its last losses and metrics,
        and the commands that show the rest."""
        if self.progress is not None:
            self.progress.stop()
        elapsed = time.monotonic() - self.started
        where = f"; run {ctx.run_id}" if ctx.run_id else ""
        lines = [f"{status.lower()} at step {ctx.step}/{ctx.config.steps} in {format_eta(elapsed)}{where}"]
        if self.losses:
            lines.append("  losses at step {}: {}".format(*self.losses))
        if self.evaluated is not None and self.evaluated[1]:  # metrics=none evaluates to nothing
            step, metrics = self.evaluated
            results_first = sorted(metrics, key=lambda key: (key.startswith("diag."), key))
            ordered = [(key, metrics[key]) for key in headline_first(ctx.extras.get("headline", ()), results_first)]
            shown = [f"{k}={v:.4g}" for k, v in ordered[:SUMMARY_METRICS]]
            more = f" (and {len(metrics) - SUMMARY_METRICS} more)" if len(metrics) > SUMMARY_METRICS else ""
            lines.append(f"  metrics at step {step}: {' '.join(shown)}{more}")
        if ctx.run_id:
            lines.append(f"  look: ganlab ui · ganlab sample {ctx.run_id} · ganlab compare -e {ctx.config.experiment}")
        print("\n".join(f"ganlab: {line}" for line in lines), file=sys.stderr)
