"""An exponential moving average (EMA) of the generator's weights.

A GAN's generator does not converge to a point: with a constant learning rate
it keeps circling the equilibrium, so a snapshot of its weights lands anywhere
on that orbit. Averaging the weights over the last few thousand steps (Yazıcı
et al. 2019, "The unusual effectiveness of averaging in GAN training") sits
near the orbit's centre. The average is never trained: it only replaces G
where G is used to produce samples (sample grids, evaluation, the exported
``generator.pt``), so training itself is unchanged by it.

The average starts as a copy of G; ``ema_start`` keeps it a plain copy for the
first steps, so the random initial weights do not linger in it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class GeneratorAverage:
    """The averaged copy of one generator, updated after each generator step."""

    def __init__(self, generator: nn.Module, decay: float, start: int) -> None:
        self.decay, self.start = decay, start
        self.module = copy.deepcopy(generator)
        self.module.requires_grad_(False)
        self._source = generator

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold G's weights after generator step ``step`` (1-based) into the average."""
        blend(list(self.module.parameters()), list(self._source.parameters()),
              list(self.module.buffers()), list(self._source.buffers()),
              0.0 if step <= self.start else self.decay)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)


@torch.no_grad()
def blend(averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor],
          averaged_buffers: Sequence[torch.Tensor], current_buffers: Sequence[torch.Tensor], decay: float) -> None:
    """``averaged = decay * averaged + (1 - decay) * current``, in one pass over the tensors.

    Buffers (BatchNorm's running statistics, counters) are copied, not averaged:
    they are already running averages, and a counter must stay an integer.
    """
    if averaged:
        if decay == 0.0:
            torch._foreach_copy_(list(averaged), list(current))
        else:
            torch._foreach_lerp_(list(averaged), list(current), 1.0 - decay)
    for mine, theirs in zip(averaged_buffers, current_buffers):
        mine.copy_(theirs)
