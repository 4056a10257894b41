"""Test plugin: pluggy's hook options on lifecycle hooks, noted in the file named by GANLAB_TEST_RECORD.

* ``wrapper=True`` around ``on_run_start``: sees the run before and after every other
  implementation, the tracker's included;
* ``tryfirst``/``trylast`` implementations of ``on_run_start`` (through ``specname``): the first
  runs before the tracker has opened the run, the last after;
* an old-style ``hookwrapper=True`` around ``on_step_end``, given the outcome;
* a ``wrapper=True`` around ``before_checkpoint`` that looks whether the checkpoint exists yet.
"""

import json
import os
from pathlib import Path
from typing import Any

from ganlab import hookimpl


def note(event: str, **data: Any) -> None:
    with open(os.environ["GANLAB_TEST_RECORD"], "a") as handle:
        handle.write(json.dumps({"event": event, **data}) + "\n")


@hookimpl(wrapper=True)
def on_run_start(ctx: Any) -> Any:
    before = ctx.run_id
    result = yield
    note("wrapper.on_run_start", before=before, after=ctx.run_id)
    return result


@hookimpl(specname="on_run_start", tryfirst=True)
def first_on_run_start(ctx: Any) -> None:
    note("tryfirst.on_run_start", run_id=ctx.run_id)


@hookimpl(specname="on_run_start", trylast=True)
def last_on_run_start(ctx: Any) -> None:
    note("trylast.on_run_start", run_id=ctx.run_id)


@hookimpl(hookwrapper=True)
def on_step_end(step: int) -> Any:
    outcome = yield
    note("hookwrapper.on_step_end", step=step, failed=outcome.exception is not None)


def _checkpoint(ctx: Any, step: int) -> bool:
    return (Path(ctx.workdir) / "checkpoints" / f"step-{step:08d}.pt").exists()


@hookimpl(wrapper=True)
def before_checkpoint(ctx: Any, step: int) -> Any:
    result = yield
    note("wrapper.before_checkpoint", step=step, checkpoint_exists=_checkpoint(ctx, step))
    return result


@hookimpl
def on_checkpoint(ctx: Any, step: int, path: Any) -> None:
    note("on_checkpoint", step=step, checkpoint_exists=Path(path).exists())
