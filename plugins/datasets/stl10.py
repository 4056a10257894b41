"""``stl10``: STL-10 (Coates et al. 2011) from its binary files, in memory or streamed from disk.

The files (``stl10_binary.tar.gz``, unpacked under the data root as ``stl10_binary/``) hold 96×96 colour
images as fixed-size records of 27,648 bytes, each channel stored column by column, and labels as one
byte each, 1..10:

* ``train_X.bin``/``train_y.bin``: 5,000 labelled images; ``test_X.bin``/``test_y.bin``: 8,000;
* ``unlabeled_X.bin``: 100,000 unlabelled images (2.76 GB);
* ``class_names.txt``: the ten class names, one a line.

GANs are trained on the unlabelled split (SNGAN, Miyato et al. 2018, trains on it resized to 48×48), so
``split`` defaults to ``unlabeled`` and ``size`` to 48; the labelled test split comes along as the
reference set of metrics. Only ``split=train`` is labelled: in ``train+unlabeled`` the 100,000 have no
class, so the whole split is taken as unlabelled.

Reading: the test split, and the training split when it fits in memory, go through torchvision's own
``STL10`` class (which checks every file's checksum, downloads with ``--download``, and reads a split
whole with ``np.fromfile``). When the training split's converted tensor exceeds ``memory_limit_mb`` it is
streamed instead: records are read through a numpy memmap as batches ask for them, so the 2.76 GB file
is never read into memory. Before either, every file is judged by its type and size, the only claim a
headerless file makes (:func:`ganlab_plugins.datasets.binary.records_problem`), and the labels by their
values.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganlab.data import DataRequest, StreamingData, TensorData
from ganlab.errors import GanlabError
from ganlab_plugins.datasets.binary import not_regular, records_problem, size_problem
from ganlab_plugins.datasets.streaming import RecordFile, RecordImages, Storage, float_bytes
from ganlab_plugins.datasets.torchvision_sets import missing_message
from ganlab_plugins.datasets.util import to_signed_unit

NAME = "stl10"
NATIVE = 96
#: one image as stored: channels, then columns, then rows
STORED = (3, NATIVE, NATIVE)
RECORD_BYTES = 3 * NATIVE * NATIVE
#: image file → (its label file, or None; the records the real dataset has)
IMAGE_FILES: dict[str, tuple[str | None, int]] = {
    "train_X.bin": ("train_y.bin", 5_000),
    "test_X.bin": ("test_y.bin", 8_000),
    "unlabeled_X.bin": (None, 100_000),
}
#: the files torchvision's STL10 needs, whatever the split (it checksums them all)
FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")
CLASS_NAMES_FILE = "class_names.txt"
NUM_CLASSES = 10
#: split → the image files it concatenates, in torchvision's order
SPLITS: dict[str, tuple[str, ...]] = {
    "unlabeled": ("unlabeled_X.bin",),
    "train": ("train_X.bin",),
    "train+unlabeled": ("train_X.bin", "unlabeled_X.bin"),
}


def expected_location(root: Path) -> tuple[Path, str]:
    """(the folder torchvision reads, what its files come from)."""
    import torchvision.datasets as tvd

    return Path(root) / tvd.STL10.base_folder, f"the archive {tvd.STL10.filename}, unpacked"


def labels_problem(path: Path, count: int | None) -> str | None:
    """What is wrong with the label file ``path`` for ``count`` images (None: not known), read only when its
    size is right: one byte per image, each 1..10."""
    problem = not_regular(path)
    if problem is not None:
        return problem
    size = path.stat().st_size
    if count is not None and size != count:
        return f"it is {size:,} bytes; its image file holds {count:,} images, one label byte each"
    if count is None and size > IMAGE_FILES["test_X.bin"][1]:
        return f"it is {size:,} bytes; the dataset has at most {IMAGE_FILES['test_X.bin'][1]:,} labels"
    values = np.fromfile(path, dtype=np.uint8)
    if values.size and (values.min() < 1 or values.max() > NUM_CLASSES):
        return f"its labels range over {values.min()}..{values.max()}; STL-10's are 1..{NUM_CLASSES}"
    return None


def class_names_problem(path: Path) -> str | None:
    """What is wrong with ``class_names.txt``: a small text file of ten names, one a line."""
    problem = size_problem(path, 4096)
    if problem is not None:
        return problem
    names = [line for line in path.read_bytes().decode("utf-8", "replace").splitlines() if line.strip()]
    return None if len(names) == NUM_CLASSES else f"it names {len(names)} classes, not {NUM_CLASSES}, one a line"


def check_files(root: Path, download: bool) -> None:
    """Refuse, in one line naming it, a file that cannot be STL-10's, before torchvision hashes or reads it.

    With ``download``, torchvision fetches and unpacks the whole archive again when any file fails its
    checksum: files are then refused only when they are not regular files, which no download replaces.
    """
    folder, origin = expected_location(root)
    for name in (*FILES, CLASS_NAMES_FILE):
        path = folder / name
        if not path.exists():
            continue
        if download:
            problem = not_regular(path)
        elif name == CLASS_NAMES_FILE:
            problem = class_names_problem(path)
        elif name in IMAGE_FILES:
            problem = records_problem(path, RECORD_BYTES, IMAGE_FILES[name][1])
        else:
            images = folder / name.replace("_y", "_X")
            problem = labels_problem(path, record_count(images) if images.is_file() else None)
        if problem is not None:
            raise GanlabError(f"dataset '{NAME}': {path}: {problem}; the file is truncated, corrupted or not "
                              f"STL-10's: replace it ({origin})")


def record_count(path: Path) -> int | None:
    """The images in an image file that passed :func:`records_problem` (None when it does not)."""
    size = path.stat().st_size
    return size // RECORD_BYTES if size and not size % RECORD_BYTES else None


class STL10:
    """The ``stl10`` dataset."""

    cacheable = True  # when it loads in memory; a StreamingData is never cached

    def __init__(self, split: str = "unlabeled", size: int = 48, in_memory: str = "auto",
                 memory_limit_mb: int = 2048, num_workers: int = 2) -> None:
        self.split = split
        self.size = size
        self.storage = Storage(in_memory, memory_limit_mb, num_workers)

    @property
    def labelled(self) -> bool:
        return self.split == "train"

    def _open(self, request: DataRequest, split: str, verified: bool = False) -> Any:
        """torchvision's STL10 for ``split``; ``verified``: the checksums were checked by the open before."""
        import torchvision.datasets as tvd

        cls = _verified_class() if verified else tvd.STL10
        try:
            return cls(root=str(request.root), split=split, download=request.download and not verified)
        # URLError is an OSError; a reshape of a file that changed since check_files is a ValueError
        except (RuntimeError, OSError, ValueError) as exc:
            folder, origin = expected_location(request.root)
            raise GanlabError(missing_message(NAME, folder, FILES, origin, Path(request.root), request.download,
                                              exc)) from exc

    def load(self, request: DataRequest) -> TensorData | StreamingData:
        root = Path(request.root)
        check_files(root, request.download)
        test = self._open(request, "test")  # first: it downloads, and checks every file's checksum
        class_names = _class_names(test)
        test_images = torch.from_numpy(test.data)  # (N, C, H, W): torchvision turned the columns into rows
        test_y = torch.from_numpy(test.labels.astype(np.int64)) if self.labelled else None
        folder, _ = expected_location(root)
        counts = {name: record_count(folder / name) or 0 for name in SPLITS[self.split]}
        count = sum(counts.values())
        shape = (3, self.size, self.size)
        source = f"torchvision.datasets.STL10 split {self.split} ({folder})"
        num_classes = NUM_CLASSES if self.labelled else 0
        names = class_names if self.labelled else None
        if self.storage.holds(float_bytes(count + len(test_images), shape)):
            train = self._open(request, self.split, verified=True)
            return TensorData(
                x=to_signed_unit(torch.from_numpy(train.data), self.size),
                y=torch.from_numpy(train.labels.astype(np.int64)) if self.labelled else None,
                num_classes=num_classes, source=source, test_x=to_signed_unit(test_images, self.size),
                test_y=test_y, class_names=names,
            )
        labels = None
        if self.labelled:
            labels = torch.from_numpy(np.fromfile(folder / "train_y.bin", dtype=np.uint8).astype(np.int64) - 1)
        streamed = RecordImages(
            tuple(RecordFile(folder / name, n, STORED, (0, 2, 1)) for name, n in counts.items()), labels, self.size)
        return self.storage.stream(streamed, num_classes, source, names, (test_images, test_y))


def _class_names(ds: Any) -> list[str] | None:
    """The names torchvision read from class_names.txt (checked: ten), or None: the file is optional."""
    names = [n for n in getattr(ds, "classes", []) if n.strip()]
    return names or None


@cache
def _verified_class() -> type:
    """torchvision's STL10 without its checksums: the test split's open has just checked them, over the
    same five files (2.9 GB, seconds of hashing). Made on first use: importing torchvision waits for a load."""
    import torchvision.datasets as tvd

    class Verified(tvd.STL10):
        def _check_integrity(self) -> bool:
            return True

    return Verified
