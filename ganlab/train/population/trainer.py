"""The training loop of a population: N replicas, one vectorised step.

Every replica starts as an ordinary single run (``ganlab.train.build.build``
and ``ganlab.train.engine.Trainer`` with its own seed): the same
initialisation, data, fixed noise, metrics and context. ``PopulationTrainer``
then stacks the replicas' networks (``stacked.StackedNetwork``) and trains
them with the single run's own step (``ganlab.train.engine.make_step_functions``
and ``train_step``), given the stacked networks and every replica's rows one
after another; each replica draws its noise, labels, augmentations and dropout
masks from its own generator, which holds the state the global generator of the
single run would have, so replica i follows the single run with seed i
(tests/test_population.py).

Hooks are called once per replica with that replica's context: a plugin sees
N ordinary runs. Sampling, evaluation and checkpoints go through each
replica's own ``Trainer`` methods, so they are exactly a single run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ganlab.errors import GanlabError
from ganlab.plugins import PluginManager
from ganlab.train.build import Built, composed_augmentation, make_optimizer
from ganlab.train.engine import (AbortedRun, Diverged, Interrupted, OutOfMemory, Trainer, make_step_functions,
                                 named_losses, train_step)
from ganlab.train.population.optim import ReplicaOptimizer
from ganlab.train.averaging import blend
from ganlab.train.population.stacked import ReplicaRandomness, StackedNetwork, stack_replicas, view_slice
from ganlab.train.signals import Aborted, GracefulStop


class ReplicaTrainer(Trainer):
    """One replica: a single run's Trainer whose random stream is a generator of its own.

    ``generator`` starts in the state the global generator has after the single
    run's build, and stands in for it in checkpoints: a replica's checkpoint is
    a single run's checkpoint, and the other way round.
    """

    def __init__(self, built: Built, plugins: PluginManager) -> None:
        super().__init__(built, plugins)
        device = built.device
        self.generator = torch.Generator(device=device)
        self.generator.set_state(_global_state(device))
        self.index = 0
        self.ended = False
        #: why the replica stopped early, when it diverged
        self.divergence: Diverged | None = None

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        _put_generator_state(state["rng"], self.b.device, self.generator.get_state())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.generator.set_state(_take_generator_state(state["rng"], self.b.device))


def _global_state(device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _put_generator_state(rng: dict[str, Any], device: torch.device, state: torch.Tensor) -> None:
    if device.type == "cuda":
        cuda = list(rng.get("cuda") or torch.cuda.get_rng_state_all())
        cuda[device.index or 0] = state
        rng["cuda"] = cuda
    else:
        rng["torch"] = state


def _take_generator_state(rng: dict[str, Any], device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return rng["cuda"][device.index or 0]
    return rng["torch"]


class PopulationTrainer:
    """Trains the replicas together; each is recorded, sampled, evaluated and checkpointed as its own run."""

    def __init__(self, replicas: Sequence[ReplicaTrainer], plugins: PluginManager) -> None:
        self.replicas = list(replicas)
        self.plugins = plugins
        first = self.replicas[0].b
        self.config, self.device = first.config, first.device
        for i, replica in enumerate(self.replicas):
            replica.index = i
        self.randomness = ReplicaRandomness([r.generator for r in self.replicas])
        self.G = StackedNetwork([r.b.generator for r in self.replicas], self.randomness)
        self.D = StackedNetwork([r.b.discriminator for r in self.replicas], self.randomness)
        # an elementwise optimiser over the stacked tensors is N independent ones (every built-in is; one
        # that does not declare it runs the population's seeds one after another: setup.why_sequential)
        cfg = self.config
        self.opt_g = make_optimizer(cfg.optimizer_g, self.G.parameters(), cfg.lr_g, cfg, first.optimizers[cfg.optimizer_g])
        self.opt_d = make_optimizer(cfg.optimizer_d, self.D.parameters(), cfg.lr_d, cfg, first.optimizers[cfg.optimizer_d])
        for i, replica in enumerate(self.replicas):
            replica.b.opt_g = ReplicaOptimizer(self.opt_g, i)
            replica.b.opt_d = ReplicaOptimizer(self.opt_d, i)
        self.average = StackedAverage(self.G, [r.average.module for r in self.replicas], self.config) \
            if self.replicas[0].average is not None else None
        self.x, self.y, self.offsets = _population_data([r.b.data for r in self.replicas])
        self.n, self.latent, self.conditioning = len(self.replicas), first.config.latent_dim, first.conditioning
        self.regularizers = first.regularizers
        self.augment = composed_augmentation(first.augmentations)
        self.scaler_d = self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=False)  # fp16 is refused
        self.d_trainable = self.D.parameters()
        self.d_loss_fn, self.g_loss_fn = make_step_functions(first, population=self)
        self.stop = GracefulStop()
        self.step = self.replicas[0].ctx.step

    # ---- the replicas ------------------------------------------------------
    def active(self) -> list[ReplicaTrainer]:
        return [r for r in self.replicas if not r.ended]

    # ---- what the single run's step is given instead of a run's networks and streams ----------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every replica's batch, as rows one after another (replica i's from its own data order)."""
        idx = torch.stack([r.batches.next_indices() for r in self.replicas])
        rows = (idx + self.offsets).flatten() if self.offsets is not None else idx.flatten()
        x = self.replicas[0].b.data.expand(self.x.index_select(0, rows))
        return x, (self.y.index_select(0, rows) if self.y is not None else None)

    def noise(self, n: int) -> torch.Tensor:
        return self.randomness.normal(n, self.latent, self.device)

    def labels(self, n: int, real_labels: torch.Tensor | None) -> torch.Tensor:
        """The fakes' classes, replica i's drawn from its own generator (or its real batch's labels)."""
        real = [None] * self.n if real_labels is None else real_labels.unflatten(0, (self.n, -1))
        return torch.cat([self.conditioning.draw(n, y, self.device, g) for y, g in zip(real, self.randomness.generators)])

    def aug(self, x: torch.Tensor) -> torch.Tensor:
        """D's inputs through the run's augmentations, replica i's rows with draws from its own generator."""
        return torch.cat([self.augment(rows, g) for rows, g in zip(x.unflatten(0, (self.n, -1)),
                                                                   self.randomness.generators)])

    def uniform(self, rows: int) -> torch.Tensor:
        """U(0, 1) per row, replica i's from its own generator (a gradient penalty's interpolation)."""
        return torch.cat([torch.rand((rows // self.n,), generator=g, device=self.device)
                          for g in self.randomness.generators])

    def join(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Each replica's rows of ``a`` followed by its rows of ``b`` (one D call on both)."""
        return torch.cat((a.unflatten(0, (self.n, -1)), b.unflatten(0, (self.n, -1))), dim=1).flatten(0, 1)

    def part(self, both: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        return tuple(half.flatten(0, 1) for half in both.unflatten(0, (self.n, -1)).split(n, dim=1))

    def notify(self, hook: str, loss: torch.Tensor, **kwargs: Any) -> None:
        for replica in self.active():
            self.plugins.notify(hook, ctx=replica.ctx, loss=loss[replica.index], **kwargs)

    def train_step(self) -> dict[str, torch.Tensor]:
        """The single run's step on every replica at once: each loss holds one value per replica."""
        return named_losses(*train_step(self, self.step + 1))

    def after_d_update(self) -> None:
        """Regularisers acting on D's weights (WGAN's clipping), on each replica's D: its parameters are
        views of the stacked ones, so changing them in place changes what the next update sees."""
        from ganlab.train.build import call_plugin

        for r in self.regularizers:
            hook = getattr(r.made, "after_d_step", None)
            if callable(hook):
                with torch.no_grad():
                    for replica in self.active():
                        call_plugin(r.component, "after_d_step", hook, replica.b.discriminator)

    # ---- the loop ----------------------------------------------------------
    def fit(self) -> list[Any]:
        """Train every replica to the end; returns their contexts.

        Raises PopulationDiverged when some replicas diverged and the others
        finished; any other failure ends every replica still training.
        """
        with self.stop:
            started: list[ReplicaTrainer] = []
            try:
                for replica in self.replicas:
                    replica.select_metrics()
                for replica in self.replicas:
                    started.append(replica)
                    self.plugins.notify("on_run_start", ctx=replica.ctx)
                self._train()
            except (Interrupted, KeyboardInterrupt) as exc:
                self._end_all(started, "KILLED", exc)
                if isinstance(exc, Aborted):
                    raise AbortedRun() from exc
                raise
            except BaseException as exc:
                self._end_all(started, "FAILED", exc)
                raise
            self._end_all(started, "FINISHED", None)
        diverged = [r for r in self.replicas if r.divergence is not None]
        if diverged:
            raise PopulationDiverged([(r.b.config.seed, r.divergence) for r in diverged  # type: ignore[misc]
                                      ], len(self.replicas))
        return [r.ctx for r in self.replicas]

    def _end_all(self, replicas: Sequence[ReplicaTrainer], status: str, error: BaseException | None) -> None:
        for replica in replicas:
            if not replica.ended:
                replica.ended = True
                replica._end(status, error)

    def _train(self) -> None:
        failure = None
        try:
            self._loop()
        except (RuntimeError, MemoryError) as exc:
            from ganlab.train.runtime import out_of_memory

            detail = out_of_memory(exc)
            if detail is None:
                raise
            cfg = self.config
            failure = OutOfMemory(
                f"out of memory on {self.device} after {self.step} of {cfg.steps} steps with "
                f"{len(self.replicas)} replicas of batch size {cfg.batch_size}: {detail}; "
                "use fewer seeds or a smaller --batch-size")
        if failure is not None:
            raise failure

    def _loop(self) -> None:
        cfg = self.config
        while self.step < cfg.steps and self.active():
            losses = self.train_step()
            d_losses, g_losses = losses["loss.d"], losses["loss.g"]
            self.step += 1
            step = self.step
            last = step == cfg.steps
            for replica in self.active():
                replica.ctx.step = step
            if step % cfg.log_every == 0 or last:
                self.check_finite(d_losses, g_losses, step)
            for replica in self.active():
                self.plugins.notify("on_step_end", ctx=replica.ctx, step=step,
                                    losses={k: v[replica.index] for k, v in losses.items()})
            if last or (cfg.sample_every and step % cfg.sample_every == 0):
                for replica in self.active():
                    self.plugins.notify("on_samples", ctx=replica.ctx, step=step, samples=replica.samples())
            if last or (cfg.eval_every and step % cfg.eval_every == 0):
                for replica in self.active():
                    metrics, pictures = replica.evaluation(step)
                    self.plugins.notify("on_evaluate", ctx=replica.ctx, step=step, metrics=metrics, pictures=pictures)
            saved = last or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
            if saved or (self.stop.signum is not None and not last):
                paths = [self._checkpoint(r, d_losses, g_losses) for r in self.active()]
                if self.stop.signum is not None and not last:
                    raise PopulationInterrupted(self.stop.signum, [p for p in paths if p is not None])

    def _checkpoint(self, replica: ReplicaTrainer, d_losses: torch.Tensor, g_losses: torch.Tensor) -> Any:
        i = replica.index
        return replica.save_checkpoint({"loss.d": d_losses[i], "loss.g": g_losses[i]})

    def check_finite(self, d_losses: torch.Tensor, g_losses: torch.Tensor, step: int) -> None:
        """End every replica whose losses or weights stopped being finite; the others go on."""
        ok = torch.isfinite(d_losses) & torch.isfinite(g_losses) & self.G.finite() & self.D.finite()
        if bool(ok.all()):
            return
        for replica in self.active():
            if bool(ok[replica.index]):
                continue
            i = replica.index
            try:
                replica.check_finite({"loss.d": d_losses[i], "loss.g": g_losses[i]}, step)
            except Diverged as exc:
                error = exc
            else:  # the stacked check and the replica's own look at the same numbers
                raise AssertionError(f"replica {i} is finite and not finite at step {step}")
            replica.divergence = error
            replica.ended = True
            replica._end("FAILED", error)
            self._quiet(i)

    @torch.no_grad()
    def _quiet(self, index: int) -> None:
        """Zero a diverged replica's weights and optimiser state: it keeps being computed with the
        others (removing it would mean restacking), and must not feed NaN into any operation."""
        for stack, opt in ((self.G, self.opt_g), (self.D, self.opt_d)):
            for tensor in stack.params.values():
                tensor[index].zero_()
                for name, value in opt.state.get(tensor, {}).items():
                    if name != "step" and isinstance(value, torch.Tensor):
                        value[index].zero_()
            for tensor in stack.buffers.values():
                if tensor.is_floating_point():
                    tensor[index].zero_()

    def load_state_dicts(self, states: Sequence[dict[str, Any] | None]) -> None:
        """Resume: each replica from its own (single-run format) checkpoint."""
        steps = {int(s["step"]) for s in states if s is not None}
        if len(steps) > 1:
            raise GanlabError(f"the replicas' checkpoints are at different steps ({sorted(steps)}); "
                              "a population resumes from one step")
        for replica, state in zip(self.replicas, states):
            if state is not None:
                replica.load_state_dict(state)
        self.step = steps.pop() if steps else self.step


class StackedAverage:
    """The replicas' generator averages (setting ``ema``) as stacked tensors, updated in one pass.

    Each replica's ``GeneratorAverage.module`` views its slice, so its samples,
    evaluation and checkpoint read the shared storage as a single run's would.
    """

    def __init__(self, G: StackedNetwork, averages: Sequence[torch.nn.Module], config: Any) -> None:
        self.G, self.decay, self.start = G, config.ema, config.ema_start
        self.params, self.buffers = stack_replicas(list(averages))
        for i, module in enumerate(averages):
            view_slice(module, self.params, self.buffers, i)
        self.names = list(self.params)

    def update(self, step: int) -> None:
        blend([self.params[k] for k in self.names], [self.G.params[k] for k in self.names],
              list(self.buffers.values()), [self.G.buffers[k] for k in self.buffers],
              0.0 if step <= self.start else self.decay)


class PopulationInterrupted(Interrupted):
    """SIGINT or SIGTERM: every replica still training wrote a checkpoint and ends KILLED."""

    def __init__(self, signum: int, checkpoints: Sequence[Any]) -> None:
        super().__init__(signum, checkpoints[0] if checkpoints else None)
        written = (f"; a checkpoint for each of {len(checkpoints)} replicas" if checkpoints
                   else "; no checkpoint (tracking is off)")
        self.args = (f"interrupted by signal {signum} at a step boundary{written}",)
        self.checkpoints = list(checkpoints)


class PopulationDiverged(GanlabError):
    """Some replicas diverged; the others finished."""

    exit_code = 3

    def __init__(self, diverged: Sequence[tuple[int, Diverged]], total: int) -> None:
        parts = [f"seed {seed} ({exc.what} at step {exc.step})" for seed, exc in diverged]
        finished = total - len(diverged)
        super().__init__(f"{len(diverged)} of {total} replicas diverged: {'; '.join(parts)}; "
                         f"the other {finished} finished")
        self.seeds = [seed for seed, _ in diverged]
        self.total = total


def _population_data(datasets: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The replicas' training tensors as one: a shared tensor when every replica has the same data;
    else the replicas' tensors end to end (a dataset drawn with the run's seed, such as the 2-D
    mixtures) and the (N, 1) offsets of each replica's rows."""
    first = datasets[0]
    if all(d is first for d in datasets):
        return first.x, first.y, None
    offsets = torch.arange(len(datasets), device=first.x.device).unsqueeze(1) * len(first.x)
    return (torch.cat([d.x for d in datasets]),
            torch.cat([d.y for d in datasets]) if first.y is not None else None, offsets)
