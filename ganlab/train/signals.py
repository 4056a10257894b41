"""Finish the current step on SIGINT/SIGTERM instead of dying mid-write.

Inside :class:`GracefulStop` the first SIGINT or SIGTERM only records the
signal; the training loop looks at ``signum`` after every step, writes a
checkpoint and stops (the run becomes KILLED, the process exits 128 + signum:
130 for SIGINT, 143 for SIGTERM). A second SIGINT aborts at once (Ctrl-C
twice when a step hangs); the run may then be left RUNNING, and ``ganlab
runs`` reports it stale. Further SIGTERMs are ignored: batch schedulers often
repeat SIGTERM before their SIGKILL, and the checkpoint is already on its way.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM)


class GracefulStop:
    """Within this context the first SIGINT/SIGTERM sets ``signum``; a second SIGINT aborts at once.

    Handlers can only be installed from the main thread; elsewhere (a run
    started from a worker thread) the context does nothing and signals keep
    their default behaviour.
    """

    def __init__(self, doing: str = "finishing this step and writing a checkpoint") -> None:
        self.signum: int | None = None
        self.doing = doing
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signum = signum
        # os.write, not print: a handler may interrupt a print to stderr (the progress bar's)
        name = signal.Signals(signum).name
        _write_stderr(f"ganlab: {name} received; {self.doing} (Ctrl-C again to abort at once)\n")

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass
