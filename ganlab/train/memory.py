"""Memory: how much a run has, and the one pre-check of whether what it needs fits.

Single runs and populations (``check_step``) and datasets (``check_fits``, e.g. the
oracle) are refused here, before any run exists, in one line. Estimates are lower
bounds, so nothing that would fit is refused; what passes and still runs out is the
engine's backstop (``ganlab.train.runtime.out_of_memory``).
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganlab.config import RunConfig
from ganlab.data import StreamingData, TensorData
from ganlab.errors import GanlabError
from ganlab.train.runtime import autocast, format_bytes


def available(device: Any) -> int | None:
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


def check_fits(need: int, what: str, advice: str | Callable[[int], str], device: Any = "cpu") -> None:
    """Refuse, in one line, ``need`` bytes (a lower bound) where less is available on ``device`` (nothing where
    that is unknown): ``WHAT needs at least N but only M is available on DEVICE; ADVICE``, ``advice`` maybe a
    function of the bytes available. A dataset calls it before a large allocation (e.g. the oracle)."""
    import torch

    room = available(torch.device(device))
    if room is None or need <= room:
        return
    advice = advice(room) if callable(advice) else advice
    raise GanlabError(f"{what} needs at least {format_bytes(need)} but only {format_bytes(room)} is available "
                      f"on {device}; {advice}")


def check_step(config: RunConfig, device: Any, generator: Any, discriminator: Any, data: TensorData | StreamingData,
               plugin_optimizers: dict[str, Any] | None = None, conditioning: Any = None, replicas: int = 1) -> None:
    """Refuse a batch size (``replicas`` > 1: a population of that many seeds, N times one replica's step)
    whose training step cannot fit. The estimate (``step_memory``) is a lower bound: only what one step must
    hold at once (measured on a 2-core CPU at 55-65 % of the real peak for the mlp and dcgan)."""
    if available(device) is None:
        return  # unknown (e.g. mps): skip the forward passes
    need = step_memory(config, device, generator, discriminator, data, plugin_optimizers, conditioning)
    batch, n = config.batch_size, replicas

    def advice(room: int) -> str:
        if n > 1:
            return f"use at most about {max(1, room // max(need(batch), 1))} seeds at a time"
        fits = bisect.bisect_right(range(1, batch), room, key=need)  # the largest smaller batch that fits
        return (f"use a smaller --batch-size (by this estimate, at most {fits} could fit)" if fits else
                "even batch size 1 does not fit: use smaller networks or another device")

    what = (f"{n} replicas of batch size {batch} do not fit in memory: one training step of all of them" if n > 1 else
            f"batch size {batch} does not fit in memory: one training step (the batch's samples and what the "
            "networks keep for the backward pass)")
    check_fits(n * need(batch), what, advice, device)


def step_memory(config: RunConfig, device: Any, generator: Any, discriminator: Any, data: TensorData | StreamingData,
                plugin_optimizers: dict[str, Any] | None = None, conditioning: Any = None) -> Callable[[int], int]:
    """Bytes one training step holds at least, as a function of the batch size.

    Fixed: each network's gradients and its optimiser's state (Adam: two moments,
    so 3x the weights in all), and with ``ema`` the averaged copy of G (made after this check).
    Per sample (``kept_bytes_per_sample``): in the G step, the noise and what G
    and D keep for the backward pass; in the D step, the real and the fake
    samples and what D keeps for each. A resident dataset's real batch is at
    most the dataset.
    """
    plugin_optimizers = plugin_optimizers or {}
    g_bytes, d_bytes = (sum(p.numel() * p.element_size() for p in net.parameters()) for net in (generator, discriminator))
    fixed = ((1 + optimizer_state_copies(config.optimizer_g, config, plugin_optimizers.get(config.optimizer_g))) * g_bytes
             + (1 + optimizer_state_copies(config.optimizer_d, config, plugin_optimizers.get(config.optimizer_d))) * d_bytes
             + (g_bytes if config.ema else 0))
    element = data.x.element_size() if isinstance(data, TensorData) and not data.is_text else 4
    sample = math.prod(data.shape) * element
    g_step_kept, d_kept = kept_bytes_per_sample(config, device, generator, discriminator, conditioning)
    real_cap = len(data) if isinstance(data, TensorData) else None

    def need(batch: int) -> int:
        real = batch if real_cap is None else min(batch, real_cap)
        g_step = batch * max(g_step_kept, sample)
        d_step = (real + batch) * max(d_kept, sample)
        return fixed + max(g_step, d_step)

    return need


def kept_bytes_per_sample(config: RunConfig, device: Any, generator: Any, discriminator: Any,
                          conditioning: Any = None) -> tuple[int, int]:
    """Bytes per sample held through the backward pass of the G step (noise, G, D) and of D on one batch.

    Measured with autograd's saved-tensor hooks on forward passes at batch 2
    and 4: the difference is what one more sample costs (the weights that
    layers save cancel out). Nothing changes: evaluation mode (BatchNorm's
    running statistics stay), forked RNGs, no backward. An architecture whose
    forward fails on such a batch gets 0 here, and its failure shows in training.
    """
    import torch

    from ganlab.train.conditioning import discriminator_call, generator_call

    G, D = generator_call(generator, conditioning), discriminator_call(discriminator, conditioning)

    def measure(batch: int) -> tuple[int, int]:
        noise = torch.zeros(batch, config.latent_dim, device=device)
        labels = torch.zeros(batch, dtype=torch.long, device=device)
        g_step, scores = _kept_by(lambda: D(G(noise, labels), labels), noise)
        del scores  # frees the G step's graph before D is measured alone
        with torch.no_grad():
            sample = G(noise, labels)
        d_alone, _ = _kept_by(lambda: D(sample, labels), sample)
        return g_step, d_alone

    modes = [(m, m.training) for net in (generator, discriminator) for m in net.modules()]
    devices = [device] if device.type == "cuda" else []
    # a packed D (PacGAN) scores whole packs: measure whole packs, or its share would be undercounted
    unit = max(1, int(getattr(discriminator, "pack", 1)))
    try:
        with torch.random.fork_rng(devices=devices), autocast(device, config.precision):
            for module, _ in modes:
                module.eval()
            (g2, d2), (g4, d4) = measure(2 * unit), measure(4 * unit)
    except Exception:  # the forward of a plugin's network: training will report it
        return 0, 0
    finally:
        for module, training in modes:
            module.train(training)
    return max(0, (g4 - g2) // (2 * unit)), max(0, (d4 - d2) // (2 * unit))


def _kept_by(forward: Callable[[], Any], given: Any) -> tuple[int, Any]:
    """Bytes of the distinct storages alive through a forward's backward: its input, what autograd
    saves, its output; and the output."""
    import torch

    storages: dict[int, int] = {}

    def keep(tensor: Any) -> Any:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    keep(given)
    # the graph, and so every saved tensor, stays alive until ``out`` goes: no address is reused meanwhile
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        out = forward()
    if isinstance(out, torch.Tensor):
        keep(out)
    return sum(storages.values()), out


def optimizer_state_copies(kind: str, config: RunConfig, made: Any = None) -> int:
    """How many tensors the size of the weights optimiser ``kind`` keeps: its ``state_copies`` (a number,
    or a function of the run's configuration), else 2, as Adam."""
    copies = getattr(made, "state_copies", 2)
    return int(copies(config) if callable(copies) else copies)
