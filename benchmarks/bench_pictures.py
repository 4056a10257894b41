"""Benchmark 8: what the head's pictures cost (the field and the head histograms, docs/heads.md).

A ring8 run (the mlp, ganlab's defaults otherwise) with an evaluation every ``--eval-every``
steps, with the pictures on (the default) and off (``--set pictures=false``), measured three ways:

* whole process: ``ganlab run`` with and without pictures, alternating, ``--rounds`` pairs; the
  median wall time of each and the median ratio of the pairs. This includes the record writer
  drawing each picture on its own core and the animations at the end.
* training process: the evaluation of the ``diagnostics`` metric (the work a picture adds in
  the process that trains: D on the field's grid, the histograms' counts) timed in one process,
  ``--repeats`` evaluations each way on the same networks.
* record writer: drawing and encoding each picture (``render``) and the GIF of ``--frames`` fields.

    python benchmarks/bench_pictures.py [--steps 2000] [--eval-every 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib


def run_args(args: argparse.Namespace, pictures: bool) -> list[str]:
    return [*benchlib.ganlab_cmd(), "run", "--dataset", "ring8", "--arch", "mlp", "--steps", str(args.steps),
            "--eval-every", str(args.eval_every), "--device", "cpu", "--experiment", "bench-pictures",
            "--set", f"pictures={str(pictures).lower()}"]


def trainer(pictures: bool) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import PluginManager
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    plugins = PluginManager().load()
    config = ConfigBuilder().add_flags({"dataset": "ring8", "arch": "mlp", "device": "cpu", "tracking": False,
                                        "metrics": "diagnostics", "pictures": pictures}).build(plugins.registry)
    made = Trainer(build(plugins, config), plugins)
    made.select_metrics()
    for _ in range(50):  # a D that has seen some training, as at a real evaluation
        made.train_step()
    return made


def time_evaluations(made: Any, repeats: int) -> tuple[float, dict[str, Any]]:
    made.evaluation(1)  # first use: imports, allocations
    seconds = []
    for step in range(repeats):
        start = time.perf_counter()
        _, pictures = made.evaluation(step + 2)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of whole runs (0: skip them)")
    parser.add_argument("--repeats", type=int, default=20, help="evaluations timed each way in one process")
    parser.add_argument("--frames", type=int, default=21, help="fields in the animation timed")
    parser.add_argument("--quick", action="store_true", help="a few steps, one round: checks that the script works")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_every, args.rounds, args.repeats, args.frames = 20, 10, 1, 2, 3
    benchlib.warn_if_busy()
    print(benchlib.describe(benchlib.machine()))

    import torch

    from ganlab.record.pictures import animate, render

    torch.set_num_threads(benchlib.usable_cores())
    off_eval, _ = time_evaluations(trainer(False), args.repeats)
    on_eval, pictures = time_evaluations(trainer(True), args.repeats)
    render(pictures["field"])  # first use: matplotlib's import and fonts
    drawn = {}
    for key, picture in pictures.items():
        start = time.perf_counter()
        for _ in range(3):
            image = render(picture)
        drawn[key] = (time.perf_counter() - start) / 3
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        animate([render(pictures["field"])] * args.frames, out)
    gif = time.perf_counter() - start
    print("\nIn one process (median of", args.repeats, "evaluations; the diagnostics metric alone):")
    print(benchlib.table(["measured", "seconds"], [
        ["diagnostics evaluation, pictures off", off_eval],
        ["diagnostics evaluation, pictures on (training process)", on_eval],
        ["added per evaluation in the training process", on_eval - off_eval],
        *[[f"record writer: drawing '{key}'", seconds] for key, seconds in drawn.items()],
        [f"record writer: GIF of {args.frames} fields (render + encode)", gif],
    ]))
    if not args.rounds:
        return
    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        work = Path(tmp)
        env = benchlib.clean_env(work / "cache")
        benchlib.check(benchlib.run_timed(run_args(args, False), cwd=work, env=env), "warm-up run")  # migrates the store
        walls: dict[bool, list[float]] = {True: [], False: []}
        for round_ in range(args.rounds):
            for pictures_on in ((True, False) if round_ % 2 == 0 else (False, True)):
                result = benchlib.check(benchlib.run_timed(run_args(args, pictures_on), cwd=work, env=env), "run")
                walls[pictures_on].append(result.wall)
        ratios = [on / off for on, off in zip(walls[True], walls[False])]
    evaluations = args.steps // args.eval_every + (args.steps % args.eval_every != 0)
    print(f"\nWhole process: ganlab run --dataset ring8 --arch mlp --steps {args.steps} --eval-every "
          f"{args.eval_every} ({evaluations} evaluations), {args.rounds} pairs:")
    print(benchlib.table(["pictures", "wall s (median)", "all"], [
        ["off", benchlib.median(walls[False]), benchlib.spread(walls[False])],
        ["on", benchlib.median(walls[True]), benchlib.spread(walls[True])],
    ]))
    print(f"median ratio of the pairs: {statistics.median(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)}); "
          f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
