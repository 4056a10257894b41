"""Samples as pictures: a grid for images, a scatter plot for points.

Split in two because the halves run in different processes: ``picture_of``
in the training process, which holds the tensors (a grid is cheap in torch),
``render`` in the process that writes the MLflow record, which pays for
importing PIL and matplotlib and for encoding the PNG.

``ganlab sample`` draws vector samples against the run's real data instead:
``scatter_of`` decides what is drawn (points, projection, labels, title) and
``render_scatter`` draws it, so what the picture claims can be tested without
reading pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Picture:
    """``kind`` 'grid': uint8 pixels, H×W or H×W×3; 'points': an N×D float array, plotted by its first two columns."""

    kind: str
    array: Any


#: Image samples smaller than this (pixels on a side) are enlarged by a whole factor, nearest-neighbour,
#: before tiling: MLflow's image card shows a grid of 32-pixel digits too small to read.
MIN_TILE = 64


def picture_of(samples: Any) -> Picture:
    """A batch of samples (N×C×H×W images in [-1, 1], or N×D points) as a picture to render."""
    if samples.dim() == 4:
        images = samples.detach().float().cpu().clamp(-1, 1).add(1).div(2)
        factor = max(1, -(-MIN_TILE // max(1, min(images.shape[-2:]))))
        if factor > 1:
            images = images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
        grid = tile(images, columns=8)
        pixels = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        return Picture("grid", pixels if pixels.shape[2] == 3 else pixels[:, :, 0].copy())
    return Picture("points", samples.detach().float().cpu().reshape(len(samples), -1).numpy())


def tile(images: Any, columns: int = 8, padding: int = 2) -> Any:
    """N×C×H×W images in [0, 1] -> one C×H'×W' image: rows of ``columns``, white ``padding`` around each.

    (torchvision's make_grid does the same; importing torchvision for it would cost a run
    that does not otherwise need torchvision an import: docs/benchmarks.md.)
    """
    import torch

    n, channels, height, width = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = torch.ones(channels, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for index in range(n):
        top = (index // columns) * (height + padding) + padding
        left = (index % columns) * (width + padding) + padding
        canvas[:, top:top + height, left:left + width] = images[index]
    return canvas


def render(picture: Picture) -> Any:
    """A PIL image of the picture."""
    from PIL import Image

    if picture.kind == "grid":
        return Image.fromarray(picture.array)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = picture.array
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.scatter(points[:, 0], points[:, 1] if points.shape[1] > 1 else points[:, 0] * 0, s=2, alpha=0.5)
    ax.set_aspect("equal")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


@dataclass(frozen=True)
class Scatter:
    """What a sample plot of vector data shows, decided before anything is drawn.

    ``kind`` is 'scatter' (2-D points, or a 2-D projection of more) or 'histogram'
    (1-D data). ``samples`` and ``real`` hold the drawn coordinates (N×2, or N×1 for
    a histogram); ``real`` is None when the real data could not be had. ``note`` says
    what was done to the data to draw it ('' when it is drawn as it is).
    """

    kind: str
    samples: Any
    real: Any
    title: str
    xlabel: str
    ylabel: str
    note: str = ""


def scatter_of(samples: Any, real: Any, run_label: str, step: int | None) -> Scatter:
    """Samples (N×D) and real data (M×D, or None) of a run as a plot: D = 1 histograms,
    D = 2 as they are, D > 2 projected onto the real data's first two principal components.
    """
    import numpy as np

    samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    real = None if real is None else np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    dims = samples.shape[1]
    counts = f"{len(samples)} samples" + (f" vs {len(real)} real points" if real is not None else ", no real data")
    title = f"{run_label}, step {'?' if step is None else step}\n{counts}"
    if dims == 1:
        return Scatter("histogram", samples, real, title, "x", "density")
    if dims == 2:
        return Scatter("scatter", samples, real, title, "x[0]", "x[1]")
    basis_of = "real data" if real is not None and len(real) > 2 else "samples"
    mean, axes, shares = _principal_axes(real if basis_of == "real data" else samples)
    project = (lambda x: (x - mean) @ axes.T)
    drawn = "the samples" + ("" if real is None else " and the real data")
    note = (f"the data has {dims} dimensions: the plot shows {drawn} projected onto the first two principal "
            f"components of the {basis_of} ({sum(shares):.0%} of the variance)")
    title += f"\nprojected onto the first 2 principal components of the {basis_of} ({dims}-D)"
    xlabel, ylabel = (f"PC{i + 1} of the {basis_of} ({share:.0%} of variance)" for i, share in enumerate(shares))
    return Scatter("scatter", project(samples), None if real is None else project(real), title, xlabel, ylabel, note)


def _principal_axes(points: Any) -> tuple[Any, Any, list[float]]:
    """(mean, the first two principal axes as rows, the share of the variance along each)."""
    import numpy as np

    mean = points.mean(axis=0)
    _, singular, rows = np.linalg.svd(points - mean, full_matrices=False)
    if len(rows) < 2:  # a single point: no second direction to show
        rows, singular = np.vstack([rows, np.zeros_like(rows)]), np.append(singular, 0.0)
    variance = singular ** 2
    total = float(variance.sum()) or 1.0
    return mean, rows[:2], [float(v) / total for v in variance[:2]]


def render_scatter(plot: Scatter) -> Any:
    """A PIL image of the plot: real data under the samples, in another colour, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    real_style = {"color": "tab:blue", "label": "real data" + ("" if plot.real is None else f" ({len(plot.real)})")}
    fake_style = {"color": "tab:orange", "label": f"samples ({len(plot.samples)})"}
    if plot.kind == "histogram":
        bins = 60
        if plot.real is not None:
            ax.hist(plot.real[:, 0], bins=bins, density=True, alpha=0.45, **real_style)
        ax.hist(plot.samples[:, 0], bins=bins, density=True, alpha=0.6, histtype="step", linewidth=1.5, **fake_style)
    else:
        if plot.real is not None:
            ax.scatter(plot.real[:, 0], plot.real[:, 1], s=4, alpha=0.35, linewidths=0, **real_style)
        ax.scatter(plot.samples[:, 0], plot.samples[:, 1], s=4, alpha=0.6, linewidths=0, **fake_style)
        ax.set_aspect("equal", adjustable="datalim")  # both axes in the data's own units
    ax.set_title(plot.title, fontsize=9)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.legend(loc="best", fontsize=8, markerscale=3, framealpha=0.8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
