"""The training loop.

One D step and one G step, alternating, with everything else (tracking,
progress, samples, evaluation, checkpoints) hanging off lifecycle hooks. The
step functions return detached loss tensors and never synchronise with the
device; the loop looks at values only every ``log_every`` steps.

Over 400 lines on purpose: the one D and G step (of a single run and, stacked, of a population) and
the loop that drives it are read together.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganlab.train import checkpoint
from ganlab.train.build import Built, call_plugin, scores_samples_independently
from ganlab.context import RunContext
from ganlab.errors import GanlabError
from ganlab.plugins import PluginManager
from ganlab.train.signals import Aborted, GracefulStop, Signalled
from ganlab.train.schedule import set_rates


class Diverged(GanlabError):
    """A loss or a parameter became NaN or Inf."""

    exit_code = 3

    def __init__(self, what: str, step: int, kept: str = "the last good checkpoint is kept") -> None:
        super().__init__(f"training diverged: {what} is not finite at step {step}; {kept}")
        self.what, self.step = what, step


class OutOfMemory(GanlabError):
    """A training step, a sample grid or an evaluation did not fit in the device's memory."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; the run stopped after a checkpoint."""

    def __init__(self, signum: int, checkpoint: Path | None = None) -> None:
        written = f"; checkpoint {checkpoint}" if checkpoint is not None else "; no checkpoint (tracking is off)"
        super().__init__(f"interrupted by signal {signum} at a step boundary{written}")
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum


class AbortedRun(Interrupted):
    """A second SIGINT stopped training at once, between two checkpoints; the run ended KILLED.

    An Interrupted, not the KeyboardInterrupt it comes from: the command line would take that
    for a Ctrl-C anywhere, and the line saying what happened to the run would be lost.
    """

    def __init__(self) -> None:
        Exception.__init__(self, "interrupted: a second SIGINT stopped training at once, without a checkpoint "
                                 "of the steps since the newest one; a recorded run is marked KILLED, and "
                                 "`ganlab runs` shows the command that resumes it")
        self.signum = signal.SIGINT
        self.checkpoint = None
        self.exit_code = 128 + signal.SIGINT


class StoppedBeforeTraining(Interrupted):
    """A signal while the run's record was being opened, before the first step: nothing to checkpoint."""

    def __init__(self, signum: int, run_id: str | None) -> None:
        Exception.__init__(self, f"interrupted by {signal.Signals(signum).name} before the first step; nothing was "
                                 "trained, so no checkpoint was written"
                                 + (f"; run {run_id} is marked KILLED" if run_id else "; no run was created"))
        self.signum = signum
        self.run_id = run_id
        self.checkpoint = None
        self.exit_code = 128 + signum


def make_step_functions(b: Built, population: Any = None) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The loss computations of one D step and one G step (compilable), of a run or of a population.

    Each returns (total loss, named terms): the objective's and each due regulariser's,
    as ``ganlab.train.step.total_of`` splits them (no names when there is one bare term).
    ``population`` (a ``PopulationTrainer``) swaps in its stacked networks and its replicas' own
    random streams; the tensors are then every replica's rows one after another, and the losses
    one value per replica. The code below is the step of both.
    """
    import torch

    from ganlab.train.build import composed_augmentation
    from ganlab.train.conditioning import discriminator_call, generator_call
    from ganlab.train.runtime import autocast
    from ganlab.train.step import Step, total_of

    config, head, objective = b.config, b.head, b.objective
    device, latent = b.device, config.latent_dim
    cond = b.conditioning
    cond_d = cond is not None and cond.discriminator
    augment = composed_augmentation(b.augmentations)
    if population is None:
        G, D = b.generator, b.discriminator
        # distributed: gradients are averaged through DDP wrappers (ganlab.dist); the G step
        # scores fakes with the bare D, whose gradients there are discarded and need no all-reduce
        G_sync, D_sync = b.wrapped if b.wrapped is not None else (G, D)
        draw = lambda n: b.latent.sample(n, latent, device)  # noqa: E731 (plain Gaussian: torch.randn)
        draw_labels = (lambda n, y: cond.draw(n, y, device)) if cond is not None else None
        step_aug = (lambda x: augment(x, None)) if augment is not None else None
        join, part = (lambda a, c: torch.cat((a, c))), (lambda both, n: both.split(n))
        features, uniform, replicas = (D.features if b.auxiliary is not None else None), None, None
    else:
        G = G_sync = population.G
        D = D_sync = population.D
        draw, draw_labels = population.noise, population.labels if cond is not None else None
        step_aug = population.aug if augment is not None else None
        join, part = population.join, population.part
        features, uniform, replicas = None, population.uniform, population.n
    per = replicas or 1
    # conditional runs: G(z, y) and D(x, y) (ganlab.train.conditioning); otherwise G(z) and D(x)
    gen, gen_sync = generator_call(G, cond), generator_call(G_sync, cond)
    disc_sync = discriminator_call(D_sync, cond)
    one_d_call = scores_samples_independently(b.architecture)
    aug = step_aug if step_aug is not None else (lambda x: x)
    penalties = [r for r in b.regularizers if r.penalises]
    loss_name = config.name_of("loss")

    def d_loss_fn(real: Any, real_labels: Any, number: int, d_step: int) -> Any:
        with autocast(device, config.precision):
            n = real.shape[0] // per
            noise = draw(n)
            fake_labels = draw_labels(n, real_labels) if draw_labels is not None else None
            with torch.no_grad():
                fake = gen(noise, fake_labels)
            step = Step(phase="d", number=number, d_step=d_step, real=real, real_labels=real_labels,
                        noise=noise, fake=fake, discriminator=D_sync, head=head, augment=step_aug,
                        fake_labels=fake_labels, conditional=cond_d, features=features, auxiliary=b.auxiliary,
                        uniform=uniform, replicas=replicas)
            if one_d_call:
                # one call on both halves: larger matrix products and half the kernel launches
                # (measured in docs/benchmarks.md)
                both_labels = join(real_labels, fake_labels) if cond_d else None
                both = disc_sync(aug(join(real, fake.to(real.dtype))), both_labels)
                real_scores, fake_scores = part(both, n)
            else:
                # BatchNorm and the like: each batch must see only its own statistics
                real_scores, fake_scores = disc_sync(aug(real), real_labels), disc_sync(aug(fake), fake_labels)
            step.remember(real, real_scores)
            step.remember(fake, fake_scores)
            total, terms = total_of(objective.discriminator_loss(step), f"loss '{loss_name}'")
            due = [r for r in penalties if r.due(number)]
            if due:
                terms = dict(terms) if terms else {"adv": total}
                for r in due:
                    terms[r.name] = (r.weight * r.every) * r.made.penalty(step)
                total = sum(terms.values())
        return total, terms

    def g_loss_fn(batch_size: int, real: Any, real_labels: Any, number: int) -> Any:
        with autocast(device, config.precision):
            noise = draw(batch_size)
            fake_labels = draw_labels(batch_size, real_labels) if draw_labels is not None else None
            fake = gen_sync(noise, fake_labels)
            step = Step(phase="g", number=number, d_step=None, real=real, real_labels=real_labels,
                        noise=noise, fake=fake, discriminator=D, head=head, augment=step_aug,
                        fake_labels=fake_labels, conditional=cond_d, features=features, auxiliary=b.auxiliary,
                        uniform=uniform, replicas=replicas)
            return total_of(objective.generator_loss(step), f"loss '{loss_name}'")

    return d_loss_fn, g_loss_fn


def train_step(t: Any, step: int) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """Training step ``step`` (1-based): ``cfg.d_steps`` D updates, then one G update, with their hooks and
    the generator's average; (D loss, G loss, D terms, G terms). ``t``: a ``Trainer``, or a population's
    ``PopulationTrainer`` (then each loss holds one value per replica, and a hook is called per replica)."""
    cfg = t.config
    set_rates(((t.opt_d, cfg.lr_d), (t.opt_g, cfg.lr_g)), cfg.lr_schedule, step - 1, cfg.schedule_steps or cfg.steps)
    for d_step in range(cfg.d_steps):
        real, labels = t.next_batch()
        t.opt_d.zero_grad(set_to_none=True)
        d_loss, d_terms = t.d_loss_fn(real, labels, step, d_step)
        t.scaler_d.scale(d_loss if d_loss.dim() == 0 else d_loss.sum()).backward()
        t.scaler_d.step(t.opt_d)
        t.scaler_d.update()
        t.after_d_update()
        t.notify("on_after_d_step", d_loss.detach(), step=step, d_step=d_step)
    t.opt_g.zero_grad(set_to_none=True)
    # The G step needs gradients through D, not of D's weights: with D's parameters
    # frozen for the forward, backward skips those products (measured in docs/benchmarks.md).
    for p in t.d_trainable:
        p.requires_grad_(False)
    try:
        g_loss, g_terms = t.g_loss_fn(cfg.batch_size, real, labels, step)
    finally:
        for p in t.d_trainable:
            p.requires_grad_(True)
    t.scaler_g.scale(g_loss if g_loss.dim() == 0 else g_loss.sum()).backward()
    t.scaler_g.step(t.opt_g)
    t.scaler_g.update()
    t.notify("on_after_g_step", g_loss.detach(), step=step)
    if t.average is not None:
        t.average.update(step)
    return d_loss.detach(), g_loss.detach(), d_terms, g_terms


def named_losses(d_loss: Any, g_loss: Any, d_terms: dict[str, Any], g_terms: dict[str, Any]) -> dict[str, Any]:
    """A step's losses under the metric keys the record uses (``loss.d``, ``loss.d.NAME``, ...)."""
    return {"loss.d": d_loss, "loss.g": g_loss, **{f"loss.d.{k}": v.detach() for k, v in d_terms.items()},
            **{f"loss.g.{k}": v.detach() for k, v in g_terms.items()}}


def maybe_compile(fn: Callable[..., Any], enabled: bool, label: str) -> Callable[..., Any]:
    """torch.compile ``fn``; if compilation fails at its first call, warn once and run eagerly."""
    if not enabled:
        return fn
    import torch

    compiled = torch.compile(fn)
    state = {"fn": compiled, "checked": False}

    def call(*args: Any) -> Any:
        if state["checked"]:
            return state["fn"](*args)
        try:
            out = state["fn"](*args)
        except Exception as exc:
            reason = " ".join(str(exc).split())[:160]
            print(f"ganlab: warning: torch.compile of the {label} step failed ({type(exc).__name__}: {reason}); "
                  f"continuing uncompiled", file=sys.stderr)
            state["fn"] = fn
            out = fn(*args)
        state["checked"] = True
        return out

    return call


class Trainer:
    """Owns a run's state and runs its loop; plugins observe it through hooks."""

    def __init__(self, built: Built, plugins: PluginManager) -> None:
        import torch

        from ganlab.data import ResidentBatches, StreamingBatches, TensorData

        self.b = built
        self.plugins = plugins
        config = built.config
        self.batches = (
            ResidentBatches(built.data, config.batch_size, config.seed)
            if isinstance(built.data, TensorData)
            else StreamingBatches(built.data, config.batch_size, config.seed, built.device)
        )
        # fp16: one gradient scaler per network, each update()d after its own optimiser's step. A shared
        # one was updated twice an iteration (growing twice as fast as either network's gradients allow),
        # and an overflow in one network's gradients halved the scale of the other's next step.
        fp16 = config.precision == "fp16"
        self.scaler_d = torch.amp.GradScaler(built.device.type, enabled=fp16)
        self.scaler_g = torch.amp.GradScaler(built.device.type, enabled=fp16)
        # images: one 8x8 grid (conditional: a row of 8 per class); vectors (2-D mixtures): enough
        # points for a scatter plot
        self.fixed_labels = fixed_labels(built.conditioning, len(built.data.shape) > 1, built.device)
        self.fixed_noise = fixed_noise(built, self.fixed_labels)
        d_fn, g_fn = make_step_functions(built)
        auxiliary = list(built.auxiliary.parameters()) if built.auxiliary is not None else []
        self.d_trainable = [p for p in [*built.discriminator.parameters(), *auxiliary] if p.requires_grad]
        self.d_loss_fn = maybe_compile(d_fn, config.compile, "discriminator")
        self.g_loss_fn = maybe_compile(g_fn, config.compile, "generator")
        self.ctx = RunContext(
            config=config, device=built.device, generator=built.generator, discriminator=built.discriminator,
            head=built.head, objective=built.objective, data=built.data, data_shape=tuple(built.data.shape),
            num_classes=built.num_classes, components=built.components, conditioning=built.conditioning,
            plugin_options={k: dict(v) for k, v in config.plugin_options.items()},
        )
        self.ctx.extras["metrics"] = {}
        self.ctx.extras["dataset"] = built.dataset
        self.average = self._make_average()
        if hasattr(built.objective, "setup"):  # e.g. the semi-supervised objective picks its labelled subset
            call_plugin(built.components["loss"], "setup", built.objective.setup, self.ctx)
        self.stop = GracefulStop()
        self.last_checkpoint: Path | None = None
        # set on every rank of a distributed run (ganlab.dist): rank 0 alone samples and evaluates
        self.dist: Any = None

    def _make_average(self) -> Any:
        """The EMA of G's weights when ``ema`` > 0; it then stands in for G wherever samples are drawn."""
        from ganlab.train.averaging import GeneratorAverage

        cfg = self.b.config
        if not cfg.ema:
            return None
        average = GeneratorAverage(self.b.generator, cfg.ema, cfg.ema_start)
        self.ctx.generator_average = average.module
        return average

    @property
    def sampling_generator(self) -> Any:
        """The generator that samples, evaluation and the exported weights use: G, or its average."""
        return self.average.module if self.average is not None else self.b.generator

    # ---- one step --------------------------------------------------------
    config = property(lambda self: self.b.config)
    opt_d = property(lambda self: self.b.opt_d)
    opt_g = property(lambda self: self.b.opt_g)

    def next_batch(self) -> tuple[Any, Any]:
        return self.batches.next()

    def notify(self, hook: str, loss: Any, **kwargs: Any) -> None:
        self.plugins.notify(hook, ctx=self.ctx, loss=loss, **kwargs)

    def train_step(self) -> dict[str, Any]:
        return named_losses(*train_step(self, self.ctx.step + 1))

    def after_d_update(self) -> None:
        """Regularisers that act on D's weights after its update (WGAN's clipping)."""
        import torch

        for r in self.b.regularizers:
            hook = getattr(r.made, "after_d_step", None)
            if callable(hook):
                with torch.no_grad():
                    call_plugin(r.component, "after_d_step", hook, self.b.discriminator)

    # ---- the loop ----------------------------------------------------------
    def fit(self) -> RunContext:
        ctx = self.ctx
        self.select_metrics()
        with self.stop:
            status, error = "FINISHED", None
            try:
                self.stop.immediate = True  # opening the record (a slow server): no step to finish yet
                try:
                    self.plugins.notify("on_run_start", ctx=ctx)
                finally:
                    self.stop.immediate = False
                self._train()
            except Interrupted as exc:
                status, error = "KILLED", exc
                raise
            except KeyboardInterrupt as exc:
                status, error = "KILLED", exc
                if isinstance(exc, Aborted):
                    raise AbortedRun() from exc
                if isinstance(exc, Signalled):
                    raise StoppedBeforeTraining(exc.signum, ctx.run_id) from exc
                raise
            except BaseException as exc:
                status, error = "FAILED", exc
                raise
            finally:
                self._end(status, error)
        return ctx

    def _train(self) -> None:
        """The loop, with running out of memory said in one line (the run then ends FAILED with it)."""
        failure = None
        try:
            self._loop()
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            failure = self._out_of_memory(exc)
            if failure is None:
                raise
        # raised here, outside the handler: the failed step's frames (and their tensors) are freed first
        if failure is not None:
            raise failure

    def _out_of_memory(self, exc: BaseException) -> OutOfMemory | None:
        from ganlab.train.runtime import out_of_memory

        detail = out_of_memory(exc)
        if detail is None:
            return None
        cfg = self.b.config
        return OutOfMemory(
            f"out of memory on {self.b.device} after {self.ctx.step} of {cfg.steps} steps with batch size "
            f"{cfg.batch_size}: {detail}; use a smaller --batch-size"
        )

    def _end(self, status: str, error: BaseException | None) -> None:
        """Tell the plugins the run ended. If that fails too while a failure is already on its way
        out, the first failure is the one to report (e.g. a full disk: the checkpoint, then the weights)."""
        try:
            self.plugins.notify("on_run_end", ctx=self.ctx, status=status, error=error)
        except Exception as exc:
            if error is None:
                raise
            print(f"ganlab: warning: ending the run's record failed as well: {type(exc).__name__}: "
                  f"{' '.join(str(exc).split())[:300]}", file=sys.stderr)

    def _loop(self) -> None:
        cfg, ctx = self.b.config, self.ctx
        while ctx.step < cfg.steps:
            losses = self.train_step()
            ctx.step += 1
            step = ctx.step
            last = step == cfg.steps
            if step % cfg.log_every == 0 or last:
                self.check_finite(losses, step)
            if self.dist is not None:  # the ranks' per-step collectives, before any plugin reads the losses
                self.dist.step_end(self, step, losses)
            self.plugins.notify("on_step_end", ctx=ctx, step=step, losses=losses)
            main = self.dist is None or self.dist.is_main
            if main and (last or (cfg.sample_every and step % cfg.sample_every == 0)):
                with self._alone():
                    samples = self.samples()
                self.plugins.notify("on_samples", ctx=ctx, step=step, samples=samples)
            if main and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
                with self._alone():
                    metrics, pictures = self.evaluation(step)
                self.plugins.notify("on_evaluate", ctx=ctx, step=step, metrics=metrics, pictures=pictures)
            saved = last or bool(cfg.checkpoint_every and step % cfg.checkpoint_every == 0)
            if saved:
                self.save_checkpoint(losses)
            if self.stop.signum is not None and not last:
                path = self.save_checkpoint(losses) if not saved else self.last_checkpoint
                raise Interrupted(self.stop.signum, path)

    # ---- pieces the loop calls ---------------------------------------------
    def _alone(self) -> contextlib.AbstractContextManager[Any]:
        """Rank 0's own forward passes in a distributed run: see ``Distributed.alone``."""
        return self.dist.alone() if self.dist is not None else contextlib.nullcontext()

    def check_finite(self, losses: dict[str, Any], step: int) -> None:
        import torch

        for name, value in losses.items():
            if not bool(torch.isfinite(value).all()):
                raise Diverged(name, step, self.kept_checkpoint())
        for role, net in (("generator", self.b.generator), ("discriminator", self.b.discriminator)):
            for pname, param in net.named_parameters():
                if not bool(torch.isfinite(param).all()):
                    raise Diverged(f"{role} parameter '{pname}'", step, self.kept_checkpoint())

    def kept_checkpoint(self) -> str:
        """Which checkpoint a failed run leaves to resume from, said for its error line."""
        if self.ctx.workdir is None and not self.b.config.tracking:
            return ("no checkpoint is kept (an untracked run checkpoints only into a directory given with "
                    "--run-dir)")
        if self.ctx.workdir is None:  # a distributed run's other ranks: rank 0 writes the checkpoints
            return "rank 0 keeps the last good checkpoint, if any"
        found = checkpoint.list_checkpoints(Path(self.ctx.workdir) / "checkpoints")
        if not found:
            return ("no checkpoint was written before it, so there is none to resume from "
                    "(--checkpoint-every N writes one every N steps)")
        return f"the last good checkpoint, step {checkpoint.step_of(found[-1])}, is kept: {found[-1]}"

    def samples(self) -> Any:
        import torch

        from ganlab.train.runtime import autocast

        from ganlab.train.conditioning import generator_call
        from ganlab.train.evaluation import evaluation_mode

        generator = self.sampling_generator
        with torch.no_grad(), autocast(self.b.device, self.b.config.precision), evaluation_mode(generator):
            return generator_call(generator, self.b.conditioning)(self.fixed_noise, self.fixed_labels).float().cpu()

    def select_metrics(self) -> None:
        explicit = self.b.config.metric_names
        chosen = {}
        for name, metric in self.b.metrics.items():
            component = self.b.metric_components.get(name)
            applies = bool(metric.applies_to(self.ctx) if component is None else
                           call_plugin(component, "applies_to", metric.applies_to, self.ctx))
            if applies:
                chosen[name] = metric
            elif explicit is not None:
                raise GanlabError(
                    f"metric '{name}' does not apply to dataset '{self.b.config.name_of('dataset')}' "
                    f"with head '{self.b.config.name_of('head')}' and loss '{self.b.config.name_of('loss')}'"
                )
        self.ctx.extras["metrics"] = chosen
        # the numbers the chosen metrics name as their headline, shown first in the run's last lines
        self.ctx.extras["headline"] = [key for name in chosen if (component := self.b.metric_components.get(name))
                                       for key in component.metadata.get("headline", ())]

    def evaluate(self, step: int) -> dict[str, float]:
        """The metrics' values at ``step`` (see ``evaluation`` for their pictures too)."""
        return self.evaluation(step)[0]

    def evaluation(self, step: int) -> tuple[dict[str, float], dict[str, Any]]:
        """The metrics' values at ``step`` and their pictures (key -> ganlab.Picture)."""
        from ganlab.train.evaluation import evaluate

        # evaluate() forks torch's RNG; numpy's and Python's are restored here, so a metric
        # drawing from them cannot move training off the trajectory a resume reproduces
        import random

        import numpy as np

        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            return evaluate(self, step)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    def state_dict(self) -> dict[str, Any]:
        from ganlab.train.runtime import rng_state

        b = self.b
        return {
            "step": self.ctx.step,
            "generator": b.generator.state_dict(),
            "discriminator": b.discriminator.state_dict(),
            "opt_g": b.opt_g.state_dict(),
            "opt_d": b.opt_d.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "rng": rng_state(),
            "data_order": self.batches.state_dict(),
            "config": b.config.to_toml_dict(),
            "objective": b.objective.state_dict() if hasattr(b.objective, "state_dict") else {},
            **({"auxiliary": b.auxiliary.state_dict()} if b.auxiliary is not None else {}),
            **({"generator_average": self.average.state_dict()} if self.average is not None else {}),
            "plugins": self.plugins.collect_state(self.ctx),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from ganlab.train.runtime import set_rng_state

        b = self.b
        b.generator.load_state_dict(state["generator"])
        b.discriminator.load_state_dict(state["discriminator"])
        b.opt_g.load_state_dict(state["opt_g"])
        b.opt_d.load_state_dict(state["opt_d"])
        scaler_d, scaler_g = checkpoint.scaler_states(state)
        self.scaler_d.load_state_dict(scaler_d)
        self.scaler_g.load_state_dict(scaler_g)
        self.batches.load_state_dict(state["data_order"])
        if hasattr(b.objective, "load_state_dict") and state.get("objective"):
            b.objective.load_state_dict(state["objective"])
        if b.auxiliary is not None:
            b.auxiliary.load_state_dict(state["auxiliary"])
        if self.average is not None:
            # a checkpoint from before the average existed: it starts from the weights being resumed
            self.average.load_state_dict(state.get("generator_average", state["generator"]))
        set_rng_state(state["rng"])
        self.ctx.step = int(state["step"])
        self.ctx.resumed_from = self.ctx.step
        self.plugins.restore_state(self.ctx, state.get("plugins", {}))

    def save_checkpoint(self, losses: dict[str, Any]) -> Path | None:
        # distributed: every rank takes part, rank 0's checkpoint holds each rank's RNG state
        extra = self.dist.checkpoint_state() if self.dist is not None else {}
        directory = self.ctx.workdir
        if directory is None:
            return None
        self.check_finite(losses, self.ctx.step)  # never write a diverged state over a good one
        # the record first: a checkpoint whose steps the record lacks would make resume skip them
        self.plugins.notify("before_checkpoint", ctx=self.ctx, step=self.ctx.step)
        state = {**self.state_dict(), **extra}
        try:
            path = checkpoint.save_atomic(state, Path(directory) / "checkpoints", self.ctx.step,
                                          self.b.config.keep_checkpoints)
        except checkpoint.CheckpointWriteError as exc:
            if exc.previous is None or self.ctx.run_id is None:
                raise
            raise checkpoint.CheckpointWriteError(
                exc.path, exc.error, exc.previous,
                also=f"once there is room, `ganlab resume {self.ctx.run_id}` continues from it") from None
        self.last_checkpoint = path
        self.plugins.notify("on_checkpoint", ctx=self.ctx, step=self.ctx.step, path=path)
        return path


#: A conditional image run's sample grid shows one row of this many samples per class, for at most
#: MAX_GRID_CLASSES classes (the first ones).
GRID_COLUMNS, MAX_GRID_CLASSES = 8, 16


def fixed_noise(built: Built, labels: Any) -> Any:
    """The latents of the run's sample grids, from their own seeded stream: for an image run an 8x8 grid, or
    one row per class (conditional), or a latent's own sweep (InfoGAN: a code varying down each column);
    for vectors, 1000 points."""
    import torch

    config = built.config
    stream = torch.Generator().manual_seed(config.seed + 1)
    images = len(built.data.shape) > 1
    if labels is None and images and callable(getattr(built.latent, "sweep", None)):
        rows = min(int(getattr(built.latent, "sweep_rows", MAX_GRID_CLASSES)), MAX_GRID_CLASSES)
        return built.latent.sweep(rows, GRID_COLUMNS, config.latent_dim, stream).to(built.device)
    n = (64 if images else 1000) if labels is None else len(labels)
    return built.latent.sample(n, config.latent_dim, built.device, stream)


def fixed_labels(conditioning: Any, images: bool, device: Any) -> Any:
    """The classes of a conditional run's fixed samples: row c of an image grid is class c; vectors cycle
    through the classes. None for an unconditional generator."""
    import torch

    if conditioning is None or not conditioning.generator:
        return None
    if images:
        rows = min(conditioning.num_classes, MAX_GRID_CLASSES)
        return torch.arange(rows, device=device).repeat_interleave(GRID_COLUMNS)
    return conditioning.balanced(1000, device)


def resume_state(directory: Path) -> dict[str, Any] | None:
    found = checkpoint.list_checkpoints(directory / "checkpoints")
    return checkpoint.load(found[-1]) if found else None

