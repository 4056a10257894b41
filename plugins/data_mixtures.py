"""The 2-D Gaussian mixtures of the mode-collapse literature (``ring8``, ``grid25``).

Exactly SCIENCE.md §5: ring8 has 8 modes (cos 2πi/8, sin 2πi/8) with σ = 0.01;
grid25 has 25 modes {−4, −2, 0, 2, 4}² with σ = 0.05. Samples are not scaled.
The ``modes`` metric gets the means and σ from
``ganlab_plugins.data_mixtures_impl.mixture_modes(name)``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ganlab import Option, hookimpl

SUMMARIES = {
    "ring8": "2-D mixture of 8 Gaussians on the unit circle, sigma 0.01 (mode-collapse benchmark)",
    "grid25": "2-D mixture of 25 Gaussians on the grid {-4,-2,0,2,4}^2, sigma 0.05 (mode-collapse benchmark)",
}


def _make(name: str, samples: int, seed: int) -> Any:
    from ganlab_plugins.data_mixtures_impl import Mixture

    return Mixture(name, samples=samples, seed=seed)


@hookimpl
def register_datasets(register: Any) -> None:
    for name, summary in SUMMARIES.items():
        register(
            name,
            partial(_make, name),
            summary=summary,
            options={
                "samples": Option(int, 50_000, "size of the training pool drawn from the mixture", min=1),
                "seed": Option(int, -1, "seed of the pool (-1: the run's seed)", min=-1),
            },
        )
