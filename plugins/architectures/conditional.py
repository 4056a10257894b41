"""Layers that condition the built-in networks on a class label.

* G: a learned class embedding concatenated to the noise (cGAN, Mirza & Osindero 2014), and in
  the dcgan generator conditional BatchNorm: normalisation without affine parameters, then a
  per-class scale and shift (de Vries et al. 2017; the generators of SNGAN and BigGAN).
* D: the projection discriminator (Miyato & Koyama 2018): the unconditional output plus the
  inner product of a class embedding with D's last features, ``f(x, y) = ψ(φ(x)) + e_yᵀ φ(x)``.
  A head with C scores gets one embedding row per score (C of them per class): adding the
  same projection to every score would change nothing under softmax, sparsemax or entmax,
  which are invariant to a shared shift of the scores. In a spectrally normalised D the
  embedding is normalised too and starts from Glorot-uniform rows (SNGAN's ``SNEmbedID``).
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab_plugins.architectures.spectral import spectral_norm

#: the size of G's class embedding when the architecture is not told otherwise
CLASS_DIM = 32


class Projection(nn.Module):
    """``e_y,cᵀ φ`` for every score c: (B, C) from features φ (B, F) and labels y (B,).

    The embedding starts at zero, so a conditional D starts as the unconditional one and
    learns the class terms from there; a ``spectral`` one (a spectrally normalised D) cannot,
    since the largest singular value of a zero matrix is 0: it starts from Glorot-uniform rows.
    """

    def __init__(self, num_classes: int, features: int, num_logits: int, spectral: bool = False) -> None:
        super().__init__()
        self.num_logits, self.features = num_logits, features
        self.embed = nn.Embedding(num_classes, num_logits * features)
        if spectral:
            nn.init.xavier_uniform_(self.embed.weight)
            spectral_norm(self.embed)
        else:
            nn.init.zeros_(self.embed.weight)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows = self.embed(labels).view(-1, self.num_logits, self.features)
        return torch.einsum("bcf,bf->bc", rows, features.to(rows.dtype))


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d without its own affine map, then ``γ_y · x̂ + β_y`` for the sample's class y.

    γ starts at 1 + N(0, 0.02) and β at 0, as DCGAN initialises BatchNorm.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.norm(x)
        return self.scale(labels)[:, :, None, None] * out + self.shift(labels)[:, :, None, None]


def with_class(z: torch.Tensor, embedding: nn.Embedding, labels: torch.Tensor) -> torch.Tensor:
    """The noise with the label's embedding concatenated: G's input in a cGAN."""
    return torch.cat((z, embedding(labels).to(z.dtype)), dim=1)


def check_labels(labels: torch.Tensor | None, batch: int, who: str) -> torch.Tensor:
    """A conditional network's labels: given, one per sample (a wrong call fails here, in words)."""
    if labels is None:
        raise ValueError(f"the conditional {who} must be called with class labels: {who}(x, y)")
    if labels.shape != (batch,):
        raise ValueError(f"the conditional {who} needs one label per sample: got labels of shape "
                         f"{tuple(labels.shape)} for a batch of {batch}")
    return labels.long()
