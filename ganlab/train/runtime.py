"""Devices, seeds, precision: the torch settings a run needs before it builds anything."""

from __future__ import annotations

import contextlib
import os
import random
import re
from pathlib import Path
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


# ---- memory ------------------------------------------------------------------------
def available_memory(device: Any) -> int | None:
    """Bytes this process can still allocate on ``device``; None where that is unknown (e.g. mps).

    CPU: the least of the kernel's MemAvailable, what the process's cgroup
    (a container's memory limit) leaves, and what an address-space limit
    (``ulimit -v``) leaves. CUDA: free device memory plus what torch's caching
    allocator holds unused.
    """
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    known = [v for v in (_mem_available(), _cgroup_available(), _address_space_left()) if v is not None]
    return min(known) if known else None


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _field_kib(text: str | None, name: str) -> int | None:
    """``Name:   123 kB`` from /proc/meminfo or /proc/self/status, in bytes."""
    found = re.search(rf"^{name}:\s+(\d+) kB", text or "", re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _mem_available() -> int | None:
    available = _field_kib(_read("/proc/meminfo"), "MemAvailable")
    if available is not None:
        return available
    # elsewhere (macOS): all of the physical memory. Free pages would undercount what the
    # system can reclaim and refuse batches that fit; the whole memory never refuses one that does
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What the memory limit of this process's cgroup leaves (page cache it could reclaim counts as free)."""
    path = next((line[3:] for line in (_read("/proc/self/cgroup") or "").splitlines() if line.startswith("0::")), "/")
    candidates = (  # cgroup v2, then v1: directory, limit, usage, the reclaimable page cache in memory.stat
        (Path("/sys/fs/cgroup") / path.strip().lstrip("/"), "memory.max", "memory.current", "inactive_file"),
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
    )
    for base, limit_file, usage_file, inactive in candidates:
        limit, usage = (_read(base / limit_file) or "").strip(), (_read(base / usage_file) or "").strip()
        if not (limit.isdigit() and usage.isdigit()):
            continue  # no such cgroup file system, or no limit ("max")
        if int(limit) >= 1 << 60:  # v1's "no limit"
            return None
        found = re.search(rf"^{inactive} (\d+)$", _read(base / "memory.stat") or "", re.MULTILINE)
        used = int(usage) - (int(found.group(1)) if found else 0)
        return max(0, int(limit) - used)
    return None


def _address_space_left() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    size = _field_kib(_read("/proc/self/status"), "VmSize")
    return None if size is None else max(0, soft - size)


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
