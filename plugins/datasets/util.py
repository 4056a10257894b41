"""Tensor helpers shared by the dataset implementations (imports torch).

Conversions work on whole tensors, a chunk of images at a time, never one
sample at a time in Python: a dataset is converted once, then cached by the
engine, and training indexes the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.errors import ConfigError

#: Images converted per chunk: bounds the float32 intermediate (4096×3×64×64 ≈ 200 MB).
CHUNK = 4096


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of a float (N, C, H, W) batch to (N, C, size, size).

    Antialiasing is on when shrinking, so that downsampled images do not alias;
    it changes nothing when enlarging.
    """
    if x.shape[-2:] == (size, size):
        return x
    shrinking = size < x.shape[-1] or size < x.shape[-2]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def to_signed_unit(images: torch.Tensor, size: int | None = None, scale: float = 255.0) -> torch.Tensor:
    """uint8 (or 0..``scale``) images (N, C, H, W) → float32 in [-1, 1], resized to ``size``."""
    n = images.shape[0]
    height, width = images.shape[-2:]
    out_hw = (size, size) if size is not None else (height, width)
    out = torch.empty((n, images.shape[1], *out_hw), dtype=torch.float32)
    for start in range(0, n, CHUNK):
        chunk = images[start : start + CHUNK].to(torch.float32).div_(scale)
        if size is not None:
            chunk = resize(chunk, size)
        # bilinear interpolation cannot overshoot, but antialiasing kernels can by a hair
        out[start : start + CHUNK] = chunk.mul_(2.0).sub_(1.0).clamp_(-1.0, 1.0)
    return out


def exclude(x: torch.Tensor, y: torch.Tensor, cls: int, num_classes: int, dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop class ``cls`` (-1: none) from a training split; the label space is unchanged."""
    if cls < 0:
        return x, y
    if cls >= num_classes:
        raise ConfigError(
            f"dataset.exclude_class must be -1 (none) or a class index 0..{num_classes - 1} of '{dataset}', not {cls}"
        )
    keep = y != cls
    return x[keep], y[keep]
