"""The MLflow record is written by a second process, started before training sets up.

Why: importing MLflow and SQLAlchemy and opening a SQLite store costs seconds
of CPU, single-threaded (figures: docs/benchmarks.md, "Where the code's design
choices come from"). In the training process that time is added to every run;
in a process of its own it runs while training imports torch and loads its
data, which on any machine with two cores leaves a core idle. The
training process never imports MLflow: it sends each operation of the record
(see ``ganlab.record.store_worker.Session``) down a pipe.

Operations are pipelined: ``send`` does not wait for the answer, ``call``
waits for its own and for every answer still due before it, so a failure
of the store surfaces, in one line, at the latest at the next ``call``, and
is never lost. ``close`` waits until everything sent is written.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError
from ganlab.redact import mask_credentials


class TrackingError(GanlabError):
    """The MLflow store refused an operation, or the process writing it is gone.

    ``kind`` says which, for the account of the run's end (ganlab.record.tracker):
    ``lost`` (the writer process died), ``deleted`` or ``replaced`` (the
    database file), ``readonly``, or ``refused`` (anything else the store said).
    """

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


#: room in the request pipe: several sample grids (about 75 kB each at 32x32), so that a send
#: does not wait while the writer is busy (Linux's default pipe holds 64 kB)
PIPE_BYTES = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Give a pipe PIPE_BYTES of buffer where the system allows it; a smaller one only costs waiting."""
    import fcntl

    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size
        pass


#: ``GANLAB_RECORD_WRITER=thread``: the writer serves from a thread of this process instead. For a
#: process that has imported MLflow anyway and runs many short runs (the test suite's in-process runs):
#: it saves starting a process and importing MLflow there (seconds each). Everything else about the
#: record is the same; what a thread cannot give is the separate process's signal immunity, core and
#: kill-ability, so anything that tests those uses the default.
WRITER_ENV = "GANLAB_RECORD_WRITER"


class _WriterThread:
    """The record writer as a thread of this process, behind the part of ``subprocess.Popen`` used here."""

    def __init__(self, request_read: int, reply_write: int) -> None:
        import threading

        self.returncode: int | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._serve, args=(request_read, reply_write), daemon=True,
                                        name="ganlab-record-writer")
        self._thread.start()

    def _serve(self, request_read: int, reply_write: int) -> None:
        from ganlab.record.store_worker import serve

        requests = Connection(request_read, writable=False)
        replies = Connection(reply_write, readable=False)
        try:
            serve(requests, replies)
        finally:  # closing its ends is the "process exit" the other side sees
            requests.close()
            replies.close()
            self.returncode = 0

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._abandoned:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise subprocess.TimeoutExpired("ganlab record writer thread", timeout or 0)
        return self.returncode

    def kill(self) -> None:
        self._abandoned = True  # a thread cannot be killed: it ends after the operation it is in


#: Writers whose run's record is complete, waiting for this process's next run; None outside
#: ``reusable_writers``, where a closed record's writer ends with it.
_idle: list[tuple[Any, Connection, Connection, Any]] | None = None


@contextlib.contextmanager
def reusable_writers() -> Any:
    """Within it, a writer whose record is closed serves this process's next record instead of ending.

    A process that records runs one after another (a sweep's variants, a sequential population's
    seeds, a study worker's trials) then starts one writer, not one per run: each writer imports
    MLflow and opens the store again, seconds of CPU. Records open at the same time (a population's
    parent and its current seed) still each have their own. On leaving, the idle writers are closed
    and waited for, as ``StoreProcess.close`` does outside it. The CLI runs every command within it.
    """
    global _idle
    if _idle is not None:  # already within one
        yield
        return
    _idle = []
    try:
        yield
    finally:
        idle, _idle = _idle, None
        for process, requests, replies, log in idle:
            requests.close()  # end of file: the writer exits
            _wait_or_kill(process, StoreProcess.close_timeout)
            replies.close()
            if log is not None:
                log.close()


def _wait_or_kill(process: Any, timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class StoreProcess:
    """The training process's handle on the process that writes the record."""

    #: how long ``close`` waits for the record to be written before giving up on it
    close_timeout = 120.0

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._due = 0  # answers not read yet
        self._error: tuple[str, str] | None = None
        self.gone = False  # the writer died: nothing more reaches this run's record through it
        while _idle:  # a writer an earlier record of this process left (reusable_writers)
            self.process, self._requests, self._replies, self._log = _idle.pop()
            if self.process.poll() is None:
                if self._log is not None:  # its last words are this record's only
                    self._log.seek(0)
                    self._log.truncate()
                self.send("open", self.uri)
                return
            self._requests.close()
            self._replies.close()
            self._close_log()
        # The writer's own stderr (MLflow's and SQLAlchemy's messages, a crash's traceback) goes to a
        # file of its own, not the terminal: every failure comes back here as one line. --verbose
        # (GANLAB_VERBOSE=1) lets it through.
        self._log = None if os.environ.get("GANLAB_VERBOSE", "") == "1" else tempfile.TemporaryFile()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        if os.environ.get(WRITER_ENV) == "thread":
            self.process: Any = _WriterThread(request_read, reply_write)
            self._connect(request_write, reply_read)
            return
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ganlab.record.store_worker", str(request_read), str(reply_write)],
                pass_fds=(request_read, reply_write), env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True,
            )
        except OSError as exc:
            for fd in (request_read, request_write, reply_read, reply_write):
                os.close(fd)
            self._close_log()
            raise TrackingError(f"cannot start the process that writes the MLflow record: {exc}") from None
        os.close(request_read)  # the worker's ends: its exit must be seen as end of file here
        os.close(reply_write)
        self._connect(request_write, reply_read)

    def _connect(self, request_write: int, reply_read: int) -> None:
        _widen_pipe(request_write)
        self._requests: Connection | None = Connection(request_write, readable=False)
        self._replies = Connection(reply_read, writable=False)
        self.send("open", self.uri)

    def send(self, operation: str, *args: Any, **kwargs: Any) -> None:
        """Queue an operation; its failure is raised by a later ``send`` or ``call``."""
        self._collect(block=False)
        if self._requests is None:
            raise TrackingError(f"the MLflow record of this run is already closed ({self.uri})")
        try:
            self._requests.send((operation, args, kwargs))
        except OSError:
            raise self._lost() from None
        self._due += 1

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """Carry out an operation and return its result, after everything sent before it."""
        self.send(operation, *args, **kwargs)
        return self._collect(block=True)

    def wait(self) -> None:
        """Return once everything sent so far is written (raising the first failure)."""
        self._collect(block=True)

    def close(self) -> None:
        """Wait for the record to be written and the process to end (within ``reusable_writers``, to
        be idle: it then serves the next record); never raises."""
        if self._requests is not None:
            try:
                self._collect(block=True)
            except GanlabError:
                pass
            if _idle is not None and not self.gone and self.process.poll() is None:
                _idle.append((self.process, self._requests, self._replies, self._log))
                self._requests, self._log = None, None
                return
            self._requests.close()
            self._requests = None
        _wait_or_kill(self.process, self.close_timeout)
        self._replies.close()
        self._close_log()

    def abandon(self) -> None:
        """Stop the writer now, dropping what it has not written; never raises.

        For a record that holds nothing to complete: a signal that arrives before the run exists
        (while the writer may spend minutes in MLflow's retries of a server that does not
        answer). ``close`` would wait for all of that; a later ``close`` does nothing more.
        """
        if self._requests is not None:
            self._requests.close()
            self._requests = None
        self._due = 0
        self.gone = True
        if self.process.poll() is None:
            self.process.kill()  # it ignores SIGTERM and SIGINT (they are meant for training)
        self.process.wait()
        self._replies.close()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _collect(self, block: bool) -> Any:
        result = None
        while self._due and (block or self._replies.poll()):
            try:
                status, value = self._replies.recv()
            except (EOFError, OSError):
                self._due = 0
                raise self._lost() from None
            self._due -= 1
            if status == "error" and self._error is None:
                self._error = value  # (message, kind)
            result = value
        if self._error is not None:
            (message, kind), self._error = self._error, None
            raise TrackingError(message, kind)
        return result

    def _lost(self) -> TrackingError:
        """The writer is gone: say how it ended, and its last words if it left any."""
        self.gone = True
        try:
            code = self.process.wait(timeout=5)  # its pipe closed: it has exited or is about to
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            how = "stopped answering"
        elif code < 0:
            how = f"died (killed by {signal_name(-code)})"
        else:
            how = f"died (exit code {code})"
        last = self._last_words()
        return TrackingError(f"the process writing the MLflow record of this run {how}"
                             f"{f': {last}' if last else ''}", "lost")

    def _last_words(self) -> str:
        """The last line the writer wrote on its stderr (e.g. the exception that ended it)."""
        if self._log is None:
            return ""
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - 4096))
            lines = [line.strip() for line in self._log.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        # masked before the cut (the worker masks its stderr too; this one also covers a crash at start-up)
        return mask_credentials(next((line for line in reversed(lines) if line), ""))[:300]


def signal_name(signum: int) -> str:
    """SIGKILL for 9; 'signal N' for a number that names none."""
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
