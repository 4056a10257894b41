"""Test plugin: hook wrappers that fail, and a hook that raises once, for isolation.

Each call is noted in the file named by GANLAB_TEST_RECORD before it fails, so a test can
see that a failed implementation is skipped afterwards.
"""

import json
import os
from typing import Any

from ganlab import hookimpl


def note(event: str, **data: Any) -> None:
    with open(os.environ["GANLAB_TEST_RECORD"], "a") as handle:
        handle.write(json.dumps({"event": event, **data}) + "\n")


@hookimpl(wrapper=True)
def on_step_end(step: int) -> Any:
    note("failing_wrappers.on_step_end", step=step)
    if step == 2:
        raise RuntimeError("wrapper broke before its yield")
    return (yield)


@hookimpl(wrapper=True)
def on_run_end(status: str) -> Any:
    note("failing_wrappers.on_run_end", status=status)
    yield
    raise RuntimeError("wrapper broke after its yield")


@hookimpl
def on_evaluate(step: int) -> None:
    note("failing_wrappers.on_evaluate", step=step)
    raise ValueError("evaluation hook broke")
