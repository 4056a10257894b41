"""The ``margins`` metric (torch code, imported only when a run builds it): a number and a picture.

The head's margin t = fake_loss − real_loss (see :mod:`ganlab_temperature.objectives`; the log-odds
s/T for temperature-sigmoid) on a real and a generated batch. It logs ``margins.gap``, the mean
margin of the real batch minus that of the generated one, and returns the picture ``margins``: the
two margins' histograms, drawn by :func:`ganlab_temperature.figures.draw_margins` in the process
that writes the record (this module prepares the arrays; that one imports matplotlib).
"""

from __future__ import annotations

from typing import Any

from ganlab import Picture
from ganlab_temperature.objectives import margin


class MarginMetric:
    def __init__(self, samples: int = 512) -> None:
        self.samples = int(samples)

    def applies_to(self, run: Any) -> bool:
        return run.conditioning is None  # D scores a sample without its class

    def evaluate(self, ctx: Any) -> dict[str, Any]:
        real, fake = ctx.real_batch(self.samples), ctx.generate(self.samples)
        t_real, t_fake = margin(ctx.head, ctx.discriminate(real)), margin(ctx.head, ctx.discriminate(fake))
        values: dict[str, Any] = {"margins.gap": (t_real.mean() - t_fake.mean()).item()}
        if ctx.pictures:  # False when the run logs no pictures: nothing to prepare
            values["margins"] = Picture.plot("ganlab_temperature.figures:draw_margins", step=ctx.step,
                                             real=t_real, fake=t_fake)
        return values
