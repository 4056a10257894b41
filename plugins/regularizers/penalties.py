"""The built-in regularisers (torch code); see :mod:`ganlab_plugins.regularizers` for their options.

Each penalty is written on the step object (``ganlab.train.step.Step``) and reduces
over the batch with ``step.mean``, so the same code gives one value per replica in a
population (hence ``vectorisable = True``). Gradients are taken of D's critic score,
never of a head's loss (``ganlab.train.step.critic_score`` says why).
"""

from __future__ import annotations

from typing import Any

import torch


class GradientPenalty:
    """``E (||grad_x C(x_hat)|| - center)^2`` with ``x_hat = e x + (1 - e) G(z)``, ``e ~ U(0, 1)`` per sample."""

    vectorisable = True

    def __init__(self, center: float = 1.0) -> None:
        self.center = float(center)

    def penalty(self, step: Any) -> torch.Tensor:
        real = step.real
        fake = step.fake.detach().to(real.dtype)
        e = step.uniform(real)
        between = e * real + (1 - e) * fake
        norm = step.input_gradient(between).norm(dim=-1)
        return step.mean((norm - self.center) ** 2)

    def __repr__(self) -> str:
        return f"GradientPenalty(center={self.center})"


class R1:
    """``1/2 E ||grad_x C(x)||^2`` on real samples; the weight is gamma."""

    vectorisable = True
    on = "real"

    def penalty(self, step: Any) -> torch.Tensor:
        # step.fake itself, not a detached copy: the step finds a conditional D's labels by identity
        # (the fakes' own), and input_gradient detaches after that
        x = step.real if self.on == "real" else step.fake
        return step.mean(0.5 * step.input_gradient(x).pow(2).sum(dim=-1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class R2(R1):
    """``1/2 E ||grad_x C(G(z))||^2`` on generated samples."""

    on = "fake"


class WeightClip:
    """Every weight of D clamped to [-clip, clip] after each D update (the original WGAN's Lipschitz bound)."""

    def __init__(self, clip: float = 0.01) -> None:
        self.clip = float(clip)

    def after_d_step(self, discriminator: torch.nn.Module) -> None:
        for parameter in discriminator.parameters():
            parameter.clamp_(-self.clip, self.clip)

    def __repr__(self) -> str:
        return f"WeightClip(clip={self.clip})"
