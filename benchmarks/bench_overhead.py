"""Benchmark 1: the engine's cost over a hand-written PyTorch loop.

Both sides train the same networks (built once through ganlab's registry; the
plain loop gets deep copies), on the same resident data tensor, with the same
batch size, optimiser settings and loss (non-saturating, from logits), in one
process. Three variants run in rotating order, block after block, so that
drift in the machine's speed hits all of them alike:

* ``plain``: a loop as one would write it by hand (softplus losses inline);
* ``step``: ganlab's ``Trainer.train_step`` called in a bare Python loop;
* ``loop``: ganlab's own ``Trainer._loop`` (per-step hook dispatch, log-interval
  checks, and the end-of-block work a run's last step does: one sample grid and
  a finiteness check).

The figure is the median over rounds of (ganlab time / plain time) per block.
Target on CPU: <= 1.03.

    python benchmarks/bench_overhead.py            # mlp on MNIST-shaped data, CPU
    python benchmarks/bench_overhead.py --arch dcgan --steps-per-block 10
    python benchmarks/bench_overhead.py --profile  # cProfile of ganlab's step
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib


def build_trainer(root: Path, arch: str, device: str, batch_size: int, sets: Sequence[str] = (),
                  **settings: Any) -> Any:
    """A Trainer built the way ``ganlab run`` builds one: registry, config validation, build()."""
    from ganlab.train.build import build
    from ganlab.config import ConfigBuilder
    from ganlab.train.engine import Trainer
    from ganlab.plugins import PluginManager

    plugins = PluginManager(warn=lambda message: None).load()
    flags = {
        "arch": arch, "head": "sigmoid", "loss": "nonsaturating", "dataset": "mnist",
        "batch_size": batch_size, "device": device, "precision": "fp32", "seed": 0,
        "tracking": False, "metrics": "none", "sample_every": 0, "eval_every": 0, "log_every": 50,
        "data_root": str(root), "steps": 1, **settings,
    }
    config = ConfigBuilder().add_flags(flags).add_sets(sets).build(plugins.registry)
    built = build(plugins, config)
    return Trainer(built, plugins)


class PlainLoop:
    """The hand-written baseline: what a careful user writes without a framework."""

    def __init__(self, trainer: Any, fused: bool | None = None, memory_format: Any = None) -> None:
        """Copies of the trainer's networks; by default with its optimiser flavour and layout."""
        import torch

        b = trainer.b
        self.G, self.D = copy.deepcopy(b.generator), copy.deepcopy(b.discriminator)
        if memory_format is not None:
            self.G, self.D = self.G.to(memory_format=memory_format), self.D.to(memory_format=memory_format)
        if fused is None:
            fused = bool(b.opt_d.defaults.get("fused"))
        betas = (b.config.beta1, b.config.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=b.config.lr_g, betas=betas, fused=fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=b.config.lr_d, betas=betas, fused=fused)
        self.x = b.data.x  # the very tensor ganlab trains on
        self.device, self.latent, self.bs = b.device, b.config.latent_dim, trainer.batches.batch_size
        self.gen = torch.Generator().manual_seed(1)
        self.perm = torch.randperm(len(self.x), generator=self.gen).to(self.device)
        self.pos = 0

    def run(self, steps: int) -> Any:
        import torch
        import torch.nn.functional as F

        G, D, opt_g, opt_d, bs, latent, device = self.G, self.D, self.opt_g, self.opt_d, self.bs, self.latent, self.device
        for _ in range(steps):
            if self.pos + bs > len(self.x):
                self.perm = torch.randperm(len(self.x), generator=self.gen).to(device)
                self.pos = 0
            real = self.x[self.perm[self.pos:self.pos + bs]]
            self.pos += bs

            opt_d.zero_grad(set_to_none=True)
            with torch.no_grad():
                fake = G(torch.randn(bs, latent, device=device))
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
            d_loss.backward()
            opt_d.step()

            opt_g.zero_grad(set_to_none=True)
            g_loss = F.softplus(-D(G(torch.randn(bs, latent, device=device)))).mean()
            g_loss.backward()
            opt_g.step()
        return d_loss.detach()


def ganlab_steps(trainer: Any, steps: int) -> Any:
    for _ in range(steps):
        losses = trainer.train_step()
    return losses["loss.d"]


def ganlab_loop(trainer: Any, steps: int) -> Any:
    trainer.b.config.settings["steps"] = trainer.ctx.step + steps
    trainer._loop()
    return None


def timed(fn: Any, device: Any) -> float:
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    out = fn()
    if out is not None:
        float(out)  # the plain loop and the bare step end a block with one host sync, as _loop does
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="mlp", choices=("mlp", "dcgan"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps-per-block", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a few short blocks: checks that the script works")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of ganlab's step and exit")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is far less sensitive to other load")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.quick:
        args.steps_per_block, args.rounds = 3, 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    benchlib.warn_if_busy()
    info = benchlib.machine()

    with tempfile.TemporaryDirectory(prefix="ganlab-bench-") as tmp:
        import os

        os.environ["GANLAB_CACHE"] = str(Path(tmp) / "cache")
        root = benchlib.write_mnist(Path(tmp) / "data", n_train=6000 if args.quick else 60000,
                                    n_test=1000 if args.quick else 10000)
        trainer = build_trainer(root, args.arch, args.device, args.batch_size)
        plain = PlainLoop(trainer)
        device = trainer.b.device
        n = args.steps_per_block

        if args.profile:
            import cProfile
            import pstats

            ganlab_steps(trainer, n)
            profiler = cProfile.Profile()
            profiler.runcall(ganlab_steps, trainer, n * 5)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return

        variants = {
            "plain": lambda: plain.run(n),
            "step": lambda: ganlab_steps(trainer, n),
            "loop": lambda: ganlab_loop(trainer, n),
        }
        for fn in variants.values():  # warm-up: allocator, first-call paths
            timed(fn, device)
        times: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % 3:] + names[:r % 3]
            for name in order:
                times[name].append(timed(variants[name], device))

    step_ratio = [s / p for s, p in zip(times["step"], times["plain"])]
    loop_ratio = [s / p for s, p in zip(times["loop"], times["plain"])]
    info["load_1min_end"] = benchlib.load_average()
    ms = {name: 1000 * benchlib.median(t) / n for name, t in times.items()}
    print(f"# Engine overhead: {args.arch}, sigmoid head, batch {args.batch_size}, device {device}")
    print(benchlib.describe(info) + f"; load at end {info['load_1min_end']:.2f}")
    print(f"{args.rounds} rounds x {n} steps per variant, rotating order\n")
    print(benchlib.table(
        ["variant", "ms/step (median)", "ratio to plain (median)", "ratio min-max"],
        [["plain PyTorch loop", f"{ms['plain']:.3f}", "1", "-"],
         ["ganlab Trainer.train_step", f"{ms['step']:.3f}", f"{benchlib.median(step_ratio):.3f}",
          f"{min(step_ratio):.3f}-{max(step_ratio):.3f}"],
         ["ganlab Trainer._loop", f"{ms['loop']:.3f}", f"{benchlib.median(loop_ratio):.3f}",
          f"{min(loop_ratio):.3f}-{max(loop_ratio):.3f}"]],
    ))
    verdict = "meets" if benchlib.median(loop_ratio) <= 1.03 else "misses"
    print(f"\nfull loop vs plain: {benchlib.median(loop_ratio):.3f} ({verdict} the <= 1.03 target)")
    benchlib.save_json(args.json, {"benchmark": "overhead", "arch": args.arch, "machine": info,
                                   "steps_per_block": n, "times": times, "ms_per_step": ms,
                                   "ratio_step": step_ratio, "ratio_loop": loop_ratio})


if __name__ == "__main__":
    main()
