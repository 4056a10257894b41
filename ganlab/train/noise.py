"""The engine's own noise: z ~ N(0, I), what G is fed unless a run picks another latent.

It is registered as the ``gaussian`` latent by the built-in latents plugin (so ``--latent gaussian``
and ``ganlab components latent`` show it), and the engine uses it directly when no plugin registers
that name: a plugin manager without the built-ins (``ganlab.testing.make_plugin_manager(builtins=False)``)
trains as it did before latents were components.
"""

from __future__ import annotations

from typing import Any

import torch


class StandardNormal:
    """z ~ N(0, I), drawn exactly as the engine drew it before latents were components."""

    #: a population's stacked replicas draw this noise themselves, each from its own stream
    standard_normal = True

    def sample(self, n: int, latent_dim: int, device: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is None:
            return torch.randn(n, latent_dim, device=device)
        return torch.randn(n, latent_dim, generator=generator).to(device)

    def __repr__(self) -> str:
        return "StandardNormal()"
