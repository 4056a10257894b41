"""GPU check: the DCGAN fast paths and the article comparison on one CUDA card.

Run through benchmarks/gpu_check.sh (which checks and installs what it can
first). On MNIST-shaped data (synthetic IDX files, 60000 x 1 x 28 x 28):

1. DCGAN, in one process, timed after warm-up in interleaved blocks:
   a hand-written PyTorch loop (fp32, NCHW, default Adam) as the baseline;
   ganlab fp32 eager (its CUDA defaults: channels_last, fused Adam);
   ganlab bf16 eager; ganlab bf16 + torch.compile. Warm-up (and compilation)
   time is reported on its own.
2. The article's loop (benchmarks/article_loop.py) against ``ganlab run
   --arch mlp --head sigmoid --dataset mnist``, whole processes, 1000 steps;
   then one process of each at a fifth of the steps, so that the difference
   of the two loop times gives each side's steady-state time per step, free of
   start-up and of first-step costs (CUDA context, cuBLAS handles, allocator).

``--cpu-smoke`` runs the same code on the CPU with tiny sizes, to check the
script where no GPU is at hand; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
from bench_article import commands, loop_seconds
from bench_overhead import PlainLoop, build_trainer, ganlab_steps


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def dcgan_table(args: argparse.Namespace, root: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    import torch

    sets = [f"arch.ngf={args.width}", f"arch.ndf={args.width}"]
    common = {"root": root, "arch": "dcgan", "device": args.device, "batch_size": args.batch_size, "sets": sets}
    trainers = {
        "ganlab fp32 eager": build_trainer(**common, precision="fp32"),
        "ganlab bf16 eager": build_trainer(**common, precision="bf16"),
    }
    if not args.no_compile:
        trainers["ganlab bf16 + compile"] = build_trainer(**common, precision="bf16", compile=True)
    device = trainers["ganlab fp32 eager"].b.device
    # a 1-channel 4x4 kernel is "channels_last" either way; D's second conv tells them apart
    conv = [p for p in trainers["ganlab fp32 eager"].b.discriminator.parameters() if p.dim() == 4][1]
    layout = "channels_last" if conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous() \
        else "NCHW"
    plain = PlainLoop(trainers["ganlab fp32 eager"], fused=False, memory_format=torch.contiguous_format)
    runners = {"plain PyTorch fp32 eager (NCHW, Adam)": plain.run}
    for name, trainer in trainers.items():
        runners[name] = functools.partial(ganlab_steps, trainer)

    warmup: dict[str, float] = {}
    for name, run in runners.items():
        sync(device)
        start = time.perf_counter()
        float(run(args.warmup))  # compilation, cuDNN autotuning, allocator
        warmup[name] = time.perf_counter() - start
        print(f"  warm-up {name}: {warmup[name]:.1f}s", file=sys.stderr, flush=True)

    block = max(1, args.steps // args.blocks)
    seconds: dict[str, float] = {name: 0.0 for name in runners}
    for _ in range(args.blocks):
        for name, run in runners.items():
            sync(device)
            start = time.perf_counter()
            out = run(block)
            float(out)
            sync(device)
            seconds[name] += time.perf_counter() - start

    steps = block * args.blocks
    base = seconds["plain PyTorch fp32 eager (NCHW, Adam)"]
    ganlab_fp32 = seconds["ganlab fp32 eager"]
    rows = []
    for name in runners:
        rate = steps / seconds[name]
        rows.append([name, f"{warmup[name]:.1f}", f"{rate:.1f}", f"{rate * args.batch_size:.0f}",
                     f"{base / seconds[name]:.2f}", f"{ganlab_fp32 / seconds[name]:.2f}"])
    return rows, {"steps": steps, "seconds": seconds, "warmup": warmup, "layout": layout}


def article_table(args: argparse.Namespace, root: Path, tmp: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    env = benchlib.clean_env(tmp / "cache-article")
    cmds = commands(root, args.article_steps, args.device)
    work = tmp / "project"
    work.mkdir(exist_ok=True)
    # first ganlab run converts and caches the data; measured apart from the rounds
    cold = benchlib.check(benchlib.run_timed(cmds["ganlab"], cwd=work, env=env), "ganlab (first run)")
    walls: dict[str, list[float]] = {"article": [], "ganlab": []}
    loops: dict[str, list[float]] = {"article": [], "ganlab": []}
    for r in range(args.article_rounds):
        for name in (("article", "ganlab") if r % 2 == 0 else ("ganlab", "article")):
            result = benchlib.check(benchlib.run_timed(cmds[name], cwd=work, env=env), name)
            walls[name].append(result.wall)
            seconds = loop_seconds(name, result.stdout + result.stderr)
            if seconds is not None:
                loops[name].append(seconds)
            print(f"  {name}: {result.wall:.1f}s", file=sys.stderr, flush=True)
    # steady state: (loop of the long run - loop of a short one) / (the steps between them)
    short_steps = max(1, args.article_steps // 5)
    short_cmds = commands(root, short_steps, args.device)
    per_step: dict[str, float] = {}
    for name in ("article", "ganlab"):
        result = benchlib.check(benchlib.run_timed(short_cmds[name], cwd=work, env=env), f"{name} (short)")
        short_loop = loop_seconds(name, result.stdout + result.stderr)
        if short_loop is not None and loops[name]:
            per_step[name] = (benchlib.median(loops[name]) - short_loop) / (args.article_steps - short_steps)
        print(f"  {name} ({short_steps} steps): {result.wall:.1f}s", file=sys.stderr, flush=True)
    images = args.article_steps * 64
    rows = []
    base_wall, base_loop = benchlib.median(walls["article"]), benchlib.median(loops["article"])
    for name in ("article", "ganlab"):
        wall, loop = benchlib.median(walls[name]), benchlib.median(loops[name])
        step = per_step.get(name)
        steady = [f"{step * 1000:.2f}", f"{64 / step:.0f}"] if step and step > 0 else ["-", "-"]
        ratio = per_step.get("article", 0) / step if step and step > 0 and per_step.get("article") else None
        rows.append([name, f"{wall:.2f}", f"{images / wall:.0f}", f"{base_wall / wall:.2f}",
                     f"{loop:.2f}", f"{images / loop:.0f}", f"{base_loop / loop:.2f}",
                     *steady, f"{ratio:.2f}" if ratio else "-"])
    rows.append(["ganlab, first run (data converted)", f"{cold.wall:.2f}", f"{images / cold.wall:.0f}",
                 f"{base_wall / cold.wall:.2f}", "-", "-", "-", "-", "-", "-"])
    return rows, {"walls": walls, "loops": loops, "cold": cold.wall, "short_steps": short_steps,
                  "seconds_per_step": per_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: checks the script only")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64, help="DCGAN ngf = ndf")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=600, help="timed DCGAN steps per variant")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--article-steps", type=int, default=1000,
                        help="steps of each article/ganlab process (enough for the loop time to be read to 10 %%)")
    parser.add_argument("--article-rounds", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    import torch

    if args.cpu_smoke:
        args.device, args.width, args.warmup, args.steps, args.blocks = "cpu", 8, 2, 4, 2
        args.article_steps, args.article_rounds = 10, 1
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench_gpu: CUDA is not available (use --cpu-smoke to check the script on a CPU)")
        args.device = "cuda"
    info = benchlib.machine()
    card = torch.cuda.get_device_name() if args.device == "cuda" else "none (CPU smoke run)"

    with tempfile.TemporaryDirectory(prefix="ganlab-gpu-") as tmp:
        tmp_path = Path(tmp)
        os.environ["GANLAB_CACHE"] = str(tmp_path / "cache")
        n_train = 2000 if args.cpu_smoke else 60000
        root = benchlib.write_mnist(tmp_path / "data", n_train=n_train, n_test=500 if args.cpu_smoke else 10000)
        print("DCGAN variants ...", file=sys.stderr, flush=True)
        dcgan_rows, dcgan = dcgan_table(args, root)
        print("article comparison ...", file=sys.stderr, flush=True)
        article_rows, article = article_table(args, root, tmp_path)

    print(f"\n# GPU check on {card}")
    print(benchlib.describe(info))
    print(f"\n## DCGAN (ngf = ndf = {args.width}), MNIST-shaped 1x28x28, batch {args.batch_size}, "
          f"{dcgan['steps']} timed steps per variant after {args.warmup} warm-up steps; "
          f"ganlab layout on this device: {dcgan['layout']}\n")
    print(benchlib.table(["variant", "warm-up s (incl. compile)", "steps/s", "images/s", "vs plain", "vs ganlab fp32"],
                         dcgan_rows))
    print(f"\n## Article loop vs ganlab run (mlp + sigmoid, batch 64, {args.article_steps} steps, whole processes, "
          f"median of {args.article_rounds})\n")
    print(benchlib.table(["variant", "wall s", "images/s", "speed vs article", "loop s", "loop images/s",
                          "loop speed vs article", "steady ms/step", "steady images/s",
                          "steady speed vs article"], article_rows))
    print(f"\n'steady': (loop time at {args.article_steps} steps - loop time at {article['short_steps']} steps) "
          "/ the steps between, i.e. a step's cost once start-up and first-step costs are paid")
    benchlib.save_json(args.json, {"benchmark": "gpu", "card": card, "machine": info, "args": vars(args),
                                   "dcgan": dcgan, "article": article})


if __name__ == "__main__":
    main()
