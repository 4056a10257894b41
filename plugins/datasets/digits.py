"""``digits``: sklearn.datasets.load_digits as one tensor in [-1, 1].

The test split is a stratified 80/20 split with a fixed seed, independent of
the run's seed: every run sees the same split, and the converted tensors can
be cached by dataset options alone.
"""

from __future__ import annotations

import torch

from ganlab.data import DataRequest, TensorData
from ganlab_plugins.datasets.util import exclude, to_signed_unit

SPLIT_SEED = 0
TEST_FRACTION = 0.2


class Digits:
    cacheable = True
    labelled = True

    def __init__(self, size: int = 32, exclude_class: int = -1) -> None:
        self.size = size
        self.exclude_class = exclude_class

    def load(self, request: DataRequest) -> TensorData:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        images = torch.from_numpy(bunch.images).to(torch.float32).unsqueeze(1)  # (N, 1, 8, 8) in 0..16
        labels = torch.from_numpy(bunch.target).to(torch.int64)
        x = to_signed_unit(images, self.size, scale=16.0)
        train_idx, test_idx = train_test_split(
            torch.arange(len(labels)).numpy(), test_size=TEST_FRACTION, random_state=SPLIT_SEED,
            stratify=labels.numpy(),
        )
        train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
        train_x, train_y = exclude(x[train_idx], labels[train_idx], self.exclude_class, 10, "digits")
        return TensorData(
            x=train_x.contiguous(), y=train_y, num_classes=10,
            source="sklearn.datasets.load_digits (bundled with scikit-learn, UCI optical digits test set)",
            test_x=x[test_idx].contiguous(), test_y=labels[test_idx],
            class_names=[str(d) for d in range(10)],
        )
