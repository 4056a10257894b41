"""Records which lifecycle hooks fired, to a file named by GANLAB_TEST_RECORD."""

import json
import os

from ganlab import hookimpl


def _write(event, **data):
    path = os.environ.get("GANLAB_TEST_RECORD")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"event": event, **data}) + "\n")


@hookimpl
def on_run_start(ctx):
    _write("start", step=ctx.step, run_id=ctx.run_id)


@hookimpl
def on_step_end(step):  # fewer arguments than the spec: still called
    _write("step", step=step)


@hookimpl
def on_evaluate(ctx, step, metrics):
    _write("evaluate", step=step, keys=sorted(metrics))


@hookimpl
def on_run_end(ctx, status):
    _write("end", status=status, step=ctx.step)
