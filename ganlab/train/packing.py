"""Packing (PacGAN, Lin et al. 2018): the discriminator scores m samples jointly.

With ``pack = m`` the architecture builds D for the *packed* input shape, the
first data dimension times m (vectors: (m·d,); images: (m·C, H, W), the m
samples' channels concatenated as in the paper), and G for the data shape as
usual. :class:`PackedDiscriminator` then turns a batch of B samples into B/m
packs of consecutive samples and scores each pack once. Real packs hold only
real samples and fake packs only fakes: training batches are whole packs
(``check_pack``), and the engine's one D call on ``cat(real, fake)`` splits at
a multiple of m.

The wrapper returns one row of scores per *sample*, each sample carrying its
pack's score (repeated m times). So the engine, every head, every loss and the
diagnostics keep their per-sample shapes, and a mean over the B rows is exactly
the mean over the B/m packs: the losses and their gradients are PacGAN's.

With ``pack = 1`` nothing here touches the networks: the architecture's
``build()`` is called once, exactly as without packing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ganlab.errors import GanlabError


def packed_shape(data_shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
    """The shape D is built for: the first data dimension (features, or channels) times ``pack``."""
    return (data_shape[0] * pack, *data_shape[1:])


class PackedDiscriminator(nn.Module):
    """D on packs of ``pack`` consecutive samples; one row of scores per sample (its pack's).

    A batch that is not a whole number of packs happens only outside training
    (evaluation chunks, the diagnostics, the memory estimate): its last pack is
    completed with the batch's first samples, and only the batch's own rows are returned.
    """

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        self.inner = inner
        self.pack = int(pack)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, m = x.shape[0], self.pack
        short = -batch % m
        if short:
            x = torch.cat((x, x[torch.arange(short, device=x.device) % batch]))
        # (P·m, C, ...) -> (P, m·C, ...): sample j of a pack is channels j·C to (j+1)·C - 1
        packs = x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])
        scores = self.inner(packs)
        return scores.repeat_interleave(m, dim=0)[:batch]


def check_pack(pack: int, batch_size: int, data_size: int, num_classes: int, loss: str) -> None:
    """Refuse, in one line, a packing that cannot train: batches that do not split into whole packs,
    or an objective that labels each real sample (a pack has no single class)."""
    if pack == 1:
        return
    if num_classes > 1:
        raise GanlabError(
            f"pack {pack} scores packs of samples jointly, but loss '{loss}' trains D to classify each real "
            f"sample into {num_classes} classes (semi-supervised); use pack 1 (or, with the built-in "
            "objectives, loss.labeled=0)"
        )
    if batch_size % pack:
        below = batch_size - batch_size % pack
        sizes = f"{below} or {below + pack}" if below else f"{below + pack}"
        raise GanlabError(
            f"batch_size {batch_size} is not divisible by pack {pack}: D scores whole packs of {pack} samples; "
            f"use --batch-size {sizes}, or a pack that divides {batch_size}"
        )
    if data_size < batch_size and data_size % pack:  # a resident dataset smaller than the batch is the batch
        raise GanlabError(
            f"pack {pack} must divide each batch, but the dataset has only {data_size} samples, so every real "
            f"batch holds {data_size}, which {pack} does not divide; use a pack that divides {data_size}"
        )


def build_networks(build: Callable[[tuple[int, ...]], Any], data_shape: tuple[int, ...], pack: int) -> Any:
    """The architecture's (G, D) for ``data_shape``; with ``pack`` > 1, G as usual and D built for
    ``packed_shape`` and wrapped in :class:`PackedDiscriminator`.

    ``build(shape)`` calls the architecture's ``build()``. G comes from the first call, so its
    initial weights are those of the unpacked run with the same seed. A malformed return is passed
    on as it came, for the caller's checks to name.
    """
    plain = build(data_shape)
    if pack == 1:
        return plain
    packed = build(packed_shape(data_shape, pack))
    for networks in (plain, packed):
        if not (isinstance(networks, (tuple, list)) and len(networks) == 2):
            return networks
    discriminator = packed[1]
    if isinstance(discriminator, nn.Module):
        discriminator = PackedDiscriminator(discriminator, pack)
    return plain[0], discriminator
