"""Benchmark: a population of N seeds (``ganlab run --seeds``) against N single runs.

Two figures, both as throughput in seeds per hour, both against a baseline
measured in the same invocation:

* ``step``: training steps alone, in this process. A population's vectorised
  step (``PopulationTrainer.train_step``) against one single run's
  ``Trainer.train_step``, whose time, times N, is what N single runs cost.
  The two alternate block by block so that drift in the machine's speed hits
  both alike; the figure is the median over blocks.
* ``run``: whole commands, as a user would type them: ``ganlab run --seeds
  0-(N-1)`` against N ``ganlab run --seed i`` one after another (start-up,
  data, record and final evaluation included).

Cases: ring8 with the article's mlp at ``hidden_scale=0.125`` (batch 256;
the issue expected it overhead-bound, where vectorising pays), the same without
its Dropout, ring8 with the article's widths
(compute-bound on a small CPU), and digits with dcgan.

    python benchmarks/bench_population.py                    # both figures, every case, N = 1 4 8 16
    python benchmarks/bench_population.py --figure step --cases ring8-small --ns 8
    python benchmarks/bench_population.py --figure bound --cases ring8-small --ns 8   # the best possible
    python benchmarks/bench_population.py --figure step --device cuda --ns 1,8,16,32,64   # gpu_check.sh
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

CASES: dict[str, dict[str, Any]] = {
    "ring8-small": {"dataset": {"name": "ring8"}, "arch": {"name": "mlp", "hidden_scale": 0.125}, "batch_size": 256},
    "ring8-small-nodropout": {"dataset": {"name": "ring8"}, "arch": {"name": "mlp", "hidden_scale": 0.125, "dropout": 0.0},
                              "batch_size": 256},
    "ring8-article": {"dataset": {"name": "ring8"}, "arch": {"name": "mlp"}, "batch_size": 256},
    "digits-dcgan": {"dataset": {"name": "digits"}, "arch": {"name": "dcgan", "ngf": 32, "ndf": 32}, "batch_size": 64},
}


def flags(case: dict[str, Any]) -> list[str]:
    """The command-line flags of a case."""
    out = ["--dataset", case["dataset"]["name"], "--arch", case["arch"]["name"], "--batch-size", str(case["batch_size"])]
    for key, value in case["arch"].items():
        if key != "name":
            out += ["--set", f"arch.{key}={value}"]
    return out


DEVICE = "cpu"


def config(plugins: Any, case: dict[str, Any], **settings: Any) -> Any:
    from ganlab.config import ConfigBuilder

    base = {"tracking": False, "metrics": "none", "eval_every": 0, "sample_every": 0, "device": DEVICE, **case}
    return ConfigBuilder().add_mapping({**base, **settings}, "benchmark").build(plugins.registry)


def time_steps(step: Any, n: int) -> float:
    import torch

    cuda = DEVICE.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(n):
        step()
    if cuda:
        torch.cuda.synchronize()  # the steps were only queued
    return (time.perf_counter() - started) / n


def step_figure(case_name: str, ns: Sequence[int], steps_per_block: int, blocks: int) -> list[list[str]]:
    """Seeds per hour of training steps: population of N against N times one single run."""
    import torch

    from ganlab.plugins import load_plugins
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer
    from ganlab.train.population.setup import replica_config
    from ganlab.train.population.trainer import PopulationTrainer
    from ganlab.train.population.vectorised import build_replicas

    if DEVICE == "cpu":
        torch.set_num_threads(benchlib.usable_cores())
    plugins = load_plugins(None)
    case = CASES[case_name]
    single = Trainer(build(plugins, config(plugins, case, seed=0)), plugins)
    rows = []
    for n in ns:
        population_config = config(plugins, case, seeds=f"0-{n - 1}")
        replicas = build_replicas(population_config, plugins, list(range(n)),
                                  build(plugins, replica_config(population_config, 0)))
        population = PopulationTrainer(replicas, plugins)
        for warm in (single.train_step, population.train_step):
            time_steps(warm, 3)
        ratios, singles, pops = [], [], []
        for _ in range(blocks):
            t1 = time_steps(single.train_step, steps_per_block)
            tn = time_steps(population.train_step, steps_per_block)
            singles.append(t1)
            pops.append(tn)
            ratios.append(n * t1 / tn)
        t1, tn = benchlib.median(singles), benchlib.median(pops)
        rows.append([case_name, str(n), f"{1e3 * t1:.2f}", f"{1e3 * tn:.2f}",
                     f"{3600 / (t1 * 1000):.0f}", f"{3600 * n / (tn * 1000):.0f}",
                     f"{benchlib.median(ratios):.2f}x ({benchlib.spread(ratios)})"])
        del population, replicas
    return rows


def bound_figure(case_name: str, ns: Sequence[int], steps: int) -> list[list[str]]:
    """The best a population could do: a single run's step at batch 8 is what does not grow with the
    batch (dispatch, autograd, Adam); the rest a population pays once per replica."""
    import torch

    from ganlab.plugins import load_plugins
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    if DEVICE == "cpu":
        torch.set_num_threads(benchlib.usable_cores())
    plugins = load_plugins(None)
    case = CASES[case_name]
    times = {}
    for batch in (8, case["batch_size"]):
        trainer = Trainer(build(plugins, config(plugins, {**case, "batch_size": batch}, seed=0)), plugins)
        time_steps(trainer.train_step, 10)
        times[batch] = benchlib.median([time_steps(trainer.train_step, steps) for _ in range(3)])
    fixed, full = times[8], times[case["batch_size"]]
    return [[case_name, str(n), f"{1e3 * fixed:.2f}", f"{1e3 * full:.2f}",
             f"{n * full / (fixed + n * (full - fixed)):.2f}x"] for n in ns]


def run_figure(case_name: str, ns: Sequence[int], steps: int) -> list[list[str]]:
    """Seeds per hour of whole commands: one population against N single runs in turn."""
    case = CASES[case_name]
    common = [*flags(case), "--steps", str(steps), "--eval-every", "0", "--sample-every", "0", "--device", DEVICE]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-population-") as tmp:
        work = Path(tmp)
        env = benchlib.clean_env(work / "cache")
        benchlib.check(benchlib.run_timed([*benchlib.ganlab_cmd(), "run", *common, "--steps", "2"], cwd=work, env=env),
                       "warm-up")  # the dataset cache and the store exist before anything is timed
        for n in ns:
            sequential = 0.0
            for seed in range(n):
                done = benchlib.check(benchlib.run_timed(
                    [*benchlib.ganlab_cmd(), "run", *common, "--seed", str(seed)], cwd=work, env=env), "single run")
                sequential += done.wall
            population = benchlib.check(benchlib.run_timed(
                [*benchlib.ganlab_cmd(), "run", *common, "--seeds", f"0-{n - 1}"], cwd=work, env=env), "population")
            rows.append([case_name, str(n), f"{sequential:.1f}", f"{population.wall:.1f}",
                         f"{3600 * n / sequential:.0f}", f"{3600 * n / population.wall:.0f}",
                         f"{sequential / population.wall:.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figure", choices=("step", "run", "bound", "both"), default="both",
                        help="step, run (both: the two), or bound: the best speed-up a population could reach")
    parser.add_argument("--cases", default="ring8-small,ring8-article,digits-dcgan",
                        help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--ns", default="1,4,8,16", help="population sizes")
    parser.add_argument("--steps-per-block", type=int, default=20)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--run-steps", type=int, default=500, help="steps of each timed command (--figure run)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, its figures mean little")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (benchmarks/gpu_check.sh passes cuda)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    global DEVICE
    DEVICE = args.device
    if args.quick:
        args.cases, args.ns, args.blocks, args.steps_per_block, args.run_steps = "ring8-small", "1,2", 2, 3, 10
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r} (valid: {', '.join(CASES)})")
    ns = [int(n) for n in args.ns.split(",")]
    benchlib.warn_if_busy()
    info = benchlib.machine()
    print(benchlib.describe(info))
    results: dict[str, Any] = {"benchmark": "population", "machine": info}
    if args.figure in ("step", "both"):
        rows = [row for case in cases for row in step_figure(case, ns, args.steps_per_block, args.blocks)]
        headers = ["case", "N", "single ms/step", "population ms/step", "seeds/h x1000 steps (single)",
                   "seeds/h x1000 steps (population)", "speed-up (median, range)"]
        print("\ntraining steps, in-process\n" + benchlib.table(headers, rows))
        results["step"] = {"headers": headers, "rows": rows, "steps_per_block": args.steps_per_block,
                           "blocks": args.blocks}
    if args.figure == "bound":
        rows = [row for case in cases for row in bound_figure(case, ns, max(args.steps_per_block, 50))]
        headers = ["case", "N", "single ms/step at batch 8", "single ms/step at the case's batch",
                   "best possible speed-up"]
        print("\nthe bound: what does not grow with the batch is paid once, the rest N times\n"
              + benchlib.table(headers, rows))
        results["bound"] = {"headers": headers, "rows": rows}
    if args.figure in ("run", "both"):
        rows = [row for case in cases for row in run_figure(case, ns, args.run_steps)]
        headers = ["case", "N", "N single runs, s", "one population, s", "seeds/h (single runs)",
                   "seeds/h (population)", "speed-up"]
        print(f"\nwhole commands, {args.run_steps} steps each\n" + benchlib.table(headers, rows))
        results["run"] = {"headers": headers, "rows": rows, "steps": args.run_steps}
    info["load_1min_end"] = benchlib.load_average()
    print(f"load at end {info['load_1min_end']}")
    benchlib.save_json(args.json, results)


if __name__ == "__main__":
    main()
