"""One process trains a run at a time.

Whoever trains a run — a new run, ``ganlab resume``, a population and each of its
replicas, an untracked ``--run-dir`` — holds an exclusive ``flock`` on a lock file among
the run's local files for as long as it writes the run. A second process that wants the
same run finds the lock taken and stops in one line naming the owner's pid and host,
before it has touched the record or the checkpoints. The kernel drops the lock when the
owner dies, however it dies (SIGKILL and the OOM killer included), so there is never a
stale lock to clear by hand: a checked liveness (``ganlab.record.heartbeat``) is a
question, this lock is the answer.

Why a file lock and not a compare-and-set on an MLflow tag: MLflow's stores have no
atomic conditional write, so two resumes could both read "not owned" and both set it.

Scope: processes that see one file system. With a remote artifact store each machine
keeps its own local copy of a run's files (``mlruns/uploads/RUN_ID``); two machines
resuming one run do not see each other's lock, and only the heartbeat warning of
``ganlab resume`` stands between them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ganlab.errors import GanlabError
from ganlab.record.heartbeat import hostname

LOCK_NAME = "owner.lock"


class RunOwned(GanlabError):
    """Another live process trains this run."""


@dataclass
class _Held:
    fd: int
    count: int


#: locks this process holds, by absolute path: taking one twice (``ganlab resume`` and then
#: the run's tracker) must not deadlock on the process's own lock
_held: dict[Path, _Held] = {}


def run_lock(run_id: str, local: Path | None) -> Path:
    """The lock file of a tracked run whose local artifact directory is ``local`` (None: a remote
    artifact store): beside that directory, so never an artifact itself."""
    if local is None:  # a remote artifact store: the run's local copy lives in mlruns/uploads/RUN_ID
        return Path("mlruns") / "uploads" / f"{run_id}.{LOCK_NAME}"
    return local.parent / LOCK_NAME


def directory_lock(directory: Path) -> Path:
    """The lock file of an untracked run's ``--run-dir``."""
    return directory / LOCK_NAME


def own(path: Path, what: str) -> Path:
    """Take the lock at ``path`` for this process, or raise RunOwned naming its owner.

    ``what`` names the run in the message ("run 'abc…'"). Re-entrant within a process.
    """
    path = path.absolute()
    held = _held.get(path)
    if held is not None:
        held.count += 1
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    except OSError as exc:
        raise GanlabError(f"cannot take ownership of {what}: cannot open its lock file {path}: "
                          f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        owner, pid = _owner(path)
        stop = f"kill -TERM {pid}" if pid is not None else "kill -TERM to its pid"
        raise RunOwned(f"{what} is being trained by {owner}; wait for it to end, or stop it "
                       f"(Ctrl-C in its terminal, or {stop}: it checkpoints and exits), then resume") from None
    except OSError as exc:  # a file system without locks: say so rather than train unprotected
        os.close(fd)
        raise GanlabError(f"cannot lock {path} to own {what}: {exc.strerror or exc}") from None
    record = json.dumps({"pid": os.getpid(), "host": hostname(), "since": time.time()}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    _held[path] = _Held(fd, 1)
    return path


def release(path: Path) -> None:
    """Give up one hold of the lock at ``path``; the last one unlocks it."""
    path = path.absolute()
    held = _held.get(path)
    if held is None:
        return
    held.count -= 1
    if held.count > 0:
        return
    del _held[path]
    with contextlib.suppress(OSError):
        os.ftruncate(held.fd, 0)  # no owner named once nobody owns it
    os.close(held.fd)  # closing the last descriptor drops the flock


@contextlib.contextmanager
def owned(path: Path, what: str) -> Iterator[Path]:
    """Hold the lock at ``path`` for the duration of the block."""
    taken = own(path, what)
    try:
        yield taken
    finally:
        release(taken)


def _owner(path: Path, wait: float = 1.0) -> tuple[str, int | None]:
    """Who holds the lock, and its pid, from what it wrote into the file (which follows its flock
    by a moment, so an empty file is read again for up to ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            record = json.loads(path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("pid"), int):
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record.get("since", 0))))
            return f"pid {record['pid']} on host {record.get('host', '?')} (since {since})", record["pid"]
        if time.monotonic() > deadline:
            return "another process", None
        time.sleep(0.05)
