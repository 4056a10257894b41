"""Test plugin: lifecycle hooks that end with BaseExceptions other than KeyboardInterrupt.

``on_run_start`` raises GeneratorExit; ``on_step_end`` notes each call in the file named by
GANLAB_TEST_RECORD, then calls sys.exit(0).
"""

import json
import os
import sys
from typing import Any

from ganlab import hookimpl


@hookimpl
def on_run_start(ctx: Any) -> None:
    raise GeneratorExit("closing from on_run_start")


@hookimpl
def on_step_end(step: int) -> None:
    with open(os.environ["GANLAB_TEST_RECORD"], "a") as handle:
        handle.write(json.dumps({"event": "exits_in_hooks.on_step_end", "step": step}) + "\n")
    sys.exit(0)
