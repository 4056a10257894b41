"""Sampling the 2-D Gaussian mixtures, and their modes for the ``modes`` metric.

A sample's label is the index of the mode it was drawn from: exact, free, and
what the ``modes`` metric compares against. Those indices are a by-product of
the generative process, not annotations, so the dataset reports
``labelled = False`` while still giving ``y`` and ``num_classes``: components
that need a labelled dataset (e.g. semi-supervised objectives) should check
``labelled`` before treating modes as classes.

Mode i of the ring sits at angle 2πi/8 (i = 0..7; ``linspace(0, 2π, 8)``
would repeat the first mode and give 7). Grid modes are ordered row-major
over x then y.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from ganlab.data import DataRequest, TensorData
from ganlab.errors import GanlabError

#: name → sigma
SIGMAS = {"ring8": 0.01, "grid25": 0.05}


def mixture_modes(name: str) -> tuple[torch.Tensor, float]:
    """(means (K, 2) float32, sigma) of mixture ``name`` ('ring8' or 'grid25')."""
    if name == "ring8":
        angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
        means = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    elif name == "grid25":
        axis = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
        means = torch.cartesian_prod(axis, axis)
    else:
        raise GanlabError(f"unknown mixture '{name}' (valid: {', '.join(SIGMAS)})")
    return means.to(torch.float32), SIGMAS[name]


def sample_mixture(name: str, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples (n, 2) and their mode indices (n,): modes equally likely."""
    means, sigma = mixture_modes(name)
    modes = torch.randint(len(means), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator)
    return means[modes] + sigma * noise, modes


class Mixture:
    """The ``ring8`` / ``grid25`` dataset: a fixed pool of samples drawn with a seed."""

    cacheable = False  # drawing 50k points is faster than reading a cache file
    labelled = False  # mode indices, not annotations; see the module docstring

    def __init__(self, name: str, samples: int = 50_000, seed: int = -1) -> None:
        if name not in SIGMAS:
            raise GanlabError(f"unknown mixture '{name}' (valid: {', '.join(SIGMAS)})")
        self.name = name
        self.samples = samples
        self.seed = seed

    @property
    def sigma(self) -> float:
        return SIGMAS[self.name]

    def modes(self) -> tuple[torch.Tensor, float]:
        return mixture_modes(self.name)

    def load(self, request: DataRequest) -> TensorData:
        seed = request.seed if self.seed < 0 else self.seed
        generator = torch.Generator().manual_seed(seed)
        x, y = sample_mixture(self.name, self.samples, generator)
        means, sigma = mixture_modes(self.name)
        return TensorData(
            x=x, y=y, num_classes=len(means),
            source=f"synthetic: {len(means)} Gaussians, sigma {sigma}, seed {seed} (docs/heads.md, Evaluation protocols)",
            class_names=[f"mode {i}: ({m[0]:+.3f}, {m[1]:+.3f})" for i, m in enumerate(means.tolist())],
        )


#: the registered factories (see :mod:`ganlab_plugins.datasets`): one per mixture, its name bound
ring8 = partial(Mixture, "ring8")
grid25 = partial(Mixture, "grid25")
