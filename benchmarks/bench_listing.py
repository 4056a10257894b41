"""Benchmark: how long ``ganlab runs`` and ``ganlab compare`` take on a store of a few hundred runs.

A store of N finished runs (60 params, a few metrics each, as a real run records about that many) is
made once; each command then runs as a fresh process, as a user runs it, twice per round in rotating
order: reading the SQLite store directly (``ganlab.record.sqlite_reader``, the default) and through
MLflow's client (``GANLAB_STORE_READER=mlflow``, the baseline). The figures are the median wall
times and their ratio. Target: <= 1 s for each command on N = 300.

    python benchmarks/bench_listing.py                 # 300 runs, 5 rounds
    python benchmarks/bench_listing.py --runs 1000 --rounds 3
    python benchmarks/bench_listing.py --quick         # 50 runs, 1 round
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

COMMANDS = {"runs": ["runs", "--limit", "1000"], "compare": ["compare", "-e", "listing", "-m", "loss.d"]}


def make_store(root: Path, runs: int) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    (root / "mlruns").mkdir()
    client = MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    experiment = client.create_experiment("listing", artifact_location=str(root / "mlruns" / "artifacts" / "listing"))
    now = int(time.time() * 1000)
    for i in range(runs):
        run_id = client.create_run(experiment, run_name=f"run-{i}").info.run_id
        params = [Param(f"setting_{k}", str(k)) for k in range(57)]
        params += [Param("seed", str(i % 10)), Param("head.name", ("sigmoid", "entmax")[i % 2]), Param("steps", "1000")]
        client.log_batch(run_id, params=params, metrics=[Metric(k, float(i), now, 1000) for k in
                                                         ("loss.d", "loss.g", "modes.captured", "modes.hq_percent")])
        client.set_terminated(run_id, status="FINISHED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50 runs, one round")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds = 50, 1
    benchlib.warn_if_busy()
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-listing-") as tmp:
        root = Path(tmp)
        make_store(root, args.runs)
        times: dict[tuple[str, str], list[float]] = {(c, r): [] for c in COMMANDS for r in ("sqlite", "mlflow")}
        for round_ in range(args.rounds):
            order = [(c, r) for c in COMMANDS for r in ("sqlite", "mlflow")]
            order = order[round_ % len(order):] + order[:round_ % len(order)]
            for command, reader in order:
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                if reader == "mlflow":
                    env["GANLAB_STORE_READER"] = "mlflow"
                done = benchlib.run_timed([sys.executable, "-m", "ganlab", *COMMANDS[command]], cwd=root, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"ganlab {' '.join(COMMANDS[command])} failed:\n{done.stderr[-2000:]}")
                times[(command, reader)].append(done.wall)
    print(f"machine: {benchlib.describe(benchlib.machine(torch_too=False))}")
    print(f"store: {args.runs} finished runs, 60 params and 4 metrics each; {args.rounds} round(s)")
    for command in COMMANDS:
        fast, slow = (benchlib.median(times[(command, r)]) for r in ("sqlite", "mlflow"))
        print(f"ganlab {' '.join(COMMANDS[command])}: {fast:.2f} s read directly, {slow:.2f} s through MLflow "
              f"(ratio {fast / slow:.2f}; spread {benchlib.spread(times[(command, 'sqlite')])})")


if __name__ == "__main__":
    main()
