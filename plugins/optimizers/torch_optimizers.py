"""torch's optimisers with the run's shared settings.

Adam and AdamW are fused where torch has the kernel for the parameters' device (CUDA and, since torch
2.4, the CPU): all parameters updated in one pass instead of about ten tensor operations per
parameter (its effect on a step: docs/benchmarks.md). Each is elementwise, so a population stacks it.
"""

from __future__ import annotations

from typing import Any

import torch


class _TorchOptimizer:
    elementwise = True
    fusable = False

    def make(self, params: list[Any], lr: float, config: Any, **fused: Any) -> torch.optim.Optimizer:
        raise NotImplementedError  # each optimiser below

    def build(self, params: Any, lr: float, config: Any) -> torch.optim.Optimizer:
        params = list(params)
        if self.fusable and params and params[0].device.type in ("cuda", "cpu"):
            try:
                return self.make(params, lr, config, fused=True)
            except RuntimeError:  # no fused kernel for this device in this torch
                pass
        return self.make(params, lr, config)


class Adam(_TorchOptimizer):
    fusable = True

    def make(self, params: list[Any], lr: float, config: Any, **fused: Any) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay,
                                **fused)

    def state_copies(self, config: Any) -> int:
        return 2


class AdamW(Adam):
    def make(self, params: list[Any], lr: float, config: Any, **fused: Any) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay,
                                 **fused)


class SGD(_TorchOptimizer):
    def make(self, params: list[Any], lr: float, config: Any) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)

    def state_copies(self, config: Any) -> int:
        return int(config.momentum > 0)


class RMSprop(_TorchOptimizer):
    def make(self, params: list[Any], lr: float, config: Any) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)

    def state_copies(self, config: Any) -> int:
        return 1 + int(config.momentum > 0)
