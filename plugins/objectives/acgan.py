"""AC-GAN (Odena, Olah and Shlens 2017) on a head with K + 1 scores (torch code).

D emits scores for the K real classes and "fake" (the head's K + 1 map: softmax, sparsemax,
entmax). Its loss is the plain game, "real, whichever class" on real samples and "fake" on
generated ones, plus the auxiliary class loss on both: real samples' classes, and the classes
the generator was asked for. The generator plays the non-saturating game and adds the class
loss of its own samples for their requested class. The class loss is the head's own
``class_loss``, the Fenchel–Young loss of its map restricted to the K real classes
(``Ω*(z_1..K) − z_y``): cross-entropy for softmax, and for sparsemax and entmax their sparse
losses, which vanish once the requested class wins by a margin (docs/heads.md, "AC-GAN").

Written on the step object (``step.fake_labels`` are the requested classes), so it trains a
conditional generator of any architecture. D must not be given the labels (a projection D could
read the answer off its input): use ``arch.projection=false``.
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab.errors import ComponentError


class ACGAN:
    """``acgan``: the non-saturating game plus the auxiliary class loss of the head's K + 1 scores."""

    name = "acgan"
    #: the engine refuses an unconditional generator, and a D that is given the class it should predict
    #: (ganlab.train.build.check_conditioning)
    needs_conditional_generator = True
    predicts_classes = True
    #: per-sample class losses reduced with step.mean: a population stacks it
    vectorisable = True

    def __init__(self, class_weight: float = 1.0, fake_class_loss: bool = True) -> None:
        self.class_weight = float(class_weight)
        self.fake_class_loss = bool(fake_class_loss)

    def num_classes(self, data: Any) -> int:
        classes = int(getattr(data, "num_classes", 0) or 0)
        if classes < 2:
            raise ComponentError("loss 'acgan' classifies samples into the dataset's classes, but this dataset "
                                 "has no class labels; use a labelled dataset (e.g. digits, mnist, cifar10)")
        return classes

    def check(self, head_name: str, head: Any, data: Any) -> None:
        classes = self.num_classes(data)
        try:
            head.num_logits(classes)
        except ComponentError:
            raise ComponentError(
                f"loss 'acgan' classifies samples with a head's K+1 scores (K real classes and fake), which head "
                f"'{head_name}' does not have; use softmax, sparsemax or entmax (for a conditional sigmoid "
                "baseline: --loss nonsaturating with arch.conditional=true, a projection discriminator)") from None
        if not callable(getattr(head, "class_loss", None)):
            raise ComponentError(f"loss 'acgan' needs the head's class_loss(logits, labels); head '{head_name}' "
                                 "has none")

    def discriminator_loss(self, step: Any) -> dict[str, torch.Tensor]:
        head = step.head
        real, fake = step.scores(step.real), step.scores(step.fake)
        terms = {
            "adv": step.mean(head.real_loss(real)) + step.mean(head.fake_loss(fake)),
            "class_real": self.class_weight * step.mean(head.class_loss(real, step.real_labels)),
        }
        if self.fake_class_loss:
            terms["class_fake"] = self.class_weight * step.mean(head.class_loss(fake, step.fake_labels))
        return terms

    def generator_loss(self, step: Any) -> dict[str, torch.Tensor]:
        head = step.head
        fake = step.scores(step.fake)
        return {
            "adv": step.mean(head.real_loss(fake)),
            "class": self.class_weight * step.mean(head.class_loss(fake, step.fake_labels)),
        }

    def __repr__(self) -> str:
        return f"ACGAN(class_weight={self.class_weight}, fake_class_loss={self.fake_class_loss})"
