"""The ``margin-hinge`` GAN objective (torch code).

Named apart from ganlab's built-in ``hinge`` (which plays the game on the sigmoid
head's score and refuses two-score heads): component names are one namespace, and a
plugin's name that a later ganlab release takes for a built-in would stop every run.

The hinge game (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, SN-GAN)
is usually written on a raw critic score. To work with *every* head it is
written here on the head's margin

    t(z) = fake_loss(z) − real_loss(z)

which is the log-odds s for the sigmoid head, s/T for temperature-sigmoid,
z_real − z_fake for two-score softmax, sparsemax and entmax (any loss of the
form Ω*(z) − z_y), and Ω*(z_1..K) − z_fake for a K+1-class head. Then

    L_D = E_x relu(m − t(x)) + E_z relu(m + t(G(z))),   L_G = −E_z t(G(z)).

A consequence worth knowing when comparing heads: with two scores, softmax,
sparsemax and entmax all give the same margin z_real − z_fake, so under the
hinge game they train identically (same seed, same losses); only their
probabilities, and so the head diagnostics, differ. Head comparisons belong
to the objectives that use the heads' own losses (nonsaturating, minimax).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def margin(head: object, logits: torch.Tensor) -> torch.Tensor:
    """(B,) the head's real-vs-fake margin, positive when D says "real"."""
    return head.fake_loss(logits) - head.real_loss(logits)  # type: ignore[attr-defined]


class Hinge:
    """Hinge loss for D, the critic-style linear loss for G, written on the step object (hookspec 2.0).

    Reduced with ``step.mean``, so a population stacks it (``vectorisable``).
    """

    vectorisable = True

    def __init__(self, margin: float = 1.0) -> None:
        self.margin = float(margin)

    def discriminator_loss(self, step: Any) -> torch.Tensor:
        real, fake = margin(step.head, step.scores(step.real)), margin(step.head, step.scores(step.fake))
        return step.mean(F.relu(self.margin - real)) + step.mean(F.relu(self.margin + fake))

    def generator_loss(self, step: Any) -> torch.Tensor:
        return -step.mean(margin(step.head, step.scores(step.fake)))

    def __repr__(self) -> str:
        return f"Hinge(margin={self.margin})"
