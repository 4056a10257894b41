"""Test plugin: dataset ``slow-digits``, the built-in ``digits`` loaded slowly.

Each ``load()`` first adds one to the count in the file ``GANLAB_TEST_LOAD_MARKER`` (default
``loads``), then sleeps ``GANLAB_TEST_LOAD_SLEEP`` seconds (default 3): a test sees which load is
under way and sends its signal there, before any step of that run (a sequential population's next
seed loading its data, for one).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ganlab import Option, hookimpl


class SlowDigits:
    cacheable = False
    labelled = True

    def __init__(self, size: int = 32) -> None:
        from ganlab_plugins.datasets.digits import Digits

        self.inner = Digits(size=size)

    def load(self, request: Any) -> Any:
        marker = Path(os.environ.get("GANLAB_TEST_LOAD_MARKER", "loads"))
        count = int(marker.read_text() or 0) if marker.exists() else 0
        marker.write_text(str(count + 1))
        time.sleep(float(os.environ.get("GANLAB_TEST_LOAD_SLEEP", "3")))
        return self.inner.load(request)


@hookimpl
def register_datasets(register: Any) -> None:
    register("slow-digits", SlowDigits, summary="digits, loaded slowly (tests only)",
             options={"size": Option(int, 32, "image side in pixels", min=4, max=64)})
