"""Test plugin: an architecture whose generator runs out of memory at a chosen training step.

``--plugin tests/plugins_for_tests/oom_at_step.py --arch oom-at-step --set arch.step=3``
trains a tiny MLP until step 3, whose first generator call in training mode
asks torch's allocator for 2**60 bytes: more than any machine's address
space, so the real allocator fails (no mock) with its own out-of-memory error
("DefaultCPUAllocator: can't allocate memory" on a CPU, torch.OutOfMemoryError
on CUDA). Forward passes in evaluation mode (ganlab's memory estimate before
training) never allocate it.
"""

from __future__ import annotations

import math
from typing import Any

from ganlab import Option, hookimpl

_RUN: dict[str, Any] = {}
IMPOSSIBLE_BYTES = 2**60


def _generator(latent_dim: int, data_shape: tuple[int, ...], step: int) -> Any:
    import torch
    from torch import nn

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(nn.Linear(latent_dim, math.prod(data_shape)), nn.Tanh(),
                                      nn.Unflatten(1, data_shape))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            ctx = _RUN.get("ctx")
            if self.training and ctx is not None and ctx.step + 1 == step:
                torch.empty(IMPOSSIBLE_BYTES, dtype=torch.uint8, device=z.device)
            return self.main(z)

    return Generator()


class OomAtStep:
    def __init__(self, step: int) -> None:
        self.step = step

    def build(self, data_shape: Any, latent_dim: int, num_logits: int) -> Any:
        from torch import nn

        shape = tuple(data_shape)
        discriminator = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), num_logits))
        return _generator(latent_dim, shape, self.step), discriminator


@hookimpl
def register_architectures(register: Any) -> None:
    register("oom-at-step", OomAtStep, summary="tiny MLP whose generator runs out of memory at a step (tests only)",
             options={"step": Option(int, 3, "the training step that runs out of memory", min=1)})


@hookimpl
def on_run_start(ctx: Any) -> None:
    _RUN["ctx"] = ctx
