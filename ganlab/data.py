"""What a dataset plugin hands the engine, and how the engine draws batches.

A dataset that fits in memory is one tensor on the training device, batched by
indexing with a random permutation: no DataLoader, no per-sample Python in the
training step. Larger data streams through a DataLoader (``StreamingData``).
The prepared tensors are cached on disk, keyed by dataset name and options.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class DataRequest:
    """What a dataset's ``load`` is told about the run."""

    root: Path
    download: bool = False
    seed: int = 0
    #: the run's batch size (0: not known): a dataset whose samples are large once expanded (text:
    #: one-hot vectors over the vocabulary) can refuse a batch that cannot fit before it loads anything
    batch_size: int = 0


@dataclass
class TensorData:
    """A whole dataset in memory: ``x`` (N, *shape) float32 in [-1, 1] (2-D
    mixtures: unscaled), optional labels ``y`` (N,), and an optional test split.

    Token sequences (text) set ``vocab``: then ``x`` and ``test_x`` hold token ids
    (N, L) int64 and a sample, as G emits it and D reads it, is one distribution
    over the vocabulary per position, (L, V): ``take`` expands the drawn rows to
    one-hot vectors. Holding ids rather than one-hots keeps a 10 000 x 20 x 5 000
    dataset at 1.6 MB instead of 4 GB; ``text_joiner`` joins decoded tokens
    ("" for characters, " " for words).
    """

    x: torch.Tensor
    y: torch.Tensor | None = None
    num_classes: int = 0
    source: str = ""
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    class_names: list[str] | None = None
    vocab: list[str] | None = None
    text_joiner: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        if self.vocab is not None:
            return (*self.x.shape[1:], len(self.vocab))
        return tuple(self.x.shape[1:])

    @property
    def is_text(self) -> bool:
        return self.vocab is not None

    def expand(self, rows: torch.Tensor) -> torch.Tensor:
        """Stored rows as samples: token ids become float one-hot vectors; other data is unchanged."""
        if self.vocab is None:
            return rows
        import torch.nn.functional as F

        return F.one_hot(rows, len(self.vocab)).float()

    def take(self, idx: torch.Tensor) -> torch.Tensor:
        """The samples at dataset rows ``idx``."""
        return self.expand(self.x[idx])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: Any) -> TensorData:
        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=True)

        return TensorData(move(self.x), move(self.y), self.num_classes, self.source,
                          move(self.test_x), move(self.test_y), self.class_names, self.vocab, self.text_joiner)


def labels_problem(split: str, count: int, y: Any, num_classes: int) -> str | None:
    """What is wrong with the labels ``y`` of a ``split`` of ``count`` samples (None: nothing).

    Labels are class indices: training indexes embeddings and one-hot tables with them, so a label
    outside [0, num_classes) or a count that differs from the samples' fails there, deep in a run.
    """
    if y is None:
        return None
    shape = tuple(getattr(y, "shape", ()))
    if len(shape) != 1:
        return f"{split} labels must be a 1-D tensor of class indices, not shape {list(shape)}"
    if shape[0] != count:
        return f"{count:,} {split} samples but {shape[0]:,} labels"
    dtype = y.dtype
    if dtype.is_floating_point or dtype.is_complex or str(dtype) == "torch.bool":
        return f"{split} labels must be integer class indices, not {dtype}"
    if count == 0:
        return None
    low, high = int(y.min()), int(y.max())
    if num_classes < 1:
        return f"{split} labels are given ({low}..{high}) but num_classes is {num_classes}; set num_classes or y=None"
    if low < 0 or high >= num_classes:
        return (f"{split} labels range over {low}..{high}, outside 0..{num_classes - 1} "
                f"(num_classes {num_classes})")
    return None


def tokens_problem(split: str, x: Any, vocab_size: int) -> str | None:
    """Token ids outside the vocabulary (a text TensorData), which expanding them to one-hot vectors cannot take."""
    if x is None or x.numel() == 0:
        return None
    if x.dtype.is_floating_point or x.dtype.is_complex:
        return f"{split} token ids must be integers, not {x.dtype}"
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab_size:
        return f"{split} token ids range over {low}..{high}, outside the vocabulary 0..{vocab_size - 1}"
    return None


#: How far past [-1, 1] image samples may stray (rounding in a plugin's scaling) before they are refused.
RANGE_SLACK = 1e-3


def samples_problem(split: str, x: Any, shape: tuple[int, ...] | None = None) -> str | None:
    """What is wrong with the samples ``x`` of a ``split`` of non-text data (None: nothing).

    ``x`` is (N, *shape) float32, finite; images (samples of two or more dimensions) lie in [-1, 1],
    the range of the generator's final tanh. Vectors are not range-checked: they are unscaled by
    design (grid25's modes sit at ±4), and G's output for them is linear. ``shape``: the training
    samples' shape, which a test split must share.
    """
    import torch

    if not isinstance(x, torch.Tensor):
        return f"{split} samples must be a torch.Tensor, not {type(x).__name__}"
    if x.dim() < 2:
        return f"{split} samples must be (N, *shape), one row per sample, not shape {list(x.shape)}"
    if shape is not None and tuple(x.shape[1:]) != shape:
        return f"{split} samples have shape {list(x.shape[1:])}, the training samples {list(shape)}"
    if x.dtype != torch.float32:
        return (f"{split} samples are {str(x.dtype).removeprefix('torch.')}; ganlab's networks take float32: "
                "return x.float()")
    if x.numel() and not bool(torch.isfinite(x).all()):
        return f"{split} samples hold NaN or infinite values"
    if x.dim() > 2 and x.numel():
        low, high = float(x.min()), float(x.max())
        if low < -1 - RANGE_SLACK or high > 1 + RANGE_SLACK:
            return (f"{split} images must lie in [-1, 1] (the generator ends in tanh), but they span "
                    f"[{low:.4g}, {high:.4g}]: scale them, e.g. x / 127.5 - 1 for bytes")
    return None


def data_problem(data: TensorData) -> str | None:
    """What breaks the TensorData contract in ``data`` (None: nothing); checked on what every dataset returns.

    ``num_classes`` is a count >= 0; samples are float32 and finite, images in [-1, 1]
    (:func:`samples_problem`); each split's labels, when given, are one integer per sample in
    [0, num_classes); test labels come with test samples; text token ids lie inside the vocabulary.
    """
    try:
        num_classes = operator.index(data.num_classes)
    except TypeError:
        return f"num_classes must be an integer, not {data.num_classes!r}"
    if isinstance(data.num_classes, bool) or num_classes < 0:
        return f"num_classes must be an integer >= 0, not {data.num_classes!r}"
    if data.test_y is not None and data.test_x is None:
        return "test labels are given without test samples (test_x is None)"
    splits = [("training", data.x, data.y)]
    if data.test_x is not None:
        splits.append(("test", data.test_x, data.test_y))
    for split, x, y in splits:
        problem = samples_problem(split, x, None if split == "training" else tuple(data.x.shape[1:])) \
            if data.vocab is None else None
        if problem is None:
            problem = labels_problem(split, int(x.shape[0]), y, num_classes)
        if problem is None and data.vocab is not None:
            problem = tokens_problem(split, x, len(data.vocab))
        if problem is not None:
            return problem
    return None


@dataclass
class StreamingData:
    """Data too large for memory: a map-style torch Dataset yielding (x, y) with
    x already in [-1, 1]; batched by a DataLoader with workers and pinned memory."""

    dataset: Any
    shape: tuple[int, ...]
    num_classes: int = 0
    source: str = ""
    num_workers: int = 2
    preview: TensorData | None = field(default=None)

    def __len__(self) -> int:
        return len(self.dataset)


class ResidentBatches:
    """Shuffled batches from a tensor on the training device.

    The order is an epoch-wise random permutation drawn from a dedicated
    generator, so ``state_dict`` (generator state, permutation, position) is
    enough to resume the exact data order.
    """

    def __init__(self, data: TensorData, batch_size: int, seed: int) -> None:
        import torch

        if batch_size > len(data):
            batch_size = len(data)
        self.data = data
        self.batch_size = batch_size
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self._perm = self._new_perm()
        self._pos = 0

    def _new_perm(self) -> torch.Tensor:
        import torch

        return torch.randperm(len(self.data), generator=self.generator).to(self.data.x.device)

    def next_indices(self) -> torch.Tensor:
        """The dataset rows of the next batch (a population gathers all replicas' rows in one go)."""
        if self._pos + self.batch_size > len(self.data):
            self._perm = self._new_perm()
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self.next_indices()
        y = self.data.y[idx] if self.data.y is not None else None
        return self.data.take(idx), y

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self._perm.cpu(), "pos": self._pos}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._perm = state["perm"].to(self.data.x.device)
        self._pos = int(state["pos"])


class StreamingBatches:
    """Shuffled batches from a DataLoader, restarted each epoch."""

    def __init__(self, data: StreamingData, batch_size: int, seed: int, device: Any) -> None:
        import torch
        from torch.utils.data import DataLoader

        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        self.loader = DataLoader(
            data.dataset, batch_size=batch_size, shuffle=True, drop_last=len(data) >= batch_size,
            num_workers=data.num_workers, pin_memory=str(device).startswith("cuda"),
            generator=self.generator, persistent_workers=data.num_workers > 0,
            worker_init_fn=ignore_sigint,
        )
        self._iter: Iterator[Any] = iter(self.loader)
        self.epoch_position = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        try:
            x, y = next(self._iter)
        except StopIteration:
            self._iter = iter(self.loader)
            self.epoch_position = 0
            x, y = next(self._iter)
        self.epoch_position += 1
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Any]:
        # Exact mid-epoch resume of a DataLoader is not supported; the epoch restarts.
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self._iter = iter(self.loader)


def ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which finishes its step first."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def cache_key(dataset: str, options: Mapping[str, Any], version: str = "1") -> str:
    blob = json.dumps({"dataset": dataset, "options": dict(options), "v": version}, sort_keys=True, default=str)
    return f"{dataset}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def default_cache_dir() -> Path:
    return Path(os.environ.get("GANLAB_CACHE", Path.home() / ".cache" / "ganlab"))


def load_cached(path: Path) -> TensorData | None:
    """A cached TensorData, or None when absent or unreadable (then it is rebuilt)."""
    import torch

    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        return TensorData(**{k: v for k, v in blob.items() if k != "format"})
    except Exception:
        return None


def save_cached(path: Path, data: TensorData) -> None:
    """Write atomically so that concurrent runs never read half a file.

    The cache only saves time: one that cannot be written (a full disk, a file
    size limit, a read-only home) is left out with a warning, and the run goes on.
    """
    import sys

    from ganlab.train.checkpoint import write_torch_file

    blob = {
        "x": data.x.cpu(), "y": None if data.y is None else data.y.cpu(), "num_classes": data.num_classes,
        "source": data.source, "test_x": None if data.test_x is None else data.test_x.cpu(),
        "test_y": None if data.test_y is None else data.test_y.cpu(), "class_names": data.class_names,
        "vocab": data.vocab, "text_joiner": data.text_joiner,
    }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_torch_file(blob, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        print(f"ganlab: warning: cannot write the dataset cache {path}: {exc.strerror or exc}; "
              f"continuing without it", file=sys.stderr)
