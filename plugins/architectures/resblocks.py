"""The residual blocks of SNGAN's ResNets (Miyato et al. 2018, appendix B; the layout of their
Chainer code, pfnet-research/sngan_projection, ``gen_models/resblocks.py`` and
``dis_models/resblocks.py``).

* :class:`UpBlock` (G): BN, ReLU, 2× upsampling, conv 3×3, BN, ReLU, conv 3×3; the shortcut is
  upsampled and, when the block changes the size or the width, a 1×1 convolution. In a
  conditional G the two BatchNorms are conditional (a scale and shift per class).
* :class:`DownBlock` (D): ReLU, conv 3×3, ReLU, conv 3×3, 2× average pooling when it
  downsamples; the shortcut is a 1×1 convolution then the pooling when the block changes the
  size or the width. The hidden width is the input's, as in the Chainer code.
* :class:`FirstDownBlock` (D's first, "optimized" block): no ReLU on the image itself, and the
  shortcut pools before its 1×1 convolution (the same function, on a quarter of the pixels).

The ReLUs are not in-place: the block's input also feeds its shortcut.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ganlab_plugins.architectures.conditional import ConditionalBatchNorm2d

#: Glorot-uniform gains of the Chainer code: sqrt(2) on the residual path's 3x3 convolutions, 1 elsewhere
RESIDUAL_GAIN = math.sqrt(2.0)
UPSAMPLING = ("nearest", "bilinear")


def glorot(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """Glorot-uniform weights and zero biases (Chainer's initialisers), in place; returns the layer."""
    nn.init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


def _conv(cin: int, cout: int, kernel: int, gain: float) -> nn.Conv2d:
    return glorot(nn.Conv2d(cin, cout, kernel, 1, kernel // 2), gain)


class UpBlock(nn.Module):
    """G's residual block, doubling the resolution."""

    def __init__(self, cin: int, cout: int, num_classes: int = 0, upsampling: str = "nearest") -> None:
        super().__init__()
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, not {upsampling!r}")
        self.upsampling = upsampling
        self.conditional = num_classes > 0
        self.bn1 = ConditionalBatchNorm2d(cin, num_classes) if self.conditional else nn.BatchNorm2d(cin)
        self.bn2 = ConditionalBatchNorm2d(cout, num_classes) if self.conditional else nn.BatchNorm2d(cout)
        for norm in (self.bn1, self.bn2):
            if self.conditional:  # SNGAN's conditional BatchNorm starts as the identity map: scale 1, shift 0
                nn.init.ones_(norm.scale.weight)
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)  # an upsampling block always has a learned shortcut

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsampling == "bilinear":
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def _norm(self, norm: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return norm(x, labels) if self.conditional else norm(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self._norm(self.bn1, x, labels))
        h = self.conv1(self._up(h))
        h = self.conv2(F.relu(self._norm(self.bn2, h, labels)))
        return h + self.shortcut(self._up(x))


class DownBlock(nn.Module):
    """D's residual block, halving the resolution when ``downsample``."""

    def __init__(self, cin: int, cout: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = _conv(cin, cin, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        # the shortcut is the identity when it can be (same size, same width): blocks 3 and 4 at 32x32
        self.shortcut = _conv(cin, cout, 1, 1.0) if (cin != cout or downsample) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class FirstDownBlock(nn.Module):
    """D's first block on the image: conv, ReLU, conv, pool; shortcut pool then 1x1 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, RESIDUAL_GAIN)
        self.conv2 = _conv(cout, cout, 3, RESIDUAL_GAIN)
        self.shortcut = _conv(cin, cout, 1, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))
