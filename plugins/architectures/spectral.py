"""Spectral normalisation of a discriminator's layers (Miyato, Kataoka, Koyama and Yoshida 2018).

Each normalised layer uses ``W / σ(W)``, σ(W) the largest singular value of W reshaped to a
(out, in·k·k) matrix, estimated by power iteration: one iteration per forward in training mode,
on vectors u, v kept from the previous call (the paper's Algorithm 1, as in its Chainer code).
In eval mode u and v stay as they are, so scoring samples for a metric changes no state.

It is written here rather than taken from ``torch.nn.utils.parametrizations.spectral_norm``
because that one updates u and v with ``F.normalize(..., out=u)``, and ``torch.func.vmap`` has
no batching rule for ``out=`` operations: a population (``--seeds``), which stacks its
replicas' networks under ``vmap``, could not train it. This parametrization computes the
same function (``tests/test_architectures_resnet.py`` checks it against torch's to float
rounding), initialises u and v the way torch's does (a normal draw, normalised, then 15 power
iterations), and keeps them under the same state-dict names
(``<layer>.parametrizations.weight.original``, ``…weight.0._u``, ``…weight.0._v``): they are
buffers, so checkpoints carry them and a resumed run continues the same iteration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

#: power iterations drawn at registration, so that σ is accurate from the first step (as torch's)
WARM_UP_ITERATIONS = 15
#: the layer types whose weight a spectrally normalised D normalises
NORMALISED = (nn.Conv2d, nn.Linear, nn.Embedding)


class SpectralNorm(nn.Module):
    """The parametrization ``W -> W / σ(W)`` of one weight (dimension 0 = the output rows)."""

    def __init__(self, weight: torch.Tensor, iterations: int = 1, eps: float = 1e-12) -> None:
        super().__init__()
        if weight.ndim < 2:
            raise ValueError(f"spectral normalisation needs a weight with at least 2 dimensions, not {weight.ndim}")
        self.iterations, self.eps = iterations, eps
        matrix = weight.detach().flatten(1)
        u = matrix.new_empty(matrix.shape[0]).normal_(0, 1)
        v = matrix.new_empty(matrix.shape[1]).normal_(0, 1)
        self.register_buffer("_u", F.normalize(u, dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(v, dim=0, eps=eps))
        self._power_iteration(matrix, WARM_UP_ITERATIONS)

    @torch.no_grad()
    def _power_iteration(self, matrix: torch.Tensor, iterations: int) -> None:
        # copy_ into the buffers (not out=): vmap batches an in-place copy into a stacked buffer
        for _ in range(iterations):
            self._u.copy_(F.normalize(torch.mv(matrix, self._v), dim=0, eps=self.eps))
            self._v.copy_(F.normalize(torch.mv(matrix.t(), self._u), dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self._power_iteration(matrix.detach(), self.iterations)
        # clones: u and v are updated in place by the next forward, and autograd (a gradient
        # penalty's second derivative included) must see the values this forward used
        u, v = self._u.clone(), self._v.clone()
        sigma = torch.dot(u, torch.mv(matrix, v))
        return weight / sigma


def spectral_norm(layer: nn.Module) -> nn.Module:
    """Normalise ``layer.weight`` spectrally, in place; returns the layer."""
    parametrize.register_parametrization(layer, "weight", SpectralNorm(layer.weight))
    return layer


def spectral_normalise(network: nn.Module) -> nn.Module:
    """Normalise every convolution, linear layer and embedding of ``network``, in place.

    Call it after the weights are initialised: the power iteration starts from them.
    """
    for module in list(network.modules()):
        if isinstance(module, NORMALISED) and not parametrize.is_parametrized(module, "weight"):
            spectral_norm(module)
    return network


def is_spectrally_normalised(layer: nn.Module) -> bool:
    """Whether ``layer.weight`` is parametrized by :class:`SpectralNorm`."""
    return parametrize.is_parametrized(layer, "weight") and any(
        isinstance(p, SpectralNorm) for p in layer.parametrizations["weight"])
