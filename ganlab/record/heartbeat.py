"""Is the process behind a RUNNING run still alive?

A run killed with SIGKILL (or by the OOM killer, or a lost node) never gets
to mark itself KILLED: MLflow shows it RUNNING forever. The tracker therefore
tags every run with who is writing it (host, pid, the pid's start time) and a
heartbeat (wall-clock time and step, refreshed at least every
``MlflowTracker.heartbeat_seconds`` while steps complete). From these tags:

* on the same host, the answer is exact: the pid is gone, is a zombie, or now
  belongs to a different process (its start time differs) -> dead;
* from another host, only the heartbeat's age can tell: older than
  ``stale_after`` seconds -> presumed dead.

Imports nothing heavy: ``ganlab runs`` uses it without torch.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

TAG_HOST = "ganlab.host"
TAG_PID = "ganlab.pid"
TAG_PID_START = "ganlab.pid_start"
TAG_HEARTBEAT = "ganlab.heartbeat"
TAG_STEP = "ganlab.step"

#: Default age of the last heartbeat after which a run on another host is presumed dead.
STALE_AFTER_SECONDS = 900.0


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None where unknown."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may contain spaces and parentheses
    return fields[19] if len(fields) > 19 else None


def _proc_stat(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def process_tags() -> dict[str, str]:
    """Who writes this run: set when a run starts or resumes."""
    pid = os.getpid()
    tags = {TAG_HOST: hostname(), TAG_PID: str(pid)}
    start = process_start(pid)
    if start is not None:
        tags[TAG_PID_START] = start
    return tags


def heartbeat_tags(step: int) -> dict[str, str]:
    return {TAG_HEARTBEAT: f"{time.time():.0f}", TAG_STEP: str(step)}


@dataclass(frozen=True)
class Liveness:
    """What is known about a run's writer. ``stale``: RUNNING, but nobody is writing it."""

    stale: bool
    state: str  # alive | dead | silent | recent | ended
    detail: str


def _pid_state(pid: int, start: str | None) -> tuple[bool, str]:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, f"pid {pid} is gone"
    except PermissionError:
        return True, f"pid {pid} runs (another user)"
    except OSError as exc:
        return False, f"pid {pid} cannot be checked ({exc.strerror})"
    stat = _proc_stat(pid)
    if stat is not None:
        fields = stat.rsplit(")", 1)[-1].split()
        if fields and fields[0] in ("Z", "X"):
            return False, f"pid {pid} has exited"
        if start is not None and len(fields) > 19 and fields[19] != start:
            return False, f"pid {pid} now belongs to another process"
    return True, f"pid {pid} is running"


def last_seen(run: Any) -> float | None:
    """Seconds since the epoch of the run's last sign of life: heartbeat, else its start."""
    tags = run.data.tags
    beat = tags.get(TAG_HEARTBEAT)
    if beat is not None:
        try:
            return float(beat)
        except ValueError:
            pass
    start = getattr(run.info, "start_time", None)
    return start / 1000.0 if start else None


def liveness(run: Any, now: float | None = None, stale_after: float = STALE_AFTER_SECONDS) -> Liveness:
    """Decide whether a run's writer is alive; only RUNNING runs can be stale."""
    if run.info.status != "RUNNING":
        return Liveness(False, "ended", run.info.status)
    tags = run.data.tags
    host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if host == hostname() and pid is not None and pid.isdigit():
        alive, detail = _pid_state(int(pid), tags.get(TAG_PID_START))
        return Liveness(not alive, "alive" if alive else "dead", f"{detail} on this host")
    now = time.time() if now is None else now
    seen = last_seen(run)
    where = f" on {host}" if host else ""
    if seen is None:
        return Liveness(True, "silent", f"no heartbeat{where}")
    age = max(0.0, now - seen)
    if age > stale_after:
        return Liveness(True, "silent", f"no heartbeat for {format_age(age)}{where}")
    return Liveness(False, "recent", f"heartbeat {format_age(age)} ago{where}")


def format_age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
