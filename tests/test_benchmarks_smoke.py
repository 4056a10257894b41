"""The benchmark scripts stay runnable (they are not run here: see docs/benchmarks.md).

Cheap checks only: every script starts and parses its arguments, the shell
check is valid bash, and the MNIST-format files the benchmarks write are read
by torchvision exactly as written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))


def test_every_benchmark_is_listed() -> None:
    assert {"bench_overhead.py", "bench_article.py", "bench_logging.py", "bench_startup.py",
            "bench_memory.py", "bench_gpu.py", "bench_population.py", "bench_listing.py",
            "bench_process_cpu.py", "bench_text_stats.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script: str) -> None:
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout or "--cpu-smoke" in result.stdout


def test_gpu_check_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_mnist_files_written_by_the_benchmarks_read_back_through_torchvision(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import benchlib
    finally:
        sys.path.remove(str(BENCH))
    from torchvision.datasets import MNIST

    benchlib.write_mnist(tmp_path, n_train=50, n_test=20, seed=3)
    images, labels = benchlib.synthetic_digits(50, 3)
    train = MNIST(root=str(tmp_path), train=True, download=False)
    test = MNIST(root=str(tmp_path), train=False, download=False)
    assert tuple(train.data.shape) == (50, 28, 28) and len(test) == 20
    assert (train.data.numpy() == images).all() and (train.targets.numpy() == labels).all()
    assert 0 < images.mean() < 255  # neither blank nor saturated


@pytest.mark.slow
def test_record_accounting_plugin_times_a_recorded_run(tmp_path: Path, workdir: Path) -> None:
    # bench_logging.py's figure for the record's cost comes from this plugin: it must see the run
    from conftest import TINY, run_cli

    report = tmp_path / "accounting.json"
    out = run_cli(["run", "--plugin", str(BENCH / "record_accounting.py"), *TINY], cwd=workdir,
                  env={"GANLAB_RECORD_ACCOUNTING": str(report)})
    assert out.returncode == 0, out.stderr
    measured = json.loads(report.read_text())
    assert measured["loop_seconds"] > 0
    spent = measured["spent"]
    for part in ("writer start", "waiting for the store", "tracker on_run_start", "tracker on_step_end",
                 "checkpoints", "tracker on_run_end", "closing the record"):
        assert spent[part] > 0, part
    # nested calls count once: the checkpoint's hook runs inside save_checkpoint
    assert "tracker on_checkpoint" not in spent
    assert measured["writer_cpu_in_loop"] >= 0
