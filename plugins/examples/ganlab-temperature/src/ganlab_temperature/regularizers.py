"""Logit decay: a regulariser of D, written on ganlab's step object (docs/plugins.md, "Regularisers")."""

from __future__ import annotations

from typing import Any

import torch


class LogitDecay:
    """``E critic(x)^2 + E critic(G(z))^2``: keeps D's scores from drifting to large magnitudes.

    ``step.critic`` is D's scalar score (the sigmoid's s, a two-class head's margin); the penalty is
    reduced with ``step.mean``, so a population gets one value per replica, as declared.
    """

    vectorisable = True

    def __init__(self, fake: bool = True) -> None:
        self.fake = bool(fake)

    def penalty(self, step: Any) -> torch.Tensor:
        value = step.mean(step.critic(step.real) ** 2)
        if self.fake:
            value = value + step.mean(step.critic(step.fake) ** 2)
        return value
