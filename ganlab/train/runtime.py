"""Devices, seeds, precision: the torch settings a run needs before it builds anything."""

from __future__ import annotations

import contextlib
import os
import random
import re
from typing import Any

from ganlab.errors import ConfigError


def resolve_device(name: str) -> Any:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{name}' requested but CUDA is not available (use --device cpu or auto)")
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' requested but MPS is not available (use --device cpu or auto)")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def autocast(device: Any, precision: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast for the networks; heads switch it off again and compute in float32."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("precision fp16 needs a CUDA device (on CPU use bf16 or fp32)")
    return torch.autocast(device_type=device.type, dtype=dtype)


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, in a form torch.load(weights_only=True) accepts."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _python_state_to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_lists(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


# ---- memory: the words of the backstop (what ran out); the pre-check is ganlab.train.memory ----
def format_bytes(count: float) -> str:
    """``40000000000`` -> ``37.3 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(count) < 1024 or unit == "EiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


#: how allocators say they are out of memory: torch's CPU allocator, CUDA libraries, MPS
_OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory", "CUBLAS_STATUS_ALLOC_FAILED",
                  "CUDNN_STATUS_ALLOC_FAILED")


def out_of_memory(exc: BaseException) -> str | None:
    """What an out-of-memory failure could not do, in a few words; None when ``exc`` is no such failure."""
    import torch

    text = " ".join(str(exc).split())
    oom_type = getattr(torch, "OutOfMemoryError", None)
    is_oom = isinstance(exc, MemoryError) or (oom_type is not None and isinstance(exc, oom_type)) or (
        isinstance(exc, RuntimeError) and any(marker in text for marker in _OUT_OF_MEMORY))
    if not is_oom:
        return None
    asked = re.search(r"tried to allocate (\d+) bytes", text, re.IGNORECASE)
    if asked:  # the CPU allocator counts bytes
        return f"could not allocate {format_bytes(int(asked.group(1)))}"
    asked = re.search(r"Tried to allocate ([\d.]+ [KMGTP]?i?B)", text)
    if asked:  # CUDA's caching allocator
        return f"could not allocate {asked.group(1)}"
    first = re.split(r"(?<=[.!?]) ", text.split("] ", 1)[-1], maxsplit=1)[0]
    return first[:200] or type(exc).__name__
