"""The ``modes`` metric (torch code); registered in :mod:`ganlab_plugins.metrics`.

Definitions, for N generated samples and a mixture of K modes with means μ_k
and common standard deviation σ (both from
:func:`ganlab_plugins.datasets.mixtures.mixture_modes`, never copied here):

* nearest mode of x: argmin_k ‖x − μ_k‖₂ (ties: the lowest index);
* x is high quality (HQ) when ‖x − μ_nearest‖₂ ≤ ``hq_sigmas`` · σ (3σ);
  a non-finite sample is never HQ;
* c_k = number of HQ samples whose nearest mode is k; H = Σ_k c_k;
* ``modes.captured`` = #{k : c_k ≥ 1};
* ``modes.hq_percent`` = 100 · H / N;
* ``modes.kl_uniform`` = KL(p ‖ u) = Σ_k p_k log(K p_k) in nats, with
  p_k = c_k / H, u the uniform distribution over all K modes and 0 log 0 = 0.
  It lies in [0, log K]: 0 when HQ samples spread evenly over every mode,
  log K when they all sit on one mode. With no HQ sample at all (H = 0), p is
  undefined; the metric reports log K, the value of total collapse, so that the
  number stays finite, sortable and ordered the right way (no better than any
  run that produced HQ samples).
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab_plugins.datasets import MIXTURES
from ganlab_plugins.datasets.mixtures import mixture_modes
from ganlab_plugins.metrics.stats import kl_to_uniform


def mode_statistics(samples: torch.Tensor, means: torch.Tensor, sigma: float,
                    hq_sigmas: float = 3.0) -> dict[str, float]:
    """``modes.*`` for generated ``samples`` (N, 2) against mode ``means`` (K, 2)."""
    x = samples.detach().to("cpu", torch.float64).reshape(len(samples), -1)
    mu = means.detach().to("cpu", torch.float64)
    num_modes = len(mu)
    finite = torch.isfinite(x).all(dim=1)
    # non-finite rows would make cdist NaN; zero them and exclude them from HQ below
    dist = torch.cdist(torch.where(finite[:, None], x, torch.zeros_like(x)), mu)  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)
    hq = finite & (nearest_dist <= hq_sigmas * sigma)
    counts = torch.bincount(nearest[hq], minlength=num_modes).to(torch.float64)
    total_hq = float(counts.sum())
    return {
        "modes.captured": float((counts > 0).sum()),
        "modes.hq_percent": 100.0 * total_hq / max(len(x), 1),
        "modes.kl_uniform": kl_to_uniform(counts),
    }


class ModesMetric:
    """Modes captured, % HQ and KL to uniform on ``samples`` generated points."""

    def __init__(self, samples: int = 2500, hq_sigmas: float = 3.0) -> None:
        self.samples = int(samples)
        self.hq_sigmas = float(hq_sigmas)

    def applies_to(self, run: Any) -> bool:
        return run.config.name_of("dataset") in MIXTURES

    def evaluate(self, ctx: Any) -> dict[str, float]:
        means, sigma = mixture_modes(ctx.dataset_name)
        ctx.params.update({
            "modes.samples": self.samples,
            "modes.num_modes": len(means),
            "modes.sigma": sigma,
            "modes.hq_radius": f"{self.hq_sigmas:g} sigma = {self.hq_sigmas * sigma:g}",
        })
        return mode_statistics(ctx.generate(self.samples), means, sigma, self.hq_sigmas)
