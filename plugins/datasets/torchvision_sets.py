"""Converting torchvision's MNIST / Fashion-MNIST / CIFAR-10 into TensorData.

The torchvision classes read the files (IDX for the MNISTs, pickled batches
for CIFAR-10) into one array, ``.data``; that array is converted to float in
[-1, 1] in chunks, never through per-sample PIL transforms.

Missing files become one GanlabError line naming the directory torchvision
reads and how to fill it. torchvision reports a missing dataset as a
RuntimeError and a failed download as RuntimeError, URLError or another
OSError (there is no network in many sandboxes and clusters).

Files that are there are judged first by their type, size and (IDX) header
(:mod:`ganlab_plugins.datasets.binary`), so that no reader reads /dev/zero to
its end, nor takes 17 bytes for 60000 x 100000 x 100000 images.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from ganlab.data import DataRequest, TensorData
from ganlab.errors import GanlabError
from ganlab_plugins.datasets.binary import idx_file_problem, not_regular, size_problem
from ganlab_plugins.datasets.util import exclude, to_signed_unit

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
               "batches.meta")
#: dimensions of each MNIST-family IDX file: images (N, H, W), labels (N,)
IDX_DIMS = {name: (3 if "images" in name else 1) for name in MNIST_FILES}
#: CIFAR-10's batches are 31 MB each; torchvision checksums a whole file before unpickling it, so a file far
#: larger cannot be one of them and is refused before minutes of hashing
CIFAR_MAX_BYTES = 64 * 2**20


def expected_location(class_name: str, root: Path) -> tuple[Path, tuple[str, ...], str]:
    """(directory torchvision reads, the files it needs there, what they come from)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, class_name)
    if class_name == "CIFAR10":
        return Path(root) / cls.base_folder, CIFAR_FILES, f"the archive {cls.filename}, unpacked"
    # MNIST and its relatives read raw IDX files from <root>/<ClassName>/raw
    return Path(root) / class_name / "raw", MNIST_FILES, "the .gz files of the dataset's site, decompressed"


class TorchvisionImages:
    cacheable = True
    labelled = True

    def __init__(self, name: str, class_name: str, size: int, exclude_class: int = -1) -> None:
        self.name = name
        self.class_name = class_name
        self.size = size
        self.exclude_class = exclude_class

    def check_files(self, root: Path, download: bool) -> None:
        """Refuse, in one line naming it, a file torchvision would read that cannot be this dataset's.

        With ``download``, torchvision fetches every file again, overwriting them, when one is missing
        (CIFAR-10: when one fails its checksum): those are only refused when they are not regular files,
        which no reader finishes and no download replaces (a link to /dev/zero stays one).
        """
        folder, files, origin = expected_location(self.class_name, root)
        present = [folder / name for name in files if (folder / name).exists()]
        refetched = download and (len(present) < len(files) or self.class_name == "CIFAR10")
        for path in present:
            problem = not_regular(path) if refetched else self._file_problem(path)
            if problem is not None:
                raise GanlabError(f"dataset '{self.name}': {path}: {problem}; the file is truncated, corrupted or "
                                  f"not this dataset's: replace it ({origin})")

    def _file_problem(self, path: Path) -> str | None:
        if self.class_name == "CIFAR10":
            return size_problem(path, CIFAR_MAX_BYTES)
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
        return f"dataset '{self.name}' not found in {folder}: {what}; {how} (--data-root sets the root, now {root})"

    def load(self, request: DataRequest) -> TensorData:
        self.check_files(Path(request.root), request.download)
        train, test = self._open(request, True), self._open(request, False)
        x, y = self._convert(train)
        test_x, test_y = self._convert(test)
        x, y = exclude(x, y, self.exclude_class, len(train.classes), self.name)
        folder, _, _ = expected_location(self.class_name, Path(request.root))
        return TensorData(
            x=x, y=y, num_classes=len(train.classes), source=f"torchvision.datasets.{self.class_name} ({folder})",
            test_x=test_x, test_y=test_y, class_names=list(train.classes),
        )

    def _convert(self, ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        data = ds.data
        if isinstance(data, torch.Tensor):  # MNIST family: uint8 (N, H, W)
            images = data.unsqueeze(1)
        else:  # CIFAR: numpy uint8 (N, H, W, C)
            images = torch.from_numpy(data).permute(0, 3, 1, 2)
        targets = torch.as_tensor(ds.targets, dtype=torch.int64)
        return to_signed_unit(images, self.size), targets


#: the registered factories (see :mod:`ganlab_plugins.datasets`): dataset name and torchvision class bound
mnist = partial(TorchvisionImages, "mnist", "MNIST")
fashion_mnist = partial(TorchvisionImages, "fashion-mnist", "FashionMNIST")
cifar10 = partial(TorchvisionImages, "cifar10", "CIFAR10")
