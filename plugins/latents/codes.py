"""InfoGAN's latent as torch code: noise plus codes (the plain Gaussian is the engine's, ganlab.train.noise).

InfoGAN's layout of a latent vector of size D with categorical codes of sizes k_1..k_m and c
continuous codes: ``[noise (D - sum k - c) | one-hot(k_1) | ... | one-hot(k_m) | uniform(c)]``.
The codes are part of the vector G receives, so anything holding a noise batch (the step object,
a checkpoint, ``ganlab sample``) can read them back with :meth:`InfoGANCodes.codes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ganlab.errors import ComponentError


@dataclass(frozen=True)
class Codes:
    """The structured codes of a batch: one (B,) index tensor per categorical code, and (B, c) continuous."""

    categorical: list[torch.Tensor]
    continuous: torch.Tensor


class InfoGANCodes:
    """Noise, then one-hot categorical codes, then continuous codes uniform on [-1, 1]."""

    def __init__(self, categorical: tuple[int, ...] = (10,), continuous: int = 2) -> None:
        self.categorical = tuple(int(k) for k in categorical)
        self.continuous = int(continuous)
        # the sample grid: one row per value of the first categorical code (else 8 continuous values)
        self.sweep_rows = self.categorical[0] if self.categorical else 8

    @property
    def code_dims(self) -> int:
        return sum(self.categorical) + self.continuous

    def check(self, latent_dim: int) -> None:
        if latent_dim <= self.code_dims:
            raise ComponentError(
                f"latent 'infogan' needs latent_dim above its {self.code_dims} code dimensions "
                f"({'+'.join(map(str, self.categorical))} categorical + {self.continuous} continuous) to leave room "
                f"for noise; latent_dim is {latent_dim}")

    def sample(self, n: int, latent_dim: int, device: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        noise_dims = latent_dim - self.code_dims
        where = {} if generator is not None else {"device": device}
        noise = torch.randn(n, noise_dims, generator=generator, **where)
        cats = [torch.randint(k, (n,), generator=generator, **where) for k in self.categorical]
        cont = torch.rand(n, self.continuous, generator=generator, **where) * 2 - 1
        return self.assemble(noise, cats, cont).to(device)

    def assemble(self, noise: torch.Tensor, categorical: list[torch.Tensor], continuous: torch.Tensor) -> torch.Tensor:
        """The latent vectors of given noise and codes."""
        blocks = [noise] + [torch.nn.functional.one_hot(c.long(), k).to(noise.dtype)
                            for c, k in zip(categorical, self.categorical)]
        return torch.cat([*blocks, continuous.to(noise.dtype)], dim=1)

    def codes(self, latent: torch.Tensor) -> Codes:
        """The codes a batch of latent vectors holds (the inverse of ``assemble`` on the code blocks)."""
        start = latent.shape[1] - self.code_dims
        categorical = []
        for k in self.categorical:
            categorical.append(latent[:, start : start + k].argmax(dim=1))
            start += k
        return Codes(categorical, latent[:, start:])

    def sweep(self, rows: int, columns: int, latent_dim: int, generator: torch.Generator) -> torch.Tensor:
        """A grid's latents, row-major: column j keeps one draw of noise and the other codes, and row r sets
        the first categorical code to r (or, without one, the first continuous code to the r-th of ``rows``
        points evenly spaced on [-1, 1]): reading down a column shows what that code controls."""
        base = self.sample(columns, latent_dim, "cpu", generator)
        grid = base.repeat(rows, 1)
        noise_dims = latent_dim - self.code_dims
        if self.categorical:
            k = self.categorical[0]
            values = torch.arange(rows) % k
            grid[:, noise_dims : noise_dims + k] = torch.nn.functional.one_hot(values, k).repeat_interleave(columns, 0).to(grid.dtype)
        elif self.continuous:
            grid[:, noise_dims] = torch.linspace(-1, 1, rows).repeat_interleave(columns)
        return grid

    def __repr__(self) -> str:
        return f"InfoGANCodes(categorical={self.categorical}, continuous={self.continuous})"
