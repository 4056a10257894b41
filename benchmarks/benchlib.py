"""Shared pieces of the benchmark scripts: machine description, timing, data files.

The benchmarks are scripts, not tests (``python benchmarks/bench_overhead.py``).
Each compares ganlab against a baseline measured in the same invocation, so a
ratio stays meaningful on a machine whose absolute speed drifts; on a shared
machine the load average is printed beside every figure.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine(torch_too: bool = True) -> dict[str, Any]:
    """What the figures ran on; torch is imported only when asked (start-up benchmarks)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "python": platform.python_version(),
        "load_1min": load_average(),
    }
    if torch_too:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    return info


def describe(info: dict[str, Any]) -> str:
    parts = [f"{info['cpu']}, {info['cores']} cores", f"Python {info['python']}"]
    if "torch" in info:
        parts.append(f"torch {info['torch']} ({info['torch_threads']} threads)")
    if info.get("gpu"):
        parts.append(f"GPU {info['gpu']}")
    if info.get("load_1min") is not None:
        parts.append(f"load average {info['load_1min']:.2f} at start")
    return "; ".join(parts)


def warn_if_busy(limit: float = 0.5) -> None:
    """Say so when other work shares the CPU: figures taken then are noisier."""
    load = load_average()
    if load is not None and load > limit:
        print(f"note: 1-minute load average is {load:.2f} (> {limit}); other processes share the CPU, "
              "so absolute figures are noisy (ratios less so)", file=sys.stderr)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float]) -> str:
    """'median [min–max]' for a report line."""
    return f"{median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


@dataclass
class ProcResult:
    wall: float
    max_rss_kib: int
    returncode: int
    stdout: str
    stderr: str


def run_timed(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 900) -> ProcResult:
    """Run a child to completion and time it.

    The child is reaped with a blocking ``wait4`` (no polling error in the wall
    time); output goes to temporary files so a chatty child never blocks on a
    full pipe. ``max_rss_kib`` here includes this process's own high-water mark
    at fork time: use run_peak_rss for memory.
    """
    import tempfile
    import threading

    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=full_env, stdout=out, stderr=err)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if wall >= timeout:
        raise RuntimeError(f"{' '.join(cmd)} ran past {timeout}s\n{stderr[-2000:]}")
    return ProcResult(wall, int(usage.ru_maxrss), proc.returncode, stdout, stderr)


#: Run argv[1:] and print its own peak RSS (KiB) last on stderr. On Linux a child's
#: ru_maxrss starts from its parent's high-water mark at fork time, so a benchmark that
#: has imported torch would lend its own 1.5 GB to every child; this small launcher
#: (about 10 MB) does the forking instead.
_LAUNCHER = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "sys.stderr.write(f'\\nPEAK-RSS-KIB {usage.ru_maxrss}\\n')\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_peak_rss(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 900) -> ProcResult:
    """Like run_timed, with ``max_rss_kib`` the command's own peak (see _LAUNCHER)."""
    result = run_timed([sys.executable, "-c", _LAUNCHER, *cmd], cwd=cwd, env=env, timeout=timeout)
    lines = [line for line in result.stderr.splitlines() if line.startswith("PEAK-RSS-KIB ")]
    result.max_rss_kib = int(lines[-1].split()[1]) if lines else 0
    return result


def check(result: ProcResult, what: str) -> ProcResult:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed with exit code {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def ganlab_cmd() -> list[str]:
    return [sys.executable, "-m", "ganlab"]


def clean_env(cache: Path) -> dict[str, str]:
    """Environment for a child ganlab: private dataset cache, the default store, no extra plugins."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"MLFLOW_TRACKING_URI", "GANLAB_PLUGINS", "GANLAB_DISABLE_PLUGINS"}}
    env["GANLAB_CACHE"] = str(cache)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---- MNIST-format files ------------------------------------------------------
def synthetic_digits(n: int, seed: int) -> tuple[Any, Any]:
    """n random-ish 28x28 uint8 images (smooth blobs) and labels 0-9.

    Speed does not depend on what the pixels show; blobs keep the data from
    being constant, and the generator is seeded so every run sees the same files.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 7, 7), dtype=np.float32)
    fine = coarse.repeat(4, axis=1).repeat(4, axis=2)  # 28x28 blocks
    # one box-blur pass to round the blocks
    padded = np.pad(fine, ((0, 0), (1, 1), (1, 1)), mode="edge")
    blurred = sum(padded[:, dy:dy + 28, dx:dx + 28] for dy in range(3) for dx in range(3)) / 9.0
    images = np.clip((blurred - 0.55) * 4.0, 0.0, 1.0)
    images = (images * 255).astype(np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def _write_idx(path: Path, array: Any) -> None:
    """IDX: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def write_mnist(root: Path, n_train: int = 60000, n_test: int = 10000, seed: int = 0) -> Path:
    """Write uncompressed MNIST IDX files where torchvision.datasets.MNIST reads them."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_test, 1)):
        images_file, labels_file = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
        if images_file.is_file() and labels_file.is_file() and images_file.stat().st_size == 16 + n * 784:
            continue
        images, labels = synthetic_digits(n, seed + offset)
        _write_idx(images_file, images)
        _write_idx(labels_file, labels)
    return Path(root)


# ---- output --------------------------------------------------------------------
def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pastes into docs/benchmarks.md as is)."""
    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str))
        print(f"results written to {path}", file=sys.stderr)


def repeat_options(doc: str, repeat: int, quick: int) -> Any:
    """Parse ``--repeat`` (default ``repeat``), ``--quick`` (``quick`` repetitions: checks that the
    script works) and ``--json`` (also write the results to this file)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--quick", action="store_true", help=f"{quick} repetition(s): checks that the script works")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.repeat = quick
    return args
