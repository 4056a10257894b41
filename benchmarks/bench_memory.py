"""Benchmark 5: peak resident memory of a default run.

``ganlab run`` with its defaults (mlp, sigmoid, non-saturating, digits, MLflow
record in a local SQLite store, metrics that apply), fewer steps than the
default 1000 unless asked, measured as the child's own peak RSS (``wait4``
rusage through a small launcher process, the figure ``/usr/bin/time -v``
prints as "Maximum resident set size").
For scale: the same run without a record, importing torch alone, and the
article's loop on MNIST-shaped files. The record is written by a second process
(ganlab/record/store_worker.py) that lives as long as the run: the launcher's figure
for ``ganlab run`` is the larger of the two peaks (Linux folds a reaped child's
peak into its parent's), so that process's own peak is measured on its own, as
it opens the store.

    python benchmarks/bench_memory.py [--steps 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="a few steps: checks that the script works")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.steps = 10
    benchlib.warn_if_busy()
    info = benchlib.machine()

    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        work = Path(tmp) / "project"
        work.mkdir()
        env = benchlib.clean_env(Path(tmp) / "cache")
        root = benchlib.write_mnist(Path(tmp) / "data", n_train=6000 if args.quick else 60000,
                                    n_test=1000 if args.quick else 10000)
        run = [*benchlib.ganlab_cmd(), "run", "--steps", str(args.steps), "--device", args.device]
        if args.quick:
            run += ["--set", "eval_samples=200"]
        commands = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            f"ganlab run --steps {args.steps} (defaults, MLflow record)": run,
            f"ganlab run --steps {args.steps} --no-tracking": [*run, "--no-tracking"],
            "the record's writer process (MLflow imported, store open)": [
                sys.executable, "-c", "from ganlab.record.store_worker import Session; "
                "Session().open('sqlite:///mlruns/mlflow.db')"],
            "article loop, MNIST-shaped, 200 steps": [
                sys.executable, str(Path(__file__).with_name("article_loop.py")), "--data-root", str(root),
                "--steps", "10" if args.quick else "200", "--device", args.device],
        }
        # first, untimed: migrate the store, fill the dataset cache (a one-off peak of its own)
        first = benchlib.check(benchlib.run_peak_rss(run, cwd=work, env=env), "ganlab run (first)")
        rows = [["ganlab run, first ever (store migrated, data converted)", f"{first.max_rss_kib / 1024:.0f}",
                 f"{first.wall:.1f}"]]
        for name, cmd in commands.items():
            result = benchlib.check(benchlib.run_peak_rss(cmd, cwd=work, env=env), name)
            rows.append([name, f"{result.max_rss_kib / 1024:.0f}", f"{result.wall:.1f}"])

    print("# Peak resident memory")
    print(benchlib.describe(info) + "\n")
    print(benchlib.table(["process", "peak RSS MiB", "wall s"], rows))
    benchlib.save_json(args.json, {"benchmark": "memory", "machine": info, "rows": rows})


if __name__ == "__main__":
    main()
