"""Samples as pictures: a grid for images, a scatter plot for points.

Split in two because the halves run in different processes: ``picture_of``
in the training process, which holds the tensors (a grid is cheap in torch),
``render`` in the process that writes the MLflow record, which pays for
importing PIL and matplotlib and for encoding the PNG.
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


def picture_of(samples: Any) -> Picture:
    """A batch of samples (N×C×H×W images in [-1, 1], or N×D points) as a picture to render."""
    if samples.dim() == 4:
        grid = tile(samples.detach().float().cpu().clamp(-1, 1).add(1).div(2), columns=8)
        pixels = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        return Picture("grid", pixels if pixels.shape[2] == 3 else pixels[:, :, 0].copy())
    return Picture("points", samples.detach().float().cpu().reshape(len(samples), -1).numpy())


def tile(images: Any, columns: int = 8, padding: int = 2) -> Any:
    """N×C×H×W images in [0, 1] -> one C×H'×W' image: rows of ``columns``, white ``padding`` around each.

    (torchvision's make_grid does the same; importing torchvision for it would cost a run
    that does not otherwise need torchvision about 0.2 s.)
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


def render_samples(samples: Any) -> Any:
    """A PIL image of a batch of samples, in this process."""
    return render(picture_of(samples))
