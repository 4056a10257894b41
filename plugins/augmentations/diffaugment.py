"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

The same random transforms are applied to real and generated images before D
sees them, in training only; every transform is differentiable in the image, so
G learns through it. Each sample draws its own parameters from the generator
it is given (a population replica's own, or torch's global one).

- colour: brightness ``x + (u - 1/2)``, saturation ``(x - mean_c) * 2u + mean_c``,
  contrast ``(x - mean) * (u + 1/2) + mean`` (u ~ U(0, 1) per sample);
- translation: a shift by a whole number of pixels in [-s, s] along each axis,
  s = round(side * translation), the uncovered border filled with zeros;
- cutout: a square of side round(side * cutout), placed uniformly, set to zero.
"""

from __future__ import annotations

from typing import Any

import torch

from ganlab.errors import ComponentError


def _uniform(x: torch.Tensor, generator: Any) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def _integers(low: int, high: int, n: int, x: torch.Tensor, generator: Any) -> torch.Tensor:
    return torch.randint(low, high, (n, 1, 1), generator=generator, device=x.device)


def colour(x: torch.Tensor, generator: Any) -> torch.Tensor:
    x = x + (_uniform(x, generator) - 0.5)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * (_uniform(x, generator) * 2) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * (_uniform(x, generator) + 0.5) + image_mean


def translate(x: torch.Tensor, generator: Any, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dy = _integers(-sh, sh + 1, n, x, generator)
    dx = _integers(-sw, sw + 1, n, x, generator)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # (n, h, 1): the source row of each row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    inside = ((rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)).unsqueeze(1)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
    moved = x.reshape(n, x.shape[1], h * w).gather(2, index).reshape_as(x)
    return moved * inside.to(x.dtype)


def cut_out(x: torch.Tensor, generator: Any, ratio: float) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if ch == 0 or cw == 0:
        return x
    top = _integers(0, h + (1 - ch % 2), n, x, generator) - ch // 2
    left = _integers(0, w + (1 - cw % 2), n, x, generator) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~hole).unsqueeze(1).to(x.dtype)


class DiffAugment:
    """The transforms of ``policy`` in order, on (B, C, H, W) images."""

    def __init__(self, policy: str = "color,translation,cutout", translation: float = 0.125,
                 cutout: float = 0.5) -> None:
        self.policy = [p.strip() for p in policy.split(",") if p.strip()]
        self.translation, self.cutout = float(translation), float(cutout)

    def check(self, data_shape: tuple[int, ...]) -> None:
        if len(data_shape) != 3:
            raise ComponentError(f"augmentation 'diffaugment' transforms images (channels, height, width); this "
                                 f"dataset's samples have shape {tuple(data_shape)}")

    def augment(self, x: torch.Tensor, generator: Any = None) -> torch.Tensor:
        for name in self.policy:
            if name == "color":
                x = colour(x, generator)
            elif name == "translation":
                x = translate(x, generator, self.translation)
            else:
                x = cut_out(x, generator, self.cutout)
        return x

    def __repr__(self) -> str:
        return f"DiffAugment(policy={','.join(self.policy)!r})"
