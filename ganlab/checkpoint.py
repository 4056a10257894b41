"""Checkpoints: written atomically, read without executing anything from the file.

A checkpoint holds everything needed to continue a run on the same trajectory:
both networks, both optimisers, the gradient scaler, the step, every RNG state,
the data order and the resolved configuration. It is written to a temporary
file, fsynced and renamed, so a crash mid-write never leaves a torn file under
the real name; it is read with ``torch.load(weights_only=True)``, which refuses
arbitrary pickled objects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError

FORMAT = "ganlab-checkpoint-1"
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def save_atomic(state: dict[str, Any], directory: Path, step: int, keep: int) -> Path:
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(step)
    tmp = directory / f".{final.name}.tmp{os.getpid()}"
    with open(tmp, "wb") as handle:
        torch.save({"format": FORMAT, **state}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint; a corrupt, truncated or foreign file is refused in one line."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanlabError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200]
        raise GanlabError(f"checkpoint {path} is corrupt or not a ganlab checkpoint ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanlabError(f"checkpoint {path} is not a ganlab checkpoint (format {FORMAT} expected)")
    return state
