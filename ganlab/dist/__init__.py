"""Data-parallel training over several processes with torch.distributed.

ganlab does not launch processes itself: ``torchrun --nproc-per-node N -m ganlab run ...``
starts N copies and gives each one ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
``ganlab run --nproc N`` is a shortcut that starts exactly that on one machine
(:func:`launch`). Inside each copy the runner calls, in this order:

* :func:`setup` joins the process group: nccl on CUDA (rank r on
  ``cuda:LOCAL_RANK``), gloo on CPU. Outside torchrun it returns None and
  nothing in this module runs.
* :func:`wrap` converts BatchNorm to SyncBatchNorm when ``sync_batchnorm`` is
  set and wraps both networks in DistributedDataParallel. Every rank builds
  the networks from the run's seed, so the initial weights agree before DDP
  broadcasts rank 0's copy anyway.
* :func:`attach` gives the trainer its shard of every batch, per-rank random
  streams and a stop signal all ranks agree on; the loop then calls
  :meth:`Distributed.step_end` on every rank after every step.

Rank 0 alone records: the runner registers the MLflow tracker and the progress
bar on rank 0 only, and the engine samples, evaluates and writes checkpoints
there only. Other ranks run every lifecycle hook (a plugin that changes
training must act on every rank) but log nothing; a plugin that writes files
asks :func:`is_main_process`.

Why the GAN steps are wrapped the way they are (see ``engine.make_step_functions``):

* D is called twice (real, fake) before one backward, unless the architecture
  declares ``samplewise_discriminator`` (then once, on both). DDP allows two calls, since a
  parameter's gradient hook fires once per backward, but its default buffer
  broadcast at every forward rewrites BatchNorm running statistics in place
  between the two calls, which autograd then rejects. So ``broadcast_buffers``
  is off and ``Distributed.step_end`` averages floating-point buffers after each step.
* The G step back-propagates through D, and those D gradients are thrown away
  (the next D step zeroes them). The G step therefore calls the bare D, not its
  DDP wrapper: no all-reduce is prepared, so none is paid for, and D's
  parameters stay identical because they are only ever stepped with averaged
  gradients.
* G's forward in the D step runs under ``no_grad`` and uses the bare G.

Over 400 lines on purpose: everything distributed is here, so that the single-process paths carry
none of it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from ganlab.errors import ConfigError, GanlabError, one_line
from ganlab.train.signals import HANDLED, Aborted, GracefulStop, detach_from_terminal

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ganlab.train.build import Built
    from ganlab.config import RunConfig
    from ganlab.data import StreamingData, TensorData
    from ganlab.train.engine import Trainer

#: How long a rank waits for the others in one collective. Rank 0 alone evaluates
#: and uploads checkpoints while the others wait in their next all-reduce, so this
#: is generous (nccl's own default is 10 minutes).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


class PeerFailed(GanlabError):
    """Another rank of the job stopped, so this one cannot go on."""

    exit_code = 1


# ---- where this process sits in the job (cheap: environment only) -------------

def launched_by_torchrun() -> bool:
    """True in a process started by torchrun (or anything that sets its variables)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def rank() -> int:
    """This process's global rank; 0 in a one-process run."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (its GPU index); 0 in a one-process run."""
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    """How many processes train the run; 1 in a one-process run."""
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """Whether this process is the one that records (rank 0)."""
    return rank() == 0


def rank_seed(seed: int, rank: int) -> int:
    """The seed of one rank's global random streams (noise, dropout).

    Rank 0 keeps the run's seed, so a one-process torchrun job draws exactly what
    a plain run draws. Other ranks get a seed mixed from (seed, rank) rather than
    ``seed + rank``, which would make rank 1 of seed 0 replay rank 0 of seed 1.
    """
    if rank == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


# ---- joining the job ---------------------------------------------------------------

def training_device(requested: str, local: int, world: int) -> torch.device:
    """The device rank ``local`` trains on, or a ConfigError naming what to change."""
    import torch

    from ganlab.train.runtime import resolve_device

    if requested.startswith("cuda:"):
        if world > 1:
            raise ConfigError(
                f"device '{requested}' would put every process on one GPU; use device=cuda "
                f"(each process takes cuda:LOCAL_RANK)"
            )
        return resolve_device(requested)
    device = resolve_device(requested)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if local >= count:
            raise ConfigError(
                f"process with LOCAL_RANK {local} has no GPU: {count} visible on this machine; "
                f"start at most {count} processes per machine"
            )
        return torch.device("cuda", local)
    if device.type != "cpu":
        raise ConfigError(
            f"distributed training runs on CUDA GPUs (nccl) or on CPUs (gloo), not on '{device.type}'; set device=cpu"
        )
    return device


def check_sync_batchnorm(config: RunConfig, device_type: str) -> None:
    if config.sync_batchnorm and device_type != "cuda":
        raise ConfigError(
            "sync_batchnorm needs CUDA: torch's SyncBatchNorm runs on GPUs only (not with gloo on CPU); "
            "set sync_batchnorm=false"
        )


@dataclass
class Distributed:
    """One rank's view of the job, and the collectives ganlab needs beside DDP's."""

    rank: int
    local_rank: int
    world_size: int
    backend: str
    device: Any
    control: Any  # a gloo group: CPU-side agreement (stop signals, sample counts, RNG states)
    solo: Any = None  # a group of rank 0 alone: SyncBatchNorm during rank 0's own passes
    sync_batchnorm: bool = False
    modules: tuple[Any, ...] = ()  # the bare (G, D), once wrapped
    buffers: list[Any] = field(default_factory=list)  # their floating-point buffers, averaged after each step
    tracker: Any = None  # rank 0's MlflowTracker, for data.samples_seen
    flag: Any = None  # the stop agreement's tensor ...
    pending: Any = None  # ... and its all-reduce in flight, waited for a step later (or at teardown)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- collectives (every rank calls each one at the same point) ----------------
    def average_(self, tensors: list[torch.Tensor]) -> None:
        """Replace each tensor by its mean over ranks, with one all-reduce."""
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        if not tensors:
            return
        flat = _flatten_dense_tensors([t.detach() for t in tensors])
        dist.all_reduce(flat)  # SUM: gloo has no AVG
        flat /= self.world_size
        for tensor, mean in zip(tensors, _unflatten_dense_tensors(flat, tensors)):
            tensor.detach().copy_(mean)

    def total(self, count: int) -> int:
        """The sum of ``count`` over ranks."""
        import torch
        import torch.distributed as dist

        value = torch.tensor([count], dtype=torch.int64)
        dist.all_reduce(value, group=self.control)
        return int(value.item())

    def checkpoint_state(self) -> dict[str, Any]:
        """What rank 0's checkpoint adds: the world size and every rank's RNG state."""
        import torch.distributed as dist

        from ganlab.train.runtime import rng_state

        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(rng_state(), gathered, dst=0, group=self.control, weights_only=True)
        return {"world_size": self.world_size, "rank_rng": gathered}

    # ---- after every step (Trainer._loop calls this on every rank) -----------------------
    def step_end(self, trainer: Trainer, step: int, losses: dict[str, Any]) -> None:
        """The per-step collectives, at one fixed point of the loop, before any plugin sees the step.

        Floating-point buffers are averaged (unless SyncBatchNorm keeps them
        equal already) and the stop agreement advances. At logging steps the
        losses become their mean over ranks (the loss of the global batch, which
        the tracker and progress bar then show) and rank 0 records
        ``data.samples_seen``, the sum of the samples every rank has drawn.
        """
        import torch

        self.average_(self.buffers)
        self.agree_on_stop(trainer.stop)
        cfg = trainer.b.config
        if step % cfg.log_every and step != cfg.steps:
            return
        keys = list(losses)
        means = torch.stack([losses[k].detach().float() for k in keys])
        self.average_([means])
        for i, key in enumerate(keys):
            losses[key] = means[i]
        seen = self.total(trainer.batches.drawn)
        if self.tracker is not None:
            self.tracker.add("data.samples_seen", float(seen), step)

    def agree_on_stop(self, stop: Any) -> None:
        """Turn a signal any rank received into ``stop.signum`` on every rank, at the same step.

        The all-reduce runs on the CPU group asynchronously and is read one step
        later, so it never stalls a step on the GPU.
        """
        import torch
        import torch.distributed as dist

        if self.pending is not None:
            self.pending.wait()
            self.pending = None
            agreed = int(self.flag.item())
            if agreed:
                stop.signum = agreed
                return
        self.flag = torch.tensor([getattr(stop, "requested", None) or 0], dtype=torch.int64)
        self.pending = dist.all_reduce(self.flag, op=dist.ReduceOp.MAX, group=self.control, async_op=True)

    # ---- rank 0 on its own ---------------------------------------------------------
    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        """Rank 0's own forward passes (samples, evaluation): no collectives, no trace.

        SyncBatchNorm layers would wait for ranks that are not there, so they use
        the one-rank group meanwhile; BatchNorm running statistics, which a
        train-mode forward updates, are put back afterwards so that every rank
        keeps the same networks.
        """
        import torch

        nets = self.modules
        saved = [(buffer, buffer.detach().clone()) for net in nets for buffer in net.buffers()]
        groups = []
        if self.solo is not None:
            for net in nets:
                for module in net.modules():
                    if isinstance(module, torch.nn.SyncBatchNorm):
                        groups.append((module, module.process_group))
                        module.process_group = self.solo
        try:
            yield
        finally:
            for module, group in groups:
                module.process_group = group
            with torch.no_grad():
                for buffer, copy in saved:
                    buffer.copy_(copy)


def setup(config: RunConfig) -> Distributed | None:
    """Join the process group when started by torchrun; None in a plain process."""
    if not launched_by_torchrun():
        return None
    import torch
    import torch.distributed as dist

    global_rank, local, world = rank(), local_rank(), world_size()
    device = training_device(config.device, local, world)
    check_sync_batchnorm(config, device.type)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT,
                                device_id=device if backend == "nccl" else None)
        control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
        solo = dist.new_group(ranks=[0]) if config.sync_batchnorm else None
    except Exception as exc:
        raise GanlabError(
            f"rank {global_rank} of {world} cannot join the process group ({backend}): {one_line(exc)}"
        ) from None
    return Distributed(global_rank, local, world, backend, device, control, solo, bool(config.sync_batchnorm))


@contextlib.contextmanager
def main_process_first(d: Distributed | None) -> Iterator[None]:
    """Rank 0 runs the block first (downloads, fills the data cache); the others then follow."""
    if d is None:
        yield
        return
    if d.is_main:
        yield
        _barrier(d, "after preparing the run")
    else:
        _barrier(d, "while preparing the run")
        yield


def _barrier(d: Distributed, when: str) -> None:
    import torch.distributed as dist

    try:
        dist.barrier(group=d.control)
    except Exception as exc:
        raise PeerFailed(f"another rank stopped {when} (its error is in its own output): {one_line(exc)}") from None


def wrap(built: Built, d: Distributed) -> None:
    """SyncBatchNorm when asked, then DDP wrappers for the step functions (``built.wrapped``).

    Conversion keeps the same Parameter objects, so the optimisers built before
    still hold them; ``built.generator``/``discriminator`` stay bare modules, so
    checkpoints and saved networks have the same keys as a one-process run.
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if built.auxiliary is not None:  # its gradients would not be averaged over the ranks
        raise GanlabError(f"loss '{built.config.name_of('loss')}' trains a network of its own beside D (InfoGAN's "
                          "Q), which a distributed run does not synchronise; run it in one process")
    if d.sync_batchnorm:
        built.generator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(built.generator)
        built.discriminator = torch.nn.SyncBatchNorm.convert_sync_batchnorm(built.discriminator)
    ids = [d.device.index] if d.device.type == "cuda" else None
    # no buffer broadcast at each forward (see the module docstring); torch >= 2.14 names it forward_sync_buffers
    known = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in known else {"broadcast_buffers": False}
    built.wrapped = tuple(
        DistributedDataParallel(net, device_ids=ids, **no_sync) for net in (built.generator, built.discriminator)
    )
    d.modules = (built.generator, built.discriminator)


def attach(trainer: Trainer, d: Distributed, tracker: Any = None) -> None:
    """Shard the data, separate the ranks' random streams, and hand the trainer ``d`` (see ``step_end``)."""
    from ganlab.data import TensorData
    from ganlab.train.runtime import seed_everything

    b, cfg = trainer.b, trainer.b.config
    if isinstance(b.data, TensorData):
        trainer.batches = ShardedBatches(b.data, cfg.batch_size, cfg.seed, d.rank, d.world_size)
    else:
        trainer.batches = ShardedStreamingBatches(b.data, cfg.batch_size, cfg.seed, d.rank, d.world_size, b.device)
    if d.rank:
        # the networks were built from the run's seed on every rank; from here on noise and dropout differ
        seed_everything(rank_seed(cfg.seed, d.rank), cfg.deterministic)
    trainer.dist = d
    trainer.stop = AgreedStop()
    global_batch = trainer.batches.batch_size * d.world_size
    trainer.ctx.extras["run_params"] = {"world_size": d.world_size, "backend": d.backend,
                                        "global_batch_size": global_batch}
    d.tracker = tracker
    if not d.sync_batchnorm:
        d.buffers = [buffer for net in d.modules for buffer in net.buffers() if buffer.is_floating_point()]


def check_resume(state: Mapping[str, Any] | None, d: Distributed | None, run_id: str | None) -> None:
    """Refuse a checkpoint written by a different number of processes."""
    if state is None:
        return
    saved, now = int(state.get("world_size", 1)), d.world_size if d is not None else 1
    if saved == now:
        return
    how = f"`ganlab resume {run_id or 'RUN_ID'}" + (f" --nproc {saved}`" if saved > 1 else "`, without torchrun")
    raise ConfigError(
        f"the checkpoint at step {state.get('step')} was written by {saved} process(es) and this job has {now}; "
        f"resume it with the same number ({how}): a different number would change the global batch and "
        f"the ranks' random streams"
    )


def restore(trainer: Trainer, d: Distributed | None, state: Mapping[str, Any]) -> None:
    """After ``Trainer.load_state_dict``: each rank takes back its own RNG state."""
    from ganlab.train.runtime import set_rng_state

    rank_states = state.get("rank_rng")
    if d is not None and rank_states:
        set_rng_state(rank_states[d.rank])
    if d is not None and "drawn" not in state.get("data_order", {}):
        # a one-process checkpoint resumed by a one-process torchrun job: it did not count, but drew this many
        cfg = trainer.b.config
        trainer.batches.drawn = int(state["step"]) * cfg.d_steps * trainer.batches.batch_size


def teardown(d: Distributed | None, failed: bool = False) -> None:
    """Leave the process group; after a failure, without waiting for ranks that may be gone."""
    if d is None:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if not failed and d.pending is not None:
        with contextlib.suppress(Exception):
            d.pending.wait()
    with contextlib.suppress(Exception):  # leaving must not hide the error that ended the run
        if failed and d.backend == "nccl":
            dist.distributed_c10d._abort_process_group()  # a dead peer would make a clean exit hang
        else:
            dist.destroy_process_group()


def explain(exc: BaseException, d: Distributed | None) -> BaseException:
    """A collective that failed because another rank went away, as one line for people."""
    if d is None or isinstance(exc, GanlabError):
        return exc
    import torch.distributed as dist

    text = str(exc)
    collective = isinstance(exc, dist.DistError) or any(
        marker in text for marker in ("Connection closed by peer", "Connection reset by peer")  # gloo's words
    )
    if not collective:
        return exc
    return PeerFailed(
        f"rank {d.rank} of {d.world_size}: a collective with the other ranks failed, usually because one of them "
        f"stopped (its error is in its own output); {one_line(exc)[:300]}"
    )


# ---- drawing each rank's shard -----------------------------------------------------

class ShardedBatches:
    """Rank ``rank``'s shard of every global batch, from a dataset held in memory.

    Every rank holds the same permutation (one generator, the run's seed) and
    takes its own slice of each global batch of ``batch_size × world_size``
    samples, as torch's DistributedSampler does: within an epoch no sample is
    drawn twice, on any rank. With one process it draws exactly what
    :class:`ganlab.data.ResidentBatches` draws. ``drawn`` counts this rank's samples.
    """

    def __init__(self, data: TensorData, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        import torch

        if batch_size * world_size > len(data):
            raise ConfigError(
                f"the global batch, batch_size {batch_size} × {world_size} processes = {batch_size * world_size}, "
                f"exceeds the dataset's {len(data)} samples; lower batch_size"
            )
        self.data = data
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.global_batch = batch_size * world_size
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self._perm = self._new_perm()
        self._pos = 0
        self.drawn = 0

    def _new_perm(self) -> torch.Tensor:
        import torch

        return torch.randperm(len(self.data), generator=self.generator).to(self.data.x.device)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._pos + self.global_batch > len(self.data):
            self._perm = self._new_perm()
            self._pos = 0
        start = self._pos + self.rank * self.batch_size
        idx = self._perm[start : start + self.batch_size]
        self._pos += self.global_batch
        self.drawn += self.batch_size
        y = self.data.y[idx] if self.data.y is not None else None
        return self.data.take(idx), y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self._perm.cpu(), "pos": self._pos,
                "drawn": self.drawn}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._perm = state["perm"].to(self.data.x.device)
        self._pos = int(state["pos"])
        self.drawn = int(state.get("drawn", 0))


class ShardedStreamingBatches:
    """Rank ``rank``'s shard of data streamed from disk: a DataLoader over a DistributedSampler.

    As for one process (``ganlab.data.StreamingBatches``), a resumed run restarts
    its epoch rather than its exact position in it.
    """

    def __init__(self, data: StreamingData, batch_size: int, seed: int, rank: int, world_size: int,
                 device: Any) -> None:
        from torch.utils.data import DataLoader, DistributedSampler

        from ganlab.data import ignore_sigint

        if len(data) // world_size < batch_size:
            raise ConfigError(
                f"each of the {world_size} processes gets {len(data) // world_size} of the dataset's {len(data)} "
                f"samples, fewer than batch_size {batch_size}; lower batch_size"
            )
        self.device = device
        self.batch_size = batch_size
        self.sampler = DistributedSampler(data.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.loader = DataLoader(
            data.dataset, batch_size=batch_size, sampler=self.sampler, drop_last=True,
            num_workers=data.num_workers, pin_memory=getattr(device, "type", str(device)) == "cuda",
            persistent_workers=data.num_workers > 0, worker_init_fn=ignore_sigint,
        )
        self.epoch = 0
        self.drawn = 0
        self._iter: Iterator[Any] = self._start(0)

    def _start(self, epoch: int) -> Iterator[Any]:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        return iter(self.loader)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            x, y = next(self._iter)
        except StopIteration:
            self._iter = self._start(self.epoch + 1)
            x, y = next(self._iter)
        self.drawn += len(x)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "drawn": self.drawn}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.drawn = int(state.get("drawn", 0))
        self._iter = self._start(int(state.get("epoch", 0)))


# ---- stopping together -------------------------------------------------------------

class AgreedStop(GracefulStop):
    """SIGINT/SIGTERM as in one process, except that the engine sees ``signum`` only once every rank has agreed.

    A signal is noted in ``requested``; ``Distributed.agree_on_stop`` turns it into
    ``signum`` on all ranks at the same step. A rank that acted on its own signal
    would stop while the others wait in their next all-reduce. torchrun also
    sends SIGTERM to the survivors when a rank fails: the agreement then fails
    on the dead peer and the run ends FAILED rather than KILLED.
    """

    def __init__(self) -> None:
        super().__init__()
        self.requested: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        if self.requested is not None:  # as GracefulStop: a second SIGINT aborts, more SIGTERMs change nothing
            if signum == signal.SIGINT:
                raise Aborted
            return
        self.requested = signum
        if is_main_process():  # os.write, not print: a handler may interrupt a print
            name = signal.Signals(signum).name
            with contextlib.suppress(OSError):
                os.write(2, f"ganlab: {name} received; all ranks stop after the next step, rank 0 writes a "
                            f"checkpoint\n".encode())


# ---- launching on one machine --------------------------------------------------------

def without_nproc(argv: list[str]) -> list[str]:
    """A ganlab command line minus its ``--nproc N``, for the processes torchrun starts."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def check_nproc(nproc: int) -> None:
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, not {nproc}")


def preflight(config: RunConfig, nproc: int) -> None:
    """The refusals every rank would make, made once before anything starts."""
    check_nproc(nproc)
    if launched_by_torchrun():
        raise ConfigError("--nproc starts torchrun itself; inside a torchrun job leave it out")
    if config.run_dir:
        raise ConfigError("run_dir keeps one process's files; a distributed run (--nproc) needs tracking")
    # the highest local rank is the one that might find no GPU; "cpu" needs no torch import to check
    kind = "cpu" if config.device == "cpu" else training_device(config.device, nproc - 1, nproc).type
    check_sync_batchnorm(config, kind)


def check_resume_processes(run_id: str, tracking_uri: str | None, nproc: int) -> None:
    """Refuse ``resume --nproc N`` of a run that another number of processes trained, before launching."""
    from ganlab.record.store import find_run, tracking_uri as resolve_uri

    check_nproc(nproc)
    if launched_by_torchrun():
        raise ConfigError("--nproc starts torchrun itself; inside a torchrun job leave it out")
    run = find_run(run_id, resolve_uri(tracking_uri))
    saved = int(run.data.params.get("world_size", "1"))
    if saved != nproc:
        how = f"--nproc {saved}" if saved > 1 else "without --nproc"
        raise ConfigError(
            f"run '{run_id}' was trained by {saved} process(es); resume it with the same number ({how}): "
            f"a different number would change the global batch and the ranks' random streams"
        )


def launch(nproc: int, argv: list[str]) -> int:
    """Run the ganlab command line ``argv`` in ``nproc`` processes on this machine; torchrun's exit code.

    torchrun runs in its own session and this process forwards SIGINT,
    SIGTERM and SIGHUP to it once: a Ctrl-C in the terminal would otherwise reach torchrun
    directly and again through us, and a second SIGINT aborts a graceful stop.
    torchrun exits 1 when any rank fails, whatever that rank's own code.
    """
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "ganlab", *argv]
    env = dict(os.environ)
    # torchrun would set 1 with a warning; share this machine's cores between the ranks instead
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    try:
        for sig in HANDLED:
            with contextlib.suppress(ValueError):  # not the main thread: leave handlers alone
                previous[sig] = signal.signal(sig, forward)
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:  # we are being torn down ourselves: do not orphan the ranks
            proc.terminate()
    return code if code >= 0 else 128 - code

