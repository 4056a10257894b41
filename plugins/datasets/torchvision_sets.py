"""Converting torchvision's MNIST / Fashion-MNIST / CIFAR-10 / CIFAR-100 into TensorData or StreamingData.

The torchvision classes read the files (IDX for the MNISTs, pickled batches
for the CIFARs) into one uint8 array, ``.data``; that array is converted to
float in [-1, 1] in chunks, never through per-sample PIL transforms. When the
converted tensors would exceed ``memory_limit_mb`` (a CIFAR upsampled for a
64×64 architecture: 60k × 3 × 64 × 64 floats are 2.9 GB), the uint8 array is
kept and each sample converted as a DataLoader draws it
(:mod:`ganlab_plugins.datasets.streaming`).

Missing files become one GanlabError line naming the directory torchvision
reads and how to fill it. torchvision reports a missing dataset as a
RuntimeError and a failed download as RuntimeError, URLError or another
OSError (there is no network in many sandboxes and clusters).

Files that are there are judged first by their type, size and (IDX) header
(:mod:`ganlab_plugins.datasets.binary`), so that no reader reads /dev/zero to
its end, nor takes 17 bytes for 60000 x 100000 x 100000 images.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ganlab.data import DataRequest, StreamingData, TensorData
from ganlab.errors import GanlabError
from ganlab_plugins.datasets.binary import idx_file_problem, not_regular, size_problem
from ganlab_plugins.datasets.streaming import ArrayImages, Storage, float_bytes
from ganlab_plugins.datasets.util import exclude, to_signed_unit

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")
CIFAR100_FILES = ("train", "test", "meta")
#: dimensions of each MNIST-family IDX file: images (N, H, W), labels (N,)
IDX_DIMS = {name: (3 if "images" in name else 1) for name in MNIST_FILES}
#: CIFAR-10's batches are 31 MB each; torchvision checksums a whole file before unpickling it, so a file far
#: larger cannot be one of them and is refused before minutes of hashing
CIFAR_MAX_BYTES = 64 * 2**20
#: CIFAR-100's files, by the same reasoning: train 155 MB (50,000 rows of 3,072 bytes), test 31 MB, meta 1.5 kB
CIFAR100_MAX_BYTES = {"train": 256 * 2**20, "test": 64 * 2**20, "meta": 2**20}


def expected_location(class_name: str, root: Path) -> tuple[Path, tuple[str, ...], str]:
    """(directory torchvision reads, the files it needs there, what they come from)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, class_name)
    if class_name in ("CIFAR10", "CIFAR100"):
        files = CIFAR_FILES if class_name == "CIFAR10" else CIFAR100_FILES
        return Path(root) / cls.base_folder, files, f"the archive {cls.filename}, unpacked"
    # MNIST and its relatives read raw IDX files from <root>/<ClassName>/raw
    return Path(root) / class_name / "raw", MNIST_FILES, "the .gz files of the dataset's site, decompressed"


def missing_message(name: str, folder: Path, files: tuple[str, ...], origin: str, root: Path, download: bool,
                    exc: BaseException) -> str:
    """The one line for a dataset torchvision could not open from ``folder``: what is missing, and how to get it."""
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        what = f"missing {', '.join(missing)}"
    else:
        what = f"the files are there but corrupted or unreadable ({type(exc).__name__})"
    if download:
        how = (f"the download failed ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); "
               f"copy the files ({origin}) into that directory")
    else:
        how = f"run with --download to fetch them, or copy the files ({origin}) into that directory"
    return f"dataset '{name}' not found in {folder}: {what}; {how} (--data-root sets the root, now {root})"


class TorchvisionImages:
    cacheable = True  # when it loads in memory; a StreamingData is never cached
    labelled = True

    def __init__(self, name: str, class_name: str, size: int, exclude_class: int = -1, in_memory: str = "auto",
                 memory_limit_mb: int = 2048, num_workers: int = 2) -> None:
        self.name = name
        self.class_name = class_name
        self.size = size
        self.exclude_class = exclude_class
        self.storage = Storage(in_memory, memory_limit_mb, num_workers)

    def check_files(self, root: Path, download: bool) -> None:
        """Refuse, in one line naming it, a file torchvision would read that cannot be this dataset's.

        With ``download``, torchvision fetches every file again, overwriting them, when one is missing
        (CIFAR-10: when one fails its checksum): those are only refused when they are not regular files,
        which no reader finishes and no download replaces (a link to /dev/zero stays one).
        """
        folder, files, origin = expected_location(self.class_name, root)
        present = [folder / name for name in files if (folder / name).exists()]
        refetched = download and (len(present) < len(files) or self.class_name.startswith("CIFAR"))
        for path in present:
            problem = not_regular(path) if refetched else self._file_problem(path)
            if problem is not None:
                raise GanlabError(f"dataset '{self.name}': {path}: {problem}; the file is truncated, corrupted or "
                                  f"not this dataset's: replace it ({origin})")

    def _file_problem(self, path: Path) -> str | None:
        if self.class_name == "CIFAR10":
            return size_problem(path, CIFAR_MAX_BYTES)
        if self.class_name == "CIFAR100":
            return size_problem(path, CIFAR100_MAX_BYTES[path.name])
        return idx_file_problem(path, IDX_DIMS[path.name])

    def _open(self, request: DataRequest, train: bool) -> Any:
        import torchvision.datasets as tvd

        cls = getattr(tvd, self.class_name)
        root = Path(request.root)
        try:
            return cls(root=str(root), train=train, download=request.download)
        # URLError is an OSError; torchvision asserts on a bad IDX magic number
        except (RuntimeError, OSError, ValueError, AssertionError) as exc:
            raise GanlabError(self._missing_message(root, request.download, exc)) from exc

    def _missing_message(self, root: Path, download: bool, exc: BaseException) -> str:
        folder, files, origin = expected_location(self.class_name, root)
        return missing_message(self.name, folder, files, origin, root, download, exc)

    def load(self, request: DataRequest) -> TensorData | StreamingData:
        self.check_files(Path(request.root), request.download)
        train, test = self._open(request, True), self._open(request, False)
        images, y = self._bytes(train), self._targets(train, True)
        test_images, test_y = self._bytes(test), self._targets(test, False)
        classes = self._classes(train)
        images, y = exclude(images, y, self.exclude_class, len(classes), self.name)
        folder, _, _ = expected_location(self.class_name, Path(request.root))
        source = f"torchvision.datasets.{self.class_name} ({folder})"
        shape = (images.shape[1], self.size, self.size)
        if self.storage.holds(float_bytes(len(images) + len(test_images), shape)):
            return TensorData(
                x=to_signed_unit(images, self.size), y=y, num_classes=len(classes), source=source,
                test_x=to_signed_unit(test_images, self.size), test_y=test_y, class_names=list(classes),
            )
        return self.storage.stream(ArrayImages(images, y, self.size), len(classes), source, list(classes),
                                   (test_images, test_y))

    def _bytes(self, ds: Any) -> torch.Tensor:
        """The split's images as uint8 (N, C, H, W)."""
        data = ds.data
        if isinstance(data, torch.Tensor):  # MNIST family: uint8 (N, H, W)
            return data.unsqueeze(1)
        return torch.from_numpy(data).permute(0, 3, 1, 2)  # CIFAR: numpy uint8 (N, H, W, C)

    def _targets(self, ds: Any, train: bool) -> torch.Tensor:
        return torch.as_tensor(ds.targets, dtype=torch.int64)

    def _classes(self, ds: Any) -> list[str]:
        return list(ds.classes)


class Cifar100(TorchvisionImages):
    """CIFAR-100: torchvision reads the images and the 100 fine labels; ``coarse`` takes the 20 superclasses.

    torchvision's class keeps only ``fine_labels``; the coarse ones sit beside them in the same pickles
    (``coarse_labels``, and ``coarse_label_names`` in ``meta``), read here once torchvision has checked the
    files' checksums.
    """

    def __init__(self, size: int = 32, exclude_class: int = -1, in_memory: str = "auto", memory_limit_mb: int = 2048,
                 num_workers: int = 2, coarse: bool = False) -> None:
        super().__init__("cifar100", "CIFAR100", size, exclude_class, in_memory, memory_limit_mb, num_workers)
        self.coarse = coarse

    def _pickle(self, ds: Any, name: str) -> dict[str, Any]:
        with open(Path(ds.root) / ds.base_folder / name, "rb") as handle:
            return _ArraysOnly(handle, encoding="latin1").load()  # Python 2 pickles, as torchvision reads them

    def _targets(self, ds: Any, train: bool) -> torch.Tensor:
        if not self.coarse:
            return super()._targets(ds, train)
        return torch.as_tensor(self._pickle(ds, "train" if train else "test")["coarse_labels"], dtype=torch.int64)

    def _classes(self, ds: Any) -> list[str]:
        return list(self._pickle(ds, "meta")["coarse_label_names"]) if self.coarse else list(ds.classes)


#: the registered factories (see :mod:`ganlab_plugins.datasets`): dataset name and torchvision class bound
mnist = partial(TorchvisionImages, "mnist", "MNIST")
fashion_mnist = partial(TorchvisionImages, "fashion-mnist", "FashionMNIST")
class _ArraysOnly(pickle.Unpickler):
    """CIFAR's pickles hold dicts of lists, strings and numpy arrays; any other class a file names is
    refused, so reading one cannot run code (torchvision's checksum has vetted the file before, too)."""

    ALLOWED = frozenset({("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                         ("numpy", "ndarray"), ("numpy", "dtype")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a CIFAR file names {module}.{name}, which a CIFAR file never holds")


cifar10 = partial(TorchvisionImages, "cifar10", "CIFAR10")
cifar100 = Cifar100
