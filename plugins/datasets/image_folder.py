"""``image-folder``: a folder of images as TensorData (small) or StreamingData (large).

Layout (``labels=auto``): images directly in the folder (unlabelled), or one
subfolder per class (searched recursively; sorted subfolder names give the
class indices, as in torchvision's ImageFolder). A folder that mixes both is
refused rather than half-read, and so is a folder whose images all sit in one
subfolder: that is the parent of the image folder (``celeba/`` around
``img_align_celeba/``), one level too high, not a dataset of one class.
``labels=none`` takes every image under the folder, at any depth, unlabelled:
FFHQ's thousand-image subfolders and LSUN's nested exports are not classes.

Every image is converted to RGB or greyscale; with ``crop`` > 0 its centre
``crop``×``crop`` square is cut first, at the offsets torchvision's
CenterCrop uses (``round((W - crop) / 2)``, ``round((H - crop) / 2)``), as the
CelebA protocols crop the aligned 178×218 faces to 108 or 140 before resizing.
Then its shorter side is resized to ``size`` (PIL's filter named by
``resample``: bicubic by default; bilinear is what torchvision's Resize uses,
so the protocols written with it, Mimicry's among them; PIL's filters
antialias when shrinking) and the centre ``size``×``size`` crop kept. In
memory this happens once, on a thread pool (PIL releases the GIL while
decoding), and the engine caches the result; streaming does it per sample in
DataLoader workers.
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ganlab.data import DataRequest, StreamingData, TensorData
from ganlab.errors import ConfigError, GanlabError
from ganlab_plugins.datasets.streaming import Storage, float_bytes, preview_indices
from ganlab_plugins.datasets.util import to_signed_unit

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    """Every image below ``folder``, at any depth, sorted; hidden folders (``.git``, ``.cache``) left out."""
    return sorted(p for p in folder.rglob("*")
                  if _is_image(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts))


@dataclass(frozen=True)
class FolderScan:
    """The images of a folder and, when it has class subfolders, their labels."""

    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...]


def scan_folder(folder: Path, labels: str = "auto") -> FolderScan:
    """Find the images of ``folder``; raise GanlabError when there are none to use, or their layout is not one
    of the two ``labels=auto`` reads (see the module's docstring)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise GanlabError(f"dataset 'image-folder': {folder} {what}; set dataset.path to a folder of images")
    if labels == "none":
        everything = _images_under(folder)
        if not everything:
            raise GanlabError(f"dataset 'image-folder': no images under {folder} (looked for "
                              f"{', '.join(sorted(IMAGE_EXTENSIONS))}, at any depth)")
        return FolderScan(folder, tuple(everything), None, ())
    loose = sorted(p for p in folder.iterdir() if _is_image(p))
    subdirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    classes = {d.name: sorted(p for p in d.rglob("*") if _is_image(p)) for d in subdirs}
    classes = {name: files for name, files in classes.items() if files}
    if classes and loose:
        raise GanlabError(
            f"dataset 'image-folder': {folder} has {len(loose)} image(s) at the top level and class subfolders "
            f"({', '.join(list(classes)[:5])}); put every image in a class subfolder, or none, or set "
            f"dataset.labels=none to take them all unlabelled"
        )
    if len(classes) == 1 and not loose:
        [(name, files)] = classes.items()
        raise GanlabError(
            f"dataset 'image-folder': every image of {folder} is in one subfolder, {name} ({len(files)} images): "
            f"a class subfolder needs others; set dataset.path={folder / name} to use them unlabelled, or "
            f"dataset.labels=none"
        )
    if classes:
        names = tuple(sorted(classes))
        files = tuple(p for name in names for p in classes[name])
        labels = tuple(i for i, name in enumerate(names) for _ in classes[name])
        return FolderScan(folder, files, labels, names)
    if not loose:
        raise GanlabError(
            f"dataset 'image-folder': no images in {folder} (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}, at the top level or in class subfolders)"
        )
    return FolderScan(folder, tuple(loose), None, ())


def load_image(path: Path, size: int, channels: int, crop: int = 0, resample: str = "bicubic") -> np.ndarray:
    """One image as uint8 (size, size, channels): its centre ``crop`` square (0: none), shorter side resized
    to ``size`` with PIL's ``resample`` filter, centre crop."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            width, height = img.size
            if crop:
                if crop > min(width, height):
                    raise GanlabError(f"dataset 'image-folder': image {path} is {width}x{height}, smaller than "
                                      f"dataset.crop={crop}; lower crop, or 0 for none")
                left, top = round((width - crop) / 2), round((height - crop) / 2)
                img = img.crop((left, top, left + crop, top + crop))
                width = height = crop
            scale = size / min(width, height)
            new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
            if (new_w, new_h) != (width, height):
                img = img.resize((new_w, new_h), Image.Resampling[resample.upper()])
            left, top = (new_w - size) // 2, (new_h - size) // 2
            img = img.crop((left, top, left + size, top + size))
            array = np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one
    # DecompressionBombError: PIL's own bound on what a header may claim (MAX_IMAGE_PIXELS, checked on open)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise GanlabError(f"dataset 'image-folder': cannot read image {path}: {type(exc).__name__}: {exc}") from exc
    return array.reshape(size, size, channels)


def load_images(files: list[Path] | tuple[Path, ...], size: int, channels: int, crop: int = 0,
                resample: str = "bicubic") -> torch.Tensor:
    """Decode ``files`` on a thread pool into float32 (N, C, size, size) in [-1, 1].

    PIL warns (on stderr, in its own words) about an image larger than its limit for untrusted
    files but below the size it refuses; such an image is loaded, and said in ganlab's own line.
    """
    import warnings

    from PIL import Image

    workers = max(1, min(8, os.cpu_count() or 1))
    # caught here, around the pool, not in the threads: entering catch_warnings is not thread-safe
    with warnings.catch_warnings(record=True) as caught, ThreadPoolExecutor(max_workers=workers) as pool:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        arrays = list(pool.map(lambda p: load_image(p, size, channels, crop, resample), files))
    for warning in caught:
        if issubclass(warning.category, Image.DecompressionBombWarning):
            print(f"ganlab: warning: dataset 'image-folder': {warning.message}; loaded anyway", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return to_signed_unit(images)


class FolderImages(Dataset):
    """A map-style dataset for streaming: (x in [-1, 1] (C, S, S), label; -1 when unlabelled)."""

    def __init__(self, files: tuple[Path, ...], labels: tuple[int, ...] | None, size: int, channels: int,
                 crop: int = 0, resample: str = "bicubic") -> None:
        self.files = [str(p) for p in files]
        self.labels = list(labels) if labels is not None else None
        self.size = size
        self.channels = channels
        self.crop = crop
        self.resample = resample

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        array = load_image(Path(self.files[index]), self.size, self.channels, self.crop, self.resample)
        x = torch.from_numpy(array).permute(2, 0, 1).to(torch.float32).div_(127.5).sub_(1.0)
        y = self.labels[index] if self.labels is not None else -1
        return x, torch.tensor(y, dtype=torch.int64)


class ImageFolder:
    """The ``image-folder`` dataset."""

    cacheable = True  # when it loads in memory; a StreamingData is never cached

    def __init__(self, path: str, size: int = 64, channels: int = 3, in_memory: str = "auto",
                 memory_limit_mb: int = 2048, num_workers: int = 2, crop: int = 0, labels: str = "auto",
                 resample: str = "bicubic") -> None:
        if not path.strip():
            raise ConfigError("dataset 'image-folder' needs a folder: set dataset.path (e.g. --set dataset.path=DIR)")
        self.path = Path(path).expanduser()
        self.size = size
        self.channels = channels
        self.crop = crop
        self.labels = labels
        self.resample = resample
        self.storage = Storage(in_memory, memory_limit_mb, num_workers)
        self._scan: FolderScan | None = None

    def scan(self) -> FolderScan:
        if self._scan is None:
            self._scan = scan_folder(self.path, self.labels)
        return self._scan

    @property
    def labelled(self) -> bool:
        """True when the folder has class subfolders (False when it cannot be read yet)."""
        try:
            return self.scan().labels is not None
        except GanlabError:
            return False

    def cache_token(self, request: DataRequest | None = None) -> str:
        """A fingerprint of the folder's images (paths, sizes, modification times).

        The folder's contents can change while the options (its path) stay the
        same; mixing this token into the cache key keeps a stale cache from
        being reused.
        """
        digest = hashlib.sha256(str(self.path.resolve()).encode())
        for path in self.scan().files:
            stat = path.stat()
            digest.update(f"{path.relative_to(self.path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:16]

    def fits_in_memory(self, count: int) -> bool:
        return self.storage.holds(float_bytes(count, (self.channels, self.size, self.size)))

    def load(self, request: DataRequest) -> TensorData | StreamingData:
        found = self.scan()
        labels = None if found.labels is None else torch.tensor(found.labels, dtype=torch.int64)
        num_classes = len(found.class_names)
        class_names = list(found.class_names) or None
        source = f"image folder {found.root.resolve()} ({len(found.files)} images)"
        if self.fits_in_memory(len(found.files)):
            x = load_images(found.files, self.size, self.channels, self.crop, self.resample)
            return TensorData(x=x, y=labels, num_classes=num_classes, source=source, class_names=class_names)
        # A fixed random subset, decoded now, for the data card and for metrics that need real samples.
        pick = preview_indices(len(found.files))
        preview = TensorData(
            x=load_images([found.files[i] for i in pick.tolist()], self.size, self.channels, self.crop,
                          self.resample),
            y=None if labels is None else labels[pick], num_classes=num_classes, source=source,
            class_names=class_names,
        )
        return StreamingData(
            dataset=FolderImages(found.files, found.labels, self.size, self.channels, self.crop, self.resample),
            shape=(self.channels, self.size, self.size), num_classes=num_classes, source=source,
            num_workers=self.storage.num_workers, preview=preview,
        )
