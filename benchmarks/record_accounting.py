"""A benchmark plugin: the time a recorded run's training process spends on its record.

bench_logging.py loads it into ``ganlab run`` (``--plugin benchmarks/record_accounting.py``)
and reads what it writes at exit to the file named by ``GANLAB_RECORD_ACCOUNTING``.

Wall-time pairs of whole runs cannot resolve a 2 % difference on a shared
machine whose runs spread by ±15 %. This plugin measures the record's cost in
one run instead, by timing (never changing) every place where the training
process works for the record or waits for it:

* starting the writer process, waiting for it to open the store, closing it
  (``StoreProcess.__init__``, ``wait``, ``close``, called by ganlab.train.runner);
* the tracker's hooks (``MlflowTracker.on_*``: metrics, images, outputs, the
  run's start and end, each round trip to the writer included);
* checkpoints (``Trainer.save_checkpoint``), which only a recorded run writes;
* the writer's CPU time while the training loop runs, which it takes from the
  training threads on a machine with no spare core.

Nested calls count once, in the outermost one (a checkpoint's hook inside
``save_checkpoint``).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

from ganlab import hookimpl
from ganlab.train.engine import Trainer
from ganlab.record.store_process import StoreProcess
from ganlab.record.tracker import MlflowTracker

OUTPUT = os.environ.get("GANLAB_RECORD_ACCOUNTING")
spent: dict[str, float] = {}
state: dict[str, Any] = {"depth": 0, "writer_pid": None, "loop_start": None, "loop_seconds": None,
                         "writer_cpu_at_start": None, "writer_cpu_in_loop": 0.0}


def _timed(cls: type, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(cls, name)

    @functools.wraps(original)  # keeps pluggy's hookimpl marker on the tracker's hooks
    def timed(*args: Any, **kwargs: Any) -> Any:
        outermost = state["depth"] == 0
        state["depth"] += 1
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            state["depth"] -= 1
            if outermost:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start

    setattr(cls, name, timed)


def _remember_writer(self: StoreProcess, *args: Any, **kwargs: Any) -> None:
    _start_writer(self, *args, **kwargs)
    state["writer_pid"] = self.process.pid


_start_writer = StoreProcess.__init__
StoreProcess.__init__ = _remember_writer  # type: ignore[method-assign]
for _name, _label in (("__init__", "writer start"), ("wait", "waiting for the store"), ("close", "closing the record")):
    _timed(StoreProcess, _name, _label)
for _hook in ("on_run_start", "on_step_end", "on_samples", "on_evaluate", "on_checkpoint", "on_run_end"):
    _timed(MlflowTracker, _hook, f"tracker {_hook}")
_timed(Trainer, "save_checkpoint", "checkpoints")


def _cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@hookimpl(trylast=True)
def on_run_start(ctx: Any) -> None:
    state["loop_start"] = time.perf_counter()
    state["writer_cpu_at_start"] = _cpu_seconds(state["writer_pid"])


@hookimpl(tryfirst=True)
def on_run_end(ctx: Any, status: str, error: BaseException | None) -> None:
    state["loop_seconds"] = time.perf_counter() - state["loop_start"]
    now, before = _cpu_seconds(state["writer_pid"]), state["writer_cpu_at_start"]
    if now is not None and before is not None:
        state["writer_cpu_in_loop"] = now - before


@atexit.register
def _write() -> None:
    if OUTPUT:
        with open(OUTPUT, "w") as handle:
            json.dump({"spent": spent, "loop_seconds": state["loop_seconds"],
                       "writer_cpu_in_loop": state["writer_cpu_in_loop"]}, handle)
