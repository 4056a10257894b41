"""Benchmark 3: what recording a run in MLflow costs.

The same run (ganlab's defaults: mlp, sigmoid, non-saturating, digits; losses
logged every 50 steps, a sample grid every 250, the final checkpoint and
outputs) with and without the MLflow tracker, alternating, measured two ways:

* training loop: in one process, from just after the tracker has created its
  run to just before it closes it (a timing plugin whose ``on_run_start`` runs
  last and ``on_run_end`` first). This is the cost per step of recording:
  buffered metrics, sample images, the final checkpoint.
* whole process: ``ganlab run`` against ``ganlab run --no-tracking`` as
  subprocesses, which adds importing MLflow, opening the store, creating the
  run, logging params and the data card, and writing the outputs at the end.

* accounted: in each whole-process run, the time the training process spends
  working for the record or waiting for it, plus the writer's CPU time during
  the loop, as measured by benchmarks/record_accounting.py (a plugin loaded into
  both variants). Pairs of whole runs spread by more than the 2 % target on a
  shared machine; this figure is taken inside each tracked run and does not.

The store is a local SQLite store, migrated before timing (as a project's is).
Metrics are off by default: evaluation costs the same with or without a
record and would only dilute the ratio (``--metrics auto`` to include them).
Target: <= 2 %.

    python benchmarks/bench_logging.py [--steps 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from ganlab import hookimpl


class LoopTimer:
    """Times the loop alone: starts after every other on_run_start, stops before every on_run_end."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = 0.0

    @hookimpl(trylast=True)
    def on_run_start(self, ctx: Any) -> None:
        self.start = time.perf_counter()

    @hookimpl(tryfirst=True)
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        self.seconds = time.perf_counter() - self.start


def settings(args: argparse.Namespace, uri: str, tracking: bool) -> dict[str, Any]:
    return {"steps": args.steps, "device": args.device, "tracking": tracking, "tracking_uri": uri,
            "metrics": args.metrics, "experiment": "bench-logging"}


def in_process_run(args: argparse.Namespace, uri: str, tracking: bool) -> float:
    from ganlab.train.build import build
    from ganlab.config import ConfigBuilder
    from ganlab.train.engine import Trainer
    from ganlab.plugins import PluginManager

    plugins = PluginManager().load()
    config = ConfigBuilder().add_flags(settings(args, uri, tracking)).build(plugins.registry)
    store = None
    if tracking:
        from ganlab.record.store_process import StoreProcess
        from ganlab.record.tracker import MlflowTracker

        # as ganlab.train.runner does: the writer starts before the build and is ready before the loop
        # (in a real run it opens the store while torch is imported; started at fit() instead,
        # its imports would compete with the timed loop for the CPU)
        store = StoreProcess(uri)
    trainer = Trainer(build(plugins, config), plugins)
    if store is not None:
        store.wait()
        plugins.register_object(MlflowTracker(store), "ganlab.tracking")
    timer = LoopTimer()
    plugins.register_object(timer, "bench.timer")
    try:
        trainer.fit()
    finally:
        if store is not None:
            store.close()
    return timer.seconds


ACCOUNTING_PLUGIN = Path(__file__).with_name("record_accounting.py")


def cli_args(args: argparse.Namespace, tracking: bool) -> list[str]:
    return [*benchlib.ganlab_cmd(), "run", "--steps", str(args.steps), "--device", args.device,
            "--set", f"metrics={args.metrics}", "--experiment", "bench-logging",
            "--tracking" if tracking else "--no-tracking", "--plugin", str(ACCOUNTING_PLUGIN)]


def accounted_seconds(path: Path) -> tuple[float, dict[str, float]]:
    """Total and parts of what record_accounting.py measured in one run."""
    report = json.loads(path.read_text())
    parts = {**report["spent"], "writer CPU during the loop": report["writer_cpu_in_loop"]}
    return sum(parts.values()), parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--metrics", default="none", help="'none' (default) or 'auto'")
    parser.add_argument("--quick", action="store_true", help="a few steps, one round: checks that the script works")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds = 20, 1
    benchlib.warn_if_busy()
    info = benchlib.machine()

    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        work = Path(tmp) / "project"
        work.mkdir()
        cache = Path(tmp) / "cache"
        env = benchlib.clean_env(cache)
        os.environ["GANLAB_CACHE"] = str(cache)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        old_cwd = Path.cwd()
        os.chdir(work)
        try:
            uri = "sqlite:///mlruns/mlflow.db"
            # warm-up, untimed: migrates the store, fills the dataset cache, imports everything
            in_process_run(args, uri, True)
            in_process_run(args, uri, False)
            loop: dict[str, list[float]] = {"no record": [], "MLflow": []}
            for r in range(args.rounds):
                for tracking in ((False, True) if r % 2 == 0 else (True, False)):
                    loop["MLflow" if tracking else "no record"].append(in_process_run(args, uri, tracking))

            wall: dict[str, list[float]] = {"no record": [], "MLflow": []}
            accounted: list[float] = []
            parts: list[dict[str, float]] = []
            report = Path(tmp) / "accounting.json"
            for r in range(args.rounds):
                for tracking in ((False, True) if r % 2 == 0 else (True, False)):
                    run_env = {**env, "GANLAB_RECORD_ACCOUNTING": str(report)}
                    result = benchlib.check(benchlib.run_timed(cli_args(args, tracking), cwd=work, env=run_env),
                                            "ganlab run")
                    wall["MLflow" if tracking else "no record"].append(result.wall)
                    if tracking:
                        total, detail = accounted_seconds(report)
                        accounted.append(total)
                        parts.append(detail)
        finally:
            os.chdir(old_cwd)

    info["load_1min_end"] = benchlib.load_average()
    loop_ratio = benchlib.median([t / b for t, b in zip(loop["MLflow"], loop["no record"])])
    wall_ratio = benchlib.median([t / b for t, b in zip(wall["MLflow"], wall["no record"])])
    print(f"# Logging overhead: ganlab defaults, {args.steps} steps, metrics={args.metrics}, device {args.device}")
    print(benchlib.describe(info) + f"; load at end {info['load_1min_end']:.2f}")
    print(f"median of {args.rounds} alternating pairs\n")
    rows = []
    for what, data, ratio in (("training loop (in process)", loop, loop_ratio),
                              ("whole process (ganlab run)", wall, wall_ratio)):
        base, tracked = benchlib.median(data["no record"]), benchlib.median(data["MLflow"])
        rows.append([what, f"{base:.2f}", f"{tracked:.2f}", f"{tracked - base:+.2f}", f"{100 * (ratio - 1):+.1f} %",
                     "meets" if ratio <= 1.02 else "misses"])
    base_wall = benchlib.median(wall["no record"])
    share = benchlib.median(accounted) / base_wall
    rows.append(["accounted in each tracked run (record_accounting.py)", "-", f"{benchlib.median(accounted):.2f}",
                 f"+{benchlib.median(accounted):.2f}", f"+{100 * share:.1f} % of the untracked wall",
                 "meets" if share <= 0.02 else "misses"])
    print(benchlib.table(["measured", "no record s", "MLflow s", "difference s", "overhead (median of pairs)",
                          "<= 2 % target"], rows))
    print("\naccounted parts, median over the tracked runs (s):")
    for key in parts[0]:
        print(f"  {key}: {benchlib.median([p.get(key, 0.0) for p in parts]):.3f}")
    benchlib.save_json(args.json, {"benchmark": "logging", "machine": info, "steps": args.steps,
                                   "loop": loop, "wall": wall, "accounted": accounted, "accounted_parts": parts})


if __name__ == "__main__":
    main()
