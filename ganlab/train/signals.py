"""Finish the current step on SIGINT/SIGTERM/SIGHUP instead of dying mid-write.

Inside :class:`GracefulStop` the first SIGINT, SIGTERM or SIGHUP only records the
signal; the training loop looks at ``signum`` after every step, writes a
checkpoint and stops (the run becomes KILLED, the process exits 128 + signum:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP). A second SIGINT aborts at once
(Ctrl-C twice when a step hangs) as :class:`Aborted`; the run is then marked KILLED
without a new checkpoint. Further SIGTERMs and SIGHUPs are ignored: batch schedulers
often repeat SIGTERM before their SIGKILL, and the checkpoint is already on its way.

SIGHUP is what a process gets when its terminal closes (a closed window, a dropped ssh
session). The terminal is gone then, and writing to it fails (EIO): the process's
standard streams that were a terminal are pointed at /dev/null, so that finishing the
step, the checkpoint and the record cannot fail on a message nobody can read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Aborted(KeyboardInterrupt):
    """A second SIGINT: stop at once, without finishing the step or writing a checkpoint."""

    signum = signal.SIGINT


class Signalled(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP where there is no step to finish — between the runs of one command
    (:class:`BetweenRuns`), while a run's record opens, a sweep between its variants, a study worker
    waiting on its trial: the way out at once, as a Ctrl-C would take it (a KeyboardInterrupt, so that
    no ``except Exception`` around a plugin's code turns it into that plugin's failure), carrying the
    signal for the exit code (128 + it) and the record."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: the BetweenRuns blocks this process is in: a GracefulStop that takes a signal tells them
_between: list[BetweenRuns] = []


def exit_code_of(interrupt: BaseException) -> int:
    """128 + the signal that stopped the process: 130 for Ctrl-C, 129 for a closed terminal."""
    return 128 + int(getattr(interrupt, "signum", signal.SIGINT))


@contextlib.contextmanager
def hangup_as_interrupt() -> Iterator[None]:
    """Within the block a SIGHUP raises :class:`Signalled` (after leaving the dead terminal), where a
    KeyboardInterrupt is the command's way out: it then stops as for Ctrl-C, said as SIGHUP, exit 129."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        detach_from_terminal()
        raise Signalled(signum)

    previous = signal.signal(signal.SIGHUP, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


class GracefulStop:
    """Within this context the first SIGINT/SIGTERM sets ``signum``; a second SIGINT aborts at once.

    Handlers can only be installed from the main thread; elsewhere (a run
    started from a worker thread) the context does nothing and signals keep
    their default behaviour.
    """

    def __init__(self, doing: str = "finishing this step and writing a checkpoint") -> None:
        self.signum: int | None = None
        self.doing = doing
        #: no step to finish yet (the run's record is being opened): a signal raises Signalled at once
        self.immediate = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise Aborted
            return
        self.signum = signum
        for outer in _between:  # a command of several runs stops before its next one (BetweenRuns.check)
            if outer.signum is None:
                outer.signum = signum
        if self.immediate:
            raise Signalled(signum)  # the line that ends the command says what happened
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


class BetweenRuns:
    """A command that trains several runs one after another (a sequential population's seeds).

    Within a run its own :class:`GracefulStop` takes a signal (finish the step, checkpoint, KILLED). Between
    runs — while the next one loads its data or builds, or the last one closes its record — there is no
    step to finish: a SIGINT, SIGTERM or SIGHUP there raises :class:`Signalled` at once. A signal that a
    run took too late to act on (during its last step, or while its record closed) is kept too, and
    :meth:`check` raises it before the next run starts, so that the command never trains on after it.
    Does nothing outside the main thread (no handlers can be installed there).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        if self.signum is None:
            self.signum = signum
        raise Signalled(signum)

    def check(self) -> None:
        """Raise :class:`Signalled` if a signal arrived since this block began."""
        if self.signum is not None:
            raise Signalled(self.signum)

    def __enter__(self) -> BetweenRuns:
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        _between.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        if self in _between:
            _between.remove(self)


def _write_stderr(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass


def detach_from_terminal() -> None:
    """Point stdin, stdout and stderr at /dev/null where they are a terminal (or no longer anything).

    Pipes and files are left alone: a ``kill -HUP`` from a batch system must not silence a log.
    """
    import stat

    for fd in (0, 1, 2):
        try:
            if not stat.S_ISCHR(os.fstat(fd).st_mode):
                continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, fd)
            os.close(null)
        except OSError:
            continue
