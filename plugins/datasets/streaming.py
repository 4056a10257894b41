"""Memory or streaming: the one decision every image dataset makes, and images streamed from bytes.

A dataset whose converted float32 tensors fit ``memory_limit_mb`` is returned as one TensorData (moved to
the training device, batched by indexing); a larger one as StreamingData, read and converted per sample
in DataLoader workers. ``in_memory`` forces either way.

Streamed images here are uint8 ``(C, H, W)`` from one of two sources: an array already in memory (the
torchvision sets, whose bytes are small but whose float tensors at a large ``size`` are not), or files of
fixed-size records read through a numpy memmap (STL-10's 2.7 GB ``unlabeled_X.bin``), which never read
more of a file than the records a batch asks for. Each sample is converted by the same
:func:`~ganlab_plugins.datasets.util.to_signed_unit` as the in-memory path, so the two paths give the
same tensors.

A streamed dataset's ``preview`` (the data card's picture, and the real samples of the metrics) is a
fixed random subset of the training split, decoded at load, with the test split, or a fixed subset of it
when the whole would not fit the memory limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ganlab.data import StreamingData, TensorData
from ganlab_plugins.datasets.util import to_signed_unit

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
PREVIEW_SAMPLES = 256
PREVIEW_SEED = 0


@dataclass(frozen=True)
class Storage:
    """A dataset's options ``in_memory``, ``memory_limit_mb`` and ``num_workers``: where its samples live.

    ``in_memory`` is one of the option's accepted words, in any case and spacing (the option's check
    refused the others).
    """

    in_memory: str = "auto"
    memory_limit_mb: int = 2048
    num_workers: int = 2

    def holds(self, nbytes: int) -> bool:
        """Whether data whose converted tensors take ``nbytes`` is held in memory."""
        mode = self.in_memory.strip().lower()
        if mode in TRUE_WORDS:
            return True
        if mode != "auto":
            return False
        return nbytes <= self.memory_limit_mb * 2**20

    def stream(self, dataset: ByteImages, num_classes: int, source: str, class_names: list[str] | None,
               test: tuple[torch.Tensor, torch.Tensor | None] | None) -> StreamingData:
        """``dataset`` streamed, with its :func:`preview`."""
        return StreamingData(
            dataset=dataset, shape=dataset.shape, num_classes=num_classes, source=source,
            num_workers=self.num_workers,
            preview=preview(dataset, num_classes, source, class_names, test, self.memory_limit_mb),
        )


def float_bytes(count: int, shape: tuple[int, ...]) -> int:
    """The size of ``count`` float32 samples of ``shape``."""
    return count * int(np.prod(shape)) * 4


def preview_indices(count: int, samples: int = PREVIEW_SAMPLES, seed: int = PREVIEW_SEED) -> torch.Tensor:
    """A fixed, sorted random subset of ``range(count)``: the same rows on every load."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:samples].sort().values


class ByteImages(Dataset):
    """Map-style dataset of uint8 images, each converted on access: ``(x in [-1, 1] (C, S, S), label)``.

    The label is -1 when the set is unlabelled (a DataLoader cannot collate None). Subclasses give
    :meth:`image`, the stored image ``index`` as uint8 (C, H, W).
    """

    def __init__(self, labels: torch.Tensor | None, size: int) -> None:
        self.labels = labels
        self.size = size

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int, int]:
        """A sample's shape once converted, (C, size, size)."""
        return (int(self.image(0).shape[0]), self.size, self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_signed_unit(self.image(index).unsqueeze(0), self.size)[0]
        y = -1 if self.labels is None else int(self.labels[index])
        return x, torch.tensor(y, dtype=torch.int64)

    def convert(self, indices: torch.Tensor) -> torch.Tensor:
        """The samples at ``indices``, converted together (a preview)."""
        stacked = torch.stack([self.image(int(i)) for i in indices])
        return to_signed_unit(stacked, self.size)


class ArrayImages(ByteImages):
    """Images held as one uint8 tensor (N, C, H, W) in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, size: int) -> None:
        super().__init__(labels, size)
        self.images = images

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]


@dataclass(frozen=True)
class RecordFile:
    """A file of ``count`` fixed-size uint8 records, each an image stored as ``stored_shape``.

    ``to_chw`` permutes a stored record's axes into (C, H, W): STL-10 stores each channel column by
    column, (C, W, H), so its permutation is (0, 2, 1).
    """

    path: Path
    count: int
    stored_shape: tuple[int, int, int]
    to_chw: tuple[int, int, int] = (0, 1, 2)


class RecordImages(ByteImages):
    """Images read record by record from one or more :class:`RecordFile`, concatenated in order.

    The memmaps are opened on first access in each process and left out of the pickled state: a
    DataLoader worker started with spawn receives the paths, not a copy of the files' contents.
    """

    def __init__(self, files: tuple[RecordFile, ...], labels: torch.Tensor | None, size: int) -> None:
        super().__init__(labels, size)
        self.files = files
        self.starts = np.cumsum([0, *(f.count for f in files)])
        self._maps: list[np.memmap] | None = None

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": None}

    def _memmaps(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = [np.memmap(f.path, dtype=np.uint8, mode="r", shape=(f.count, *f.stored_shape))
                          for f in self.files]
        return self._maps

    def image(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        part = int(np.searchsorted(self.starts, index, side="right")) - 1
        record = np.array(self._memmaps()[part][index - self.starts[part]])  # a copy: the map stays read-only
        return torch.from_numpy(record).permute(*self.files[part].to_chw)


def preview(dataset: ByteImages, num_classes: int, source: str, class_names: list[str] | None,
            test: tuple[torch.Tensor, torch.Tensor | None] | None, memory_limit_mb: int) -> TensorData:
    """A streamed set's preview: :data:`PREVIEW_SAMPLES` fixed training samples and the (converted) test split.

    ``test`` is the test split as uint8 (N, C, H, W) and its labels; when its converted tensor exceeds
    ``memory_limit_mb``, a fixed subset of as many samples as fit (at least :data:`PREVIEW_SAMPLES`) is kept.
    """
    pick = preview_indices(len(dataset), PREVIEW_SAMPLES)
    x = dataset.convert(pick)
    y = None if dataset.labels is None else dataset.labels[pick]
    test_x = test_y = None
    if test is not None:
        images, labels = test
        fitting = memory_limit_mb * 2**20 // max(1, float_bytes(1, (images.shape[1], dataset.size, dataset.size)))
        if len(images) > max(PREVIEW_SAMPLES, fitting):
            keep = preview_indices(len(images), max(PREVIEW_SAMPLES, fitting))
            images, labels = images[keep], None if labels is None else labels[keep]
        test_x, test_y = to_signed_unit(images, dataset.size), labels
    return TensorData(x=x, y=y, num_classes=num_classes, source=source, test_x=test_x, test_y=test_y,
                      class_names=class_names)
