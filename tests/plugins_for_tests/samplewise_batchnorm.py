"""Test plugin: an architecture that declares a samplewise D but gives it BatchNorm."""

import math
from typing import Any

from torch import nn

from ganlab import hookimpl


class BatchNormedMLP:
    samplewise_discriminator = True  # wrong: BatchNorm mixes the samples of a batch

    def build(self, data_shape: Any, latent_dim: int, num_logits: int) -> Any:
        size = math.prod(data_shape)
        generator = nn.Sequential(nn.Linear(latent_dim, size), nn.Tanh(), nn.Unflatten(1, tuple(data_shape)))
        discriminator = nn.Sequential(nn.Flatten(), nn.Linear(size, 8), nn.BatchNorm1d(8), nn.Linear(8, num_logits))
        return generator, discriminator


@hookimpl
def register_architectures(register: Any) -> None:
    register("bn-mlp", BatchNormedMLP, summary="declares samplewise_discriminator with BatchNorm in D (tests only)")
