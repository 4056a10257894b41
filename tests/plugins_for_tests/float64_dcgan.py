"""Test plugin: the built-in dcgan networks computing in float64 (``--arch dcgan64``).

A GAN's trajectory amplifies rounding: two float32 computations of the same
step that differ only in summation order (a grouped convolution against N
separate ones) drift apart within tens of steps. In float64 the same
trajectories stay together far longer, so a test can check that a population
follows its single runs through dcgan's convolutions and BatchNorm to a
tolerance that would catch any real difference. Inputs and outputs stay
float32, so the heads, losses and data see what they see with ``dcgan``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ganlab import Option, hookimpl
from ganlab_plugins.architectures.dcgan import DCGANArchitecture


class InFloat64(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.double()).float()


class DCGAN64(DCGANArchitecture):
    def build(self, data_shape: tuple[int, ...], latent_dim: int, num_logits: int) -> tuple[nn.Module, nn.Module]:
        generator, discriminator = super().build(data_shape, latent_dim, num_logits)
        return InFloat64(generator), InFloat64(discriminator)


def _make(ngf: int = 8, ndf: int = 8) -> Any:
    return DCGAN64(ngf=ngf, ndf=ndf)


@hookimpl
def register_architectures(register: Any) -> None:
    register("dcgan64", _make, summary="dcgan computing in float64 (tests only)",
             options={"ngf": Option(int, 8, "G width", min=1), "ndf": Option(int, 8, "D width", min=1)})
