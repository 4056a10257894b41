"""The real side of the ``inception`` metric: reference images, their features, and their disk cache.

The reference is m = min(``samples``, images in the split) images of the ``reference``
split (the training split by default), the whole split when it has no more than m images,
else m of them chosen with a fixed seed: the same images in every run on the dataset.

Their features are computed once and cached in
``<cache_dir>/inception-references/<dataset>-<key>.pt``, keyed by the dataset's name and
options (``size`` and the like change the images), the split, its size, a hash of up to 256
of the chosen images as uint8, m, the weights' SHA-256, the input rule and torch-fidelity's
version (and the Inception Score's split count, for the reference's own score). The file holds the FID statistics (mean and covariance of the pool features, float64)
and the pool features themselves (float32, m × 2048: 400 MB at m = 50,000): KID and
precision/recall compare the generated features with the real ones sample by sample, so no
summary of them would do. The Inception Score of the reference images is stored beside them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import ConfigError
from ganlab_plugins.metrics import inception_features as feats

#: bump when the cache's content or the input rule changes: old files are then ignored
VERSION = 1
#: seed of the reference subset
SUBSET_SEED = 0
SPLITS = ("train", "test")

#: reference feature sets computed in this process (an observable for tests: a cache hit computes none)
COMPUTED = 0


@dataclass
class Reference:
    """What an evaluation compares the generated samples with."""

    features: torch.Tensor  # (m, 2048) float32
    mu: Any  # (2048,) float64 numpy, torch-fidelity's statistics format
    sigma: Any  # (2048, 2048) float64 numpy
    inception_score: tuple[float, float]  # of the reference images: (mean, std over splits)
    path: Path

    @property
    def count(self) -> int:
        return len(self.features)


@dataclass
class RealImages:
    """A split of the run's data: its size, and its rows as float images in [-1, 1]."""

    split: str
    size: int
    rows: Callable[[torch.Tensor], torch.Tensor]

    def batches(self, indices: torch.Tensor, batch: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(indices), batch):
            yield self.rows(indices[start : start + batch])


def real_images(data: Any, split: str) -> RealImages | None:
    """The ``split`` of ``data`` (a TensorData, or a StreamingData read item by item), or None without one."""
    if split == "test":
        x = getattr(data, "test_x", None)
        return None if x is None else RealImages(split, len(x), lambda idx: x[idx.to(x.device)])
    x = getattr(data, "x", None)
    if x is not None:
        return RealImages(split, len(x), lambda idx: x[idx.to(x.device)])
    dataset = getattr(data, "dataset", None)  # StreamingData: (x, y) items, x already in [-1, 1]
    if dataset is None:
        return None
    return RealImages(split, len(dataset), lambda idx: torch.stack([dataset[int(i)][0] for i in idx]))


def chosen(images: RealImages, m: int) -> torch.Tensor:
    """The m rows of the reference: all of them in order, or a seeded random subset."""
    if m >= images.size:
        return torch.arange(images.size)
    return torch.randperm(images.size, generator=torch.Generator().manual_seed(SUBSET_SEED))[:m]


def cache_path(cache_dir: Path, dataset: str, options: dict[str, Any], images: RealImages, rows: torch.Tensor,
               weights_sha256: str, is_splits: int) -> Path:
    import torch_fidelity

    probe = rows[:: max(1, len(rows) // 256)][:256]
    content = hashlib.sha256(feats.to_uint8(images.rows(probe).cpu()).numpy().tobytes()).hexdigest()[:16]
    blob = json.dumps({
        "dataset": dataset, "options": options, "split": images.split, "split_size": images.size,
        "m": len(rows), "seed": SUBSET_SEED, "content": content, "weights": weights_sha256,
        "input": feats.INPUT_RULE, "resize": feats.RESIZE, "torch_fidelity": torch_fidelity.__version__,
        "is_splits": is_splits, "version": VERSION,
    }, sort_keys=True, default=str)
    name = f"{dataset}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.pt"
    return Path(cache_dir) / "inception-references" / name


def load(path: Path) -> Reference | None:
    """The cached reference at ``path``, or None when absent or unreadable (it is then recomputed).

    The replicas of a population each have their own metric but read the same file: they share one
    copy in memory (400 MB at m = 50,000) rather than one each.
    """
    if not path.is_file():
        return None
    stat = path.stat()
    return _load(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load(path: Path, size: int, mtime_ns: int) -> Reference | None:
    import sys

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return Reference(blob["features"], blob["mu"].numpy(), blob["sigma"].numpy(),
                         (float(blob["is_mean"]), float(blob["is_std"])), path)
    except Exception as exc:  # a truncated or foreign file: recompute over it
        print(f"ganlab: Inception reference cache {path} unreadable ({type(exc).__name__}); recomputing",
              file=sys.stderr)
        return None


def compute(path: Path, extractor: feats.Extractor, images: RealImages, rows: torch.Tensor,
            inception_score: Callable[[torch.Tensor], tuple[float, float]]) -> Reference:
    """Extract the reference's features, fit the FID statistics, and write the cache file atomically."""
    global COMPUTED
    from torch_fidelity.metric_fid import fid_features_to_statistics

    pool, logits = extractor.features(images.batches(rows, feats.batch_size(extractor.device)))
    # float64 features: torch-fidelity's mean keeps the input's dtype (its covariance is float64 anyway)
    stats = fid_features_to_statistics(pool.double())
    score = inception_score(logits)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")  # parallel sweep variants may compute it at once
    torch.save({"features": pool, "mu": torch.from_numpy(stats["mu"]), "sigma": torch.from_numpy(stats["sigma"]),
                "is_mean": score[0], "is_std": score[1]}, tmp)
    os.replace(tmp, path)
    COMPUTED += 1
    return Reference(pool, stats["mu"], stats["sigma"], score, path)


def reference_size(images: RealImages, samples: int, neighbours: int) -> int:
    """m, refused in one line where the split is too small for precision/recall's k-th neighbour."""
    m = min(samples, images.size)
    if m < neighbours + 1:
        raise ConfigError(f"the inception metric's reference split '{images.split}' has {images.size} images; "
                          f"precision/recall with k = {neighbours} needs at least {neighbours + 1}")
    return m
