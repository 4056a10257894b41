"""Test plugin: sleep after every step (``GANLAB_TEST_STEP_SLEEP`` seconds, default 0.05).

Tiny test runs finish in well under a second; a signal test needs a run that
is still training when the signal arrives. Sleeping touches no RNG, so a slowed
run follows exactly the trajectory of an unslowed one.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ganlab import hookimpl


@hookimpl
def on_step_end(ctx: Any, step: int, losses: Any) -> None:
    time.sleep(float(os.environ.get("GANLAB_TEST_STEP_SLEEP", "0.05")))
