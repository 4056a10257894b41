"""N copies of one network as stacked tensors, called as one vectorised function.

``torch.func.stack_module_state`` stacks the replicas' parameters and buffers
along a new first dimension; ``vmap`` over ``functional_call`` then runs all
replicas in one call, so a Linear layer becomes one batched matrix product and
Adam updates a handful of large tensors instead of N sets of small ones.

Each replica keeps its own ordinary ``nn.Module`` (the one its architecture
built) whose parameters and buffers are re-pointed at its slice of the
stacked tensors: sampling, evaluation, checkpoints and the MLflow record use
those modules exactly as for a single run, and always see the live weights.

Randomness inside a forward pass: ``nn.Dropout`` draws its masks from the
replica's own generator, in the order a single run draws them from the global
one, so replica i reproduces the single run with seed i (``ReplayDropout``).
Any other random operation in a network draws from the global generator
(``vmap(randomness="different")``): replicas stay independent, but no longer
follow the single runs' trajectories.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def stack_replicas(modules: Sequence[nn.Module]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``stack_module_state`` of the replicas, converted to the default (contiguous) memory format first.

    A single run on CUDA keeps convolutional networks channels_last (``ganlab.train.build``),
    and stacking channels_last weights gives tensors whose every slice is channels_last. Inside
    ``vmap`` CUDA's BatchNorm and convolution then ask the batched tensor whether it is
    channels_last-contiguous, which functorch does not implement ("NYI: querying is_contiguous
    inside of vmap"; seen on an H100 with torch 2.11). Contiguous stacks avoid the question.
    """
    for module in modules:
        module.to(memory_format=torch.contiguous_format)
    return stack_module_state(list(modules))


class ReplicaRandomness:
    """The replicas' own generators, and the dropout masks of the vectorised call under way.

    Random operations inside ``vmap`` cannot draw from a chosen generator, so
    the masks are drawn before the call, replica by replica, in the order the
    network's forward uses them (found by ``StackedNetwork.plan``), and go
    into the call as batched inputs: replica i sees its own.
    """

    def __init__(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)
        self._local = threading.local()

    def normal(self, rows: int, columns: int, device: Any) -> torch.Tensor:
        """(N * rows, columns) standard normal noise, replica i's rows from its own generator."""
        return torch.cat([torch.randn(rows, columns, generator=g, device=device) for g in self.generators])

    def bernoulli_masks(self, shape: Sequence[int], keep: float, dtype: torch.dtype, device: Any) -> torch.Tensor:
        """(N, *shape) dropout masks scaled by 1/keep, drawn as torch's CPU dropout draws them."""
        masks = [torch.empty(tuple(shape), dtype=dtype, device=device).bernoulli_(keep, generator=g)
                 for g in self.generators]
        return torch.stack(masks).div_(keep)

    # ---- within one vectorised call ---------------------------------------------
    def recording(self, calls: list[tuple[tuple[int, ...], torch.dtype, float]]) -> _Using:
        return _Using(self, "record", calls)

    def replaying(self, masks: list[torch.Tensor]) -> _Using:
        return _Using(self, "replay", list(reversed(masks)))

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        mode, items = getattr(self._local, "using", (None, None))
        if mode == "record":
            items.append((tuple(x.shape), x.dtype, p))
            return x
        if mode == "replay":
            return x * items.pop().to(x.dtype)
        raise RuntimeError("a replica's dropout ran outside a population's vectorised call")


class _Using:
    def __init__(self, randomness: ReplicaRandomness, mode: str, items: list[Any]) -> None:
        self.randomness, self.state = randomness, (mode, items)

    def __enter__(self) -> None:
        self.randomness._local.using = self.state

    def __exit__(self, *exc: Any) -> None:
        self.randomness._local.using = (None, None)


class ReplayDropout(nn.Module):
    """``nn.Dropout`` whose mask for replica i comes from replica i's generator.

    torch's dropout on the CPU draws ``empty_like(x).bernoulli_(1 - p)``,
    divides it by ``1 - p`` and multiplies; the population draws the same mask
    from the replica's generator (``ReplicaRandomness.bernoulli_masks``), so
    each replica replays its single run's masks.
    """

    def __init__(self, p: float, randomness: ReplicaRandomness) -> None:
        super().__init__()
        self.p = p
        self.randomness = randomness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        return self.randomness.dropout(x, self.p)


def _replay_dropout(template: nn.Module, randomness: ReplicaRandomness) -> None:
    for name, child in list(template.named_children()):
        if type(child) is nn.Dropout:
            setattr(template, name, ReplayDropout(child.p, randomness))
        else:
            _replay_dropout(child, randomness)


class StackedNetwork:
    """The replicas of one network (all G's or all D's) as one vectorised callable.

    ``params`` are leaf tensors of shape (N, ...) that an optimiser updates in
    place; ``modules[i]`` is replica i's own module, viewing slice i.
    """

    def __init__(self, modules: Sequence[nn.Module], randomness: ReplicaRandomness) -> None:
        self.modules = list(modules)
        self.randomness = randomness
        params, buffers = stack_replicas(self.modules)
        self.params: dict[str, torch.Tensor] = params
        self.buffers: dict[str, torch.Tensor] = buffers
        # the template's own tensors are never used: functional_call substitutes the stacked ones
        template = copy.deepcopy(self.modules[0]).to("meta")
        self.device = next(iter(params.values())).device
        _replay_dropout(template, randomness)
        self.template = template
        self._call = vmap(self._one, randomness="different")
        self._plans: dict[Any, list[tuple[tuple[int, ...], torch.dtype, float]]] = {}
        for i, module in enumerate(self.modules):
            view_slice(module, self.params, self.buffers, i)

    def __len__(self) -> int:
        return len(self.modules)

    def _one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], masks: list[torch.Tensor],
             *inputs: torch.Tensor) -> torch.Tensor:
        with self.randomness.replaying(masks):
            return functional_call(self.template, (params, buffers), inputs)

    def __call__(self, x: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        """All replicas on their rows of ``x`` (and of a conditional network's labels): N groups of rows one
        after another, replica i's the i-th; the outputs are rows in the same order."""
        inputs = [t.unflatten(0, (len(self), -1)) for t in (x, *labels)]
        masks = [self.randomness.bernoulli_masks(shape, 1.0 - p, dtype, x.device)
                 for shape, dtype, p in self.plan(*inputs)]
        return self._call(self.params, self.buffers, masks, *inputs).flatten(0, 1)

    def plan(self, x: torch.Tensor, *labels: torch.Tensor) -> list[tuple[tuple[int, ...], torch.dtype, float]]:
        """The dropout calls one replica's forward makes on inputs like ``x[0]``: shape, dtype, p, in order.

        Found once per input shape by a forward of a copy of replica 0 (nothing
        of the population changes, no replica's generator is drawn from).
        """
        key = (tuple(x.shape[1:]), x.dtype, self.template.training, torch.is_autocast_enabled(x.device.type))
        if key not in self._plans:
            calls: list[tuple[tuple[int, ...], torch.dtype, float]] = []
            with torch.no_grad(), self.randomness.recording(calls):
                params = {k: v[0].detach().clone() for k, v in self.params.items()}
                buffers = {k: v[0].clone() for k, v in self.buffers.items()}
                functional_call(self.template, (params, buffers), (x[0].detach(), *(y[0] for y in labels)))
            self._plans[key] = calls
        return self._plans[key]

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)

    @torch.no_grad()
    def finite(self) -> torch.Tensor:
        """(N,) bool: every parameter of replica i is finite."""
        ok = torch.ones(len(self), dtype=torch.bool, device=self.device)
        for tensor in self.params.values():
            ok &= torch.isfinite(tensor).reshape(len(self), -1).all(dim=1)
        return ok


def view_slice(module: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
               index: int) -> None:
    """Point ``module``'s parameters and buffers at slice ``index`` of the stacked tensors.

    The module then reads and writes the population's storage: an optimiser
    step on the stack is visible to it, and ``load_state_dict`` on it writes
    into the stack. Its ``state_dict`` returns copies, so that a checkpoint of
    one replica holds that replica alone (torch.save of a view saves the whole storage).
    """
    for name, stacked in params.items():
        owner, leaf = _owner(module, name)
        owner._parameters[leaf] = nn.Parameter(stacked.detach()[index], requires_grad=False)
    for name, stacked in buffers.items():
        owner, leaf = _owner(module, name)
        owner._buffers[leaf] = stacked[index]
    module._register_state_dict_hook(_copies)


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (module.get_submodule(path) if path else module), leaf


def _copies(module: nn.Module, state: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            state[key] = value.detach().clone()
