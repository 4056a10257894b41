"""Fully connected generator and discriminator, as in the article ganlab grew from.

G: latent → 256 → 512 → 1024 → prod(data_shape), ReLU between layers, Tanh out.
D: prod(data_shape) → 1024 → 512 → 256 → K, LeakyReLU(0.2) and Dropout(0.3)
after each hidden layer, and no final activation: the head turns D's raw
scores into probabilities, so the losses can work from logits.

One deliberate departure: for vector data (``data_shape == (D,)``, the 2-D
mixtures) G's output is linear by default. Those samples are not scaled to
[-1, 1] (grid25's modes sit at ±4), so a Tanh would make the outer modes
unreachable. ``output="tanh"`` restores the article's layer everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganlab_plugins.architectures.common import check_build_args

ARTICLE_G_WIDTHS = (256, 512, 1024)
ARTICLE_D_WIDTHS = (1024, 512, 256)


class MLPGenerator(nn.Module):
    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], widths: tuple[int, ...], tanh: bool) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        layers: list[nn.Module] = []
        fan_in = latent_dim
        for width in widths:
            layers += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
            fan_in = width
        layers.append(nn.Linear(fan_in, math.prod(self.data_shape)))
        if tanh:
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z).view(z.shape[0], *self.data_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, data_shape: tuple[int, ...], widths: tuple[int, ...], dropout: float, num_logits: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        fan_in = math.prod(data_shape)
        for width in widths:
            layers += [nn.Linear(fan_in, width), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout)]
            fan_in = width
        layers.append(nn.Linear(fan_in, num_logits))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reshape, not view: a channels_last or sliced batch need not be contiguous
        return self.main(x.reshape(x.shape[0], -1))


class MLPArchitecture:
    """The ``mlp`` architecture: serves any data shape, flattened."""

    convolutional = False
    # no batch statistics in D (Dropout is per element): real and fake can share one D call
    samplewise_discriminator = True

    def __init__(self, hidden_scale: float = 1.0, dropout: float = 0.3, output: str = "auto") -> None:
        self.hidden_scale = hidden_scale
        self.dropout = dropout
        self.output = output

    def _widths(self, base: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(max(1, round(w * self.hidden_scale)) for w in base)

    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int) -> tuple[nn.Module, nn.Module]:
        data_shape = tuple(int(d) for d in data_shape)
        check_build_args("mlp", data_shape, latent_dim, num_logits)
        tanh = self.output == "tanh" or (self.output == "auto" and len(data_shape) > 1)
        generator = MLPGenerator(latent_dim, data_shape, self._widths(ARTICLE_G_WIDTHS), tanh)
        discriminator = MLPDiscriminator(data_shape, self._widths(ARTICLE_D_WIDTHS), self.dropout, num_logits)
        return generator, discriminator

