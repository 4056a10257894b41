"""Test plugin: starts a thread that is not a daemon and prints forever (a careless plugin).

Without ganlab's own exit, Python would wait for the thread at the end and the command
would never return.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ganlab import hookimpl


def chatter() -> None:
    while True:
        print("still here", flush=True)
        time.sleep(0.05)


@hookimpl
def on_run_start(ctx: Any) -> None:
    threading.Thread(target=chatter, name="chatter").start()
