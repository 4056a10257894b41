"""Which GPU each local worker of a sweep gets.

A worker whose runs' device is ``auto`` or ``cuda`` sees one GPU (``CUDA_VISIBLE_DEVICES``), worker
k getting the k-th GPU modulo their number, so N workers spread over the machine's GPUs instead of
all landing on cuda:0. The GPUs handed out are, in this order of precedence: ``GANLAB_GPUS`` (a
comma-separated list of CUDA device ids or UUIDs, ``none`` for no assignment), the sweep's own
``CUDA_VISIBLE_DEVICES`` list, or every GPU ``nvidia-smi -L`` lists (torch is not imported to count
them). An explicit ``cuda:K``, ``cpu`` or ``mps`` is left alone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence

#: Environment override of the GPUs a sweep hands out.
GPUS_ENV = "GANLAB_GPUS"
#: Devices that mean "whichever GPU is first": those workers are spread over the GPUs.
SPREAD_DEVICES = ("auto", "cuda")


def job_environment(environ: Mapping[str, str], device: str, slot: int,
                    gpus: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """The environment of the worker in ``slot``, and the GPU it is given (None: none assigned).

    A worker on ``auto`` or ``cuda`` sees one GPU, the slot's turn of ``gpus``; it then calls it
    cuda:0. Any other device, or no GPUs, leaves the environment as it is.
    """
    env = dict(environ)
    if device not in SPREAD_DEVICES or not gpus:
        return env, None
    gpu = gpus[slot % len(gpus)]
    env["CUDA_VISIBLE_DEVICES"] = gpu
    return env, gpu


def visible_gpus(environ: Mapping[str, str], count: Callable[[], int] | None = None) -> list[str]:
    """The CUDA device ids a sweep hands out: GANLAB_GPUS, else CUDA_VISIBLE_DEVICES, else nvidia-smi's."""
    if GPUS_ENV in environ:
        text = environ[GPUS_ENV]
        return [] if text.strip().lower() == "none" else device_list(text)
    if "CUDA_VISIBLE_DEVICES" in environ:
        return device_list(environ["CUDA_VISIBLE_DEVICES"])
    return [str(index) for index in range((count or nvidia_smi_gpus)())]


def device_list(text: str) -> list[str]:
    """'0, 2,GPU-ab12' -> ['0', '2', 'GPU-ab12']. Like CUDA, the list ends at the first empty or
    negative entry ('-1' hides every GPU)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        out.append(item)
    return out


def nvidia_smi_gpus() -> int:
    """How many GPUs ``nvidia-smi -L`` lists (0 without the tool or a driver); MIG slices are not counted."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    if listing.returncode != 0:
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())
