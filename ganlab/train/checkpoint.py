"""Checkpoints: written atomically, read without executing anything from the file.

A checkpoint holds everything needed to continue a run on the same trajectory:
both networks, both optimisers, their gradient scalers, the step, every RNG state,
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
_TEMP = re.compile(r"^\.step-\d+\.pt\.tmp\d+$")
#: what every checkpoint holds; a file without one of these cannot resume a run
REQUIRED_KEYS = ("step", "generator", "discriminator", "opt_g", "opt_d", "rng", "data_order", "config")
#: the gradient scalers, one per network; a checkpoint written before holds one, "scaler", that both shared
SCALER_KEYS = ("scaler_d", "scaler_g")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


class CheckpointWriteError(GanlabError):
    """The file system refused a checkpoint (a full disk, a file size limit, a read-only directory)."""

    def __init__(self, path: Path, error: OSError, previous: Path | None, also: str = "") -> None:
        kept = (f"the previous checkpoint {previous.name} (step {step_of(previous)}) is kept"
                if previous is not None else "no earlier checkpoint exists")
        super().__init__(f"cannot write checkpoint {path}: {error.strerror or error}; {kept}"
                         + (f"; {also}" if also else ""))
        self.path, self.error, self.previous = path, error, previous


def save_atomic(state: dict[str, Any], directory: Path, step: int, keep: int) -> Path:
    """Write ``state`` as ``step-NNNNNNNN.pt`` in ``directory``; keep the newest ``keep`` checkpoints.

    The file appears under its real name only once complete and on disk
    (write to a temporary name, fsync, rename, fsync the directory), so a
    crash or a second Ctrl-C mid-write leaves the previous checkpoints intact
    and at worst a hidden temporary file, removed by the next save. A write the
    file system refuses raises :class:`CheckpointWriteError`, with the earlier
    checkpoints untouched and the temporary file removed.
    """
    final = directory / checkpoint_name(step)
    tmp = directory / f".{final.name}.tmp{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_torch_file({"format": FORMAT, **state}, tmp)
        os.replace(tmp, final)
    except OSError as exc:
        _remove(tmp)
        found = list_checkpoints(directory)
        raise CheckpointWriteError(final, exc, found[-1] if found else None) from None
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-max(1, keep)]:
        old.unlink(missing_ok=True)
    for leftover in directory.iterdir():
        if _TEMP.match(leftover.name):  # from a writer that died mid-write
            leftover.unlink(missing_ok=True)
    return final


def write_torch_file(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path``, flushed and fsynced; a refused write raises the OSError itself.

    torch's zip writer turns a failed write into a RuntimeError ("enforce fail at
    inline_container.cc ... unexpected pos"), losing the reason; the handle
    here keeps the OSError (errno EFBIG, ENOSPC...) that caused it.
    """
    import torch

    with open(path, "wb") as handle:
        writer = _KeepsWriteError(handle)
        try:
            torch.save(obj, writer)
        except RuntimeError as exc:
            cause = writer.error or _os_error_in(exc)
            if cause is None:
                raise
            raise cause from None
        handle.flush()
        os.fsync(handle.fileno())


class _KeepsWriteError:
    """A binary file handle that remembers the OSError of a failed write."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError among an exception's causes, if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # a directory turned read-only: the next save removes the leftover


def step_of(path: Path) -> int | None:
    """The step in a checkpoint's file name."""
    found = _NAME.match(path.name)
    return int(found.group(1)) if found else None


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
    """Read a checkpoint; a corrupt, truncated, foreign or unsafe file is refused in one line.

    ``weights_only=True`` lets the unpickler build tensors and plain
    containers only: a file carrying any other object (which could run code
    while being unpickled) is refused, never executed.
    """
    import stat

    import torch

    from ganlab.config import file_kind

    try:  # torch.load of a named pipe waits for a writer for ever, and reads a device to no end
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise GanlabError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise GanlabError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise GanlabError(f"checkpoint {path} is {file_kind(mode)}, not a regular file; it is not a checkpoint "
                          f"ganlab wrote: delete it to resume from the previous checkpoint, if any")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanlabError(f"checkpoint not found: {path}") from None
    except Exception as exc:
        unsafe = _unsafe_global(str(exc))
        if unsafe:
            raise GanlabError(
                f"checkpoint {path} holds pickled Python objects ({unsafe}), not just tensors; refusing to load it "
                f"(unpickling could run code); only load checkpoints ganlab wrote"
            ) from None
        raise GanlabError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {_reason(exc)}); "
            f"delete it to resume from the previous checkpoint, if any"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise GanlabError(f"{path} is not a ganlab checkpoint (format {FORMAT} expected)")
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if "scaler" not in state:
        missing += [key for key in SCALER_KEYS if key not in state]
    if missing:
        raise GanlabError(f"checkpoint {path} is incomplete: it lacks {', '.join(missing)}")
    return state


def scaler_states(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """D's and G's gradient-scaler states; an older checkpoint's one shared scaler starts both."""
    if all(key in state for key in SCALER_KEYS):
        return state["scaler_d"], state["scaler_g"]
    return state["scaler"], state["scaler"]


def _unsafe_global(message: str) -> str | None:
    """The global (e.g. posix.system) the weights-only unpickler refused, when that is why it failed."""
    match = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", message)
    return match.group(1) if match else None


def _reason(exc: BaseException) -> str:
    """torch's own words, without its paragraphs about weights_only (which do not apply: the file is damaged)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    first_sentence = " ".join(text.split()).split(". ", 1)[0]
    return first_sentence[:200] or "unreadable"
