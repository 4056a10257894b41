"""Drawing the head diagnostics' pictures (matplotlib; no torch): run in the process that writes the record.

``ganlab.record.pictures.render`` calls these as ``draw(figure, **data)`` with the arrays
:mod:`.head_pictures` prepared in the training process (see there for what each array is).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the colours: D's p_real (diverging: red for "fake", blue for "real"), the points, zero gradients
CMAP = "RdBu"
REAL, FAKE, ZERO, ARROW = "#00e05a", "#ff9f1c", "#e600e6", "#111111"
#: the exact regions: hatched in white over the map's own dark ends, outlined in black (dashed: exactly 0)
HATCH, OUTLINE = "#ffffff", "#000000"


def _round_number(value: float) -> float:
    """A round number near ``value`` (1, 2 or 5 times a power of ten, not above it)."""
    power = 10 ** math.floor(math.log10(value))
    return next(m * power for m in (5, 2, 1) if m * power <= value)


def draw_field(fig: Any, title: str, x: np.ndarray, y: np.ndarray, p_real: np.ndarray, exact_0: np.ndarray,
               exact_1: np.ndarray, real: np.ndarray, fake: np.ndarray, at: np.ndarray, arrows: np.ndarray,
               zero: np.ndarray, arrow_scale: float) -> None:
    import matplotlib
    from matplotlib.patches import Patch

    fig.set_size_inches(6.4, 6.6)  # a fixed layout (no layout engine: it costs a third of the drawing)
    ax = fig.add_axes((0.10, 0.24, 0.70, 0.66))
    dx, dy = (x[1] - x[0]) / 2, (y[1] - y[0]) / 2
    image = ax.imshow(p_real, origin="lower", extent=(x[0] - dx, x[-1] + dx, y[0] - dy, y[-1] + dy), cmap=CMAP,
                      vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, cax=fig.add_axes((0.83, 0.24, 0.03, 0.66)), label="p_real: D's probability that x is real")
    handles: list[Any] = []
    for mask, hatch, style, what, face in ((exact_1, "////", "solid", "1", "#053061"),
                                          (exact_0, "\\\\", "dashed", "0", "#67001f")):
        if not mask.any():
            continue
        share = float(mask.mean())
        with matplotlib.rc_context({"hatch.color": HATCH, "hatch.linewidth": 0.8}):
            ax.contourf(x, y, mask.astype(float), levels=[0.5, 1.5], colors="none", hatches=[hatch])
        ax.contour(x, y, mask.astype(float), levels=[0.5], colors=[OUTLINE], linewidths=1.2, linestyles=style)
        with matplotlib.rc_context({"hatch.color": HATCH}):
            handles.append(Patch(facecolor=face, edgecolor=OUTLINE, hatch=hatch, linestyle=style,
                                 label=f"p_real = {what} exactly ({share:.0%} of the plot)"))
    handles.append(ax.scatter(real[:, 0], real[:, 1], s=7, c=REAL, edgecolors="black", linewidths=0.2,
                              label=f"real ({len(real)})"))
    handles.append(ax.scatter(fake[:, 0], fake[:, 1], s=9, c=FAKE, edgecolors="black", linewidths=0.25,
                              label=f"generated ({len(fake)})"))
    moving = ~zero
    if moving.any() and arrow_scale > 0:
        quiver = ax.quiver(at[moving, 0], at[moving, 1], arrows[moving, 0] * arrow_scale, arrows[moving, 1] * arrow_scale,
                           angles="xy", scale_units="xy", scale=1.0, color=ARROW, width=0.0035, headwidth=3.5,
                           label=f"−∇ₓℓ_G at {int(moving.sum())} generated samples")
        longest = float(np.hypot(arrows[moving, 0], arrows[moving, 1]).max())
        reference = _round_number(longest)
        ax.quiverkey(quiver, 0.74, 0.155, reference * arrow_scale, f"‖∇ₓℓ_G‖ = {reference:g}", coordinates="figure",
                     labelpos="W", fontproperties={"size": 8})
        handles.append(quiver)
    if zero.any():
        handles.append(ax.scatter(at[zero, 0], at[zero, 1], s=22, c=ZERO, edgecolors="black", linewidths=0.4,
                                  label=f"∇ₓℓ_G = 0 exactly ({int(zero.sum())} of {len(zero)})"))
    ax.set_xlim(x[0] - dx, x[-1] + dx)
    ax.set_ylim(y[0] - dy, y[-1] + dy)
    ax.set_aspect("equal")
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    scale = (f"arrow length = {arrow_scale:.3g} × ‖∇ₓℓ_G‖" if moving.any() and arrow_scale > 0 else
             "no arrows: every gradient is exactly zero" if len(zero) else "no gradients: G's loss reads more than D's scores")
    ax.set_title(f"{title}\nD's field; {scale}", fontsize=9)
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.01), ncol=2, fontsize=7.5,
               framealpha=0.9, markerscale=1.5)


def _share(count: int, n: int) -> str:
    share = count / n
    return f"{share:.0%}" if share >= 0.01 else f"{share:.1%}" if share >= 0.001 else f"{count} of {n}"


def _p_panel(ax: Any, counts: dict[str, Any], colour: str, what: str) -> None:
    edges, n = counts["edges"], max(counts["n"], 1)
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], counts["counts"] / n, width=width, align="edge", color=colour, alpha=0.75)
    low, high = -4 * width, 1 + 4 * width  # the exact values' own bars, apart from the bins
    for place, count in ((low, counts["exact_0"]), (high, counts["exact_1"])):
        ax.bar([place], [count / n], width=width * 2, color=colour, edgecolor="black", hatch="////")
        if count:
            ax.annotate(_share(count, n), (place, count / n), ha="center", va="bottom", fontsize=7)
    ax.axvline(-1.5 * width, color="grey", linewidth=0.6, linestyle=":")
    ax.axvline(1 + 1.5 * width, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xticks([low, 0, 0.5, 1, high], ["=0", "0", "0.5", "1", "=1"])
    ax.set_xlim(low - 2 * width, high + 2 * width)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("p_real (hatched: exactly 0, exactly 1)")
    ax.set_title(f"p_real on the {what} batch (n = {counts['n']})", fontsize=9)


def draw_histograms(fig: Any, title: str, real: dict[str, Any], fake: dict[str, Any],
                    grad: dict[str, Any] | None) -> None:
    panels = 2 if grad is None else 3
    fig.set_size_inches(4.0 * panels, 3.6)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.84, wspace=0.22)  # fixed: no layout engine
    _p_panel(axes[0], real, "#2166ac", "real")
    _p_panel(axes[1], fake, FAKE, "generated")
    axes[0].set_ylabel("share of the batch")
    if grad is not None:
        ax, n = axes[2], max(grad["n"], 1)
        edges = grad["edges"]
        width = (edges[1] - edges[0]) if len(edges) > 1 else 1.0
        left = (edges[0] if len(edges) else 0.0) - 4 * width
        if len(edges):
            ax.bar(edges[:-1], grad["counts"] / n, width=width, align="edge", color="#555555", alpha=0.8)
            ax.axvline(edges[0] - 1.5 * width, color="grey", linewidth=0.6, linestyle=":")
        ax.bar([left], [grad["zero"] / n], width=width * 2, color=ZERO, edgecolor="black", hatch="////")
        if grad["zero"]:
            ax.annotate(_share(grad["zero"], n), (left, grad["zero"] / n), ha="center", va="bottom", fontsize=7)
        powers = list(range(int(edges[0]), int(edges[-1]) + 1)) if len(edges) else []
        powers = powers[:: max(1, -(-len(powers) // 6))]
        ax.set_xticks([left, *powers], ["=0", *(f"1e{p}" for p in powers)])
        ax.set_xlim(left - 2 * width, (edges[-1] if len(edges) else left) + 2 * width)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("‖∇ₓℓ_G‖, log scale (hatched: exactly 0)")
        ax.set_title(f"‖∇ₓℓ_G‖ over generated samples (n = {grad['n']})", fontsize=9)
    fig.suptitle(title, fontsize=10, y=0.98)
