"""Output mappings of the text generators: per-position scores → distributions over the vocabulary.

Why the choice matters. Real text reaches the discriminator as exact one-hot
vectors, one per position. A softmax generator can never emit one: every entry of
a softmax is strictly positive, so D can tell real from fake by that alone (e.g.
by the sum of squares of each position's vector, or by any non-zero weight on a
token that is absent from the real sample), whatever the text says. Gulrajani et
al. 2017 (WGAN-GP, "Improved Training of Wasserstein GANs", section 5.3) train
their character-level model in exactly this setting, a softmax generator against
one-hot data. Two families of outputs close the gap:

* ``sparsemax`` (Martins & Astudillo 2016) and ``entmax`` (α-entmax, Peters,
  Niculae & Martins 2019, 1 < α ≤ 2) are sparse: where one score leads the others
  by a margin the output is an *exact* one-hot, and otherwise a mixture over a
  few tokens with exact zeros elsewhere. They are differentiable almost
  everywhere (the gradient is zero off the support), so G still gets an exact
  gradient, with no sampling.
* ``gumbel``: the Gumbel-softmax with the straight-through estimator (Jang, Gu &
  Poole 2017; Kusner & Hernández-Lobato 2016). The forward value is an exact
  one-hot *sample* from ``softmax(scores)``; the backward pass uses the gradient of
  the relaxed sample ``softmax((scores + g) / tau)``, a biased estimator of the
  gradient of the discrete sample (the bias shrinks and the variance grows as
  ``tau`` → 0).

``softmax``, ``sparsemax`` and ``entmax`` reuse the discriminator heads' mappings
(:mod:`ganlab_plugins.heads.torch_heads`: ``probs`` in float32, autocast off), so
a head and a generator output with the same name compute the same function.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.errors import ComponentError

#: The values of the text architectures' ``output`` option.
OUTPUTS: tuple[str, ...] = ("softmax", "sparsemax", "entmax", "gumbel")


def check_output_options(arch: str, output: str, alpha: float, tau: float) -> None:
    """Refuse, in one line each, an unknown mapping, an α outside (1, 2] or a τ ≤ 0."""
    if output not in OUTPUTS:
        raise ComponentError(f"architecture '{arch}': unknown output {output!r}; choose one of {', '.join(OUTPUTS)}")
    if not 1.0 < float(alpha) <= 2.0:
        raise ComponentError(f"architecture '{arch}': alpha must satisfy 1 < alpha <= 2, not {alpha} "
                             "(alpha -> 1 is output=softmax; alpha = 2 is output=sparsemax)")
    if not float(tau) > 0.0:
        raise ComponentError(f"architecture '{arch}': tau must be > 0, not {tau}")


class HeadOutput(nn.Module):
    """A discriminator head's probability map applied at every position: (..., V) → (..., V) float32."""

    def __init__(self, name: str, alpha: float = 1.5) -> None:
        super().__init__()
        from ganlab_plugins.heads.torch_heads import EntmaxHead, SoftmaxHead, SparsemaxHead

        self.name = name
        self.head = {"softmax": SoftmaxHead, "sparsemax": SparsemaxHead}[name]() if name != "entmax" \
            else EntmaxHead(alpha)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        return self.head.probs(logits.reshape(-1, vocab)).reshape(logits.shape)

    def extra_repr(self) -> str:
        return repr(self.head)


class GumbelStraightThrough(nn.Module):
    """Straight-through Gumbel-softmax: an exact one-hot sample forward, the relaxed sample's gradient backward.

    Written out rather than ``F.gumbel_softmax(hard=True)``, whose forward value
    ``(hard − soft) + soft`` can round the chosen entry to 1 ± 1 ulp; here it is
    ``hard + (soft − soft)``, so exactly ``hard``. Samples in train and eval mode
    alike (G is a sampler); the noise comes from torch's generator, so
    ``torch.manual_seed`` fixes it.
    """

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__()
        self.tau = float(tau)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            # Gumbel(0, 1) noise as -log(Exp(1)), as torch's gumbel_softmax draws it
            gumbels = -torch.empty_like(logits).exponential_().log()
            soft = torch.softmax((logits + gumbels) / self.tau, dim=-1)
            index = soft.detach().argmax(dim=-1, keepdim=True)
            hard = torch.zeros_like(soft).scatter_(-1, index, 1.0)
            return hard + (soft - soft.detach())

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


def make_output(name: str, alpha: float = 1.5, tau: float = 1.0) -> nn.Module:
    """The output mapping ``name`` (one of :data:`OUTPUTS`) as a module on (..., V) scores."""
    check_output_options("text", name, alpha, tau)
    if name == "gumbel":
        return GumbelStraightThrough(tau)
    return HeadOutput(name, alpha)
