"""Drawing the ``margins`` picture (matplotlib, no torch): called in the process that writes the record,
as ``draw_margins(figure, **data)`` with the arrays :mod:`ganlab_temperature.margins` returned."""

from __future__ import annotations

from typing import Any

import numpy as np


def draw_margins(fig: Any, step: int, real: np.ndarray, fake: np.ndarray) -> None:
    fig.set_size_inches(5, 3.4)
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(1, 1, 1)
    both = np.concatenate([real, fake])
    bins = np.linspace(both.min(), both.max(), 41) if both.max() > both.min() else 10
    ax.hist(real, bins=bins, alpha=0.6, color="tab:blue", label=f"real ({len(real)})")
    ax.hist(fake, bins=bins, alpha=0.6, color="tab:orange", label=f"generated ({len(fake)})")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("margin t = fake_loss − real_loss (> 0: D says real)")
    ax.set_ylabel("samples")
    ax.set_title(f"D's margins at step {step}", fontsize=10)
    ax.legend(fontsize=8)
