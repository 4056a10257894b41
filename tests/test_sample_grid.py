"""The sample grid logged to MLflow: small images enlarged by a whole factor, nearest-neighbour, so that
the image card shows digits one can read; large ones as they are."""

from __future__ import annotations

import torch

from ganlab.record.pictures import MIN_TILE, picture_of


def test_small_images_are_enlarged_pixel_for_pixel_and_large_ones_kept() -> None:
    samples = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    grid = picture_of(samples).array
    factor = MIN_TILE // 8
    tile = 8 * factor
    assert grid.shape == (2 * (tile + 2) + 2, 8 * (tile + 2) + 2)
    first = grid[2:2 + tile, 2:2 + tile]
    expected = samples[0, 0].add(1).div(2).mul(255).round().byte()
    assert (torch.from_numpy(first[::factor, ::factor].copy()) == expected).all()
    assert (torch.from_numpy(first.copy()) == expected.repeat_interleave(factor, 0).repeat_interleave(factor, 1)).all()
    large = picture_of(torch.zeros(8, 3, MIN_TILE, MIN_TILE)).array
    assert large.shape == (MIN_TILE + 4, 8 * (MIN_TILE + 2) + 2, 3)
