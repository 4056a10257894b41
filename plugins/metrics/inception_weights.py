"""The Inception-v3 weights of the ``inception`` metric: where they come from, and whether they fit.

Where (the first that names a file wins):

1. the environment variable ``GANLAB_INCEPTION_WEIGHTS``: a local copy of the file, on a
   machine without internet access (a cluster node). An environment variable, like
   ``GANLAB_CACHE``, and not an option of the metric: where a file lies is a fact about the
   machine, not about the experiment, so experiment files stay portable and runs made on two
   machines do not differ in a path. What a run records is the file's hash
   (``inception.weights``), which is the same wherever the file lies;
2. torch-fidelity's own file in torch's hub cache,
   ``torch.hub.get_dir()/checkpoints/weights-inception-2015-12-05-6726825d.pth``,
   where torch-fidelity (or ``torchmetrics``) put it when it downloaded it;
3. with the run's ``download`` setting on, ganlab downloads that file there from
   torch-fidelity's release (the URL torch-fidelity itself uses); never otherwise.

A file named by the variable that is missing or does not fit is refused in one line,
even when ``metrics = "auto"`` would have left the metric off: the user pointed at that
file. Before torch-fidelity loads a file (with ``weights_only=False``), ganlab loads it
with ``weights_only=True``, which runs no pickled code, and checks every tensor's name
and shape against the architecture torch-fidelity builds.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError

ENV = "GANLAB_INCEPTION_WEIGHTS"
#: torch-fidelity's file name (feature_extractor_inceptionv3.URL_INCEPTION_V3 ends with it)
FILE_NAME = "weights-inception-2015-12-05-6726825d.pth"
#: hex digits of the file's SHA-256 logged as ``inception.weights``
HASH_DIGITS = 16


@dataclass(frozen=True)
class Weights:
    """A weights file that fits the architecture, and how it was found."""

    path: Path
    sha256: str
    source: str

    @property
    def digest(self) -> str:
        """The short hash runs record: the same file gives the same value on every machine."""
        return self.sha256[:HASH_DIGITS]


def url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def hub_path() -> Path:
    """Where torch-fidelity keeps the file once downloaded: torch hub's checkpoint cache (TORCH_HOME)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FILE_NAME


def how_to_get() -> str:
    """The sentence every "no weights" line ends with: the setting to set and the file to fetch."""
    return (f"set {ENV}=PATH to a local copy of torch-fidelity's Inception-v3 weights, "
            f"or fetch {url()} into {hub_path().parent}/ (or run with --download)")


def find(download: bool) -> Weights | None:
    """The weights to use, checked; None when none is at hand and downloading is off.

    Raises ConfigError for a named file that is missing or does not fit, and for a
    download that fails.
    """
    given = os.environ.get(ENV, "").strip()
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ConfigError(f"{ENV} names {path}, which is not a file; {how_to_get()}")
        return checked(path, ENV)
    cached = hub_path()
    if cached.is_file():
        return checked(cached, "torch hub cache")
    if not download:
        return None
    fetch(cached)
    return checked(cached, "downloaded")


def fetch(path: Path) -> None:
    """Download torch-fidelity's file to ``path`` (``download`` setting on); one line if it cannot."""
    import torch

    print(f"ganlab: downloading the Inception-v3 weights from {url()} to {path}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url(), str(path), progress=False)
    except Exception as exc:  # no network, a proxy, a full disk: say which, in one line
        raise ConfigError(f"could not download the Inception-v3 weights from {url()} "
                          f"({type(exc).__name__}: {exc}); {how_to_get()}") from None


def checked(path: Path, source: str) -> Weights:
    """``path`` as Weights once its tensors fit the architecture; ConfigError naming the file otherwise."""
    stat = path.stat()
    return _checked(path.resolve(), stat.st_size, stat.st_mtime_ns, source)


@functools.lru_cache(maxsize=8)
def _checked(path: Path, size: int, mtime_ns: int, source: str) -> Weights:
    # memoised on (path, size, mtime): each replica of a population asks, and reading 95 MB once is enough
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own text is not passed on: it advises weights_only=False, which would run the file's code
        raise ConfigError(f"Inception weights {path} ({source}) are not a PyTorch file of tensors alone "
                          f"(torch.load(weights_only=True) refused it: {type(exc).__name__}); "
                          f"{how_to_get()}") from None
    problem = fit_problem(state)
    if problem is not None:
        raise ConfigError(f"Inception weights {path} ({source}) do not fit torch-fidelity's Inception-v3: "
                          f"{problem}; {how_to_get()}")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return Weights(path, digest.hexdigest(), source)


def fit_problem(state: Any) -> str | None:
    """What keeps ``state`` from loading into torch-fidelity's Inception-v3, or None.

    BatchNorm's ``num_batches_tracked`` counters may be absent: a state dict saved
    without them loads (torch fills them in), and torch-fidelity's converted file
    is such a state dict.
    """
    import torch

    if not isinstance(state, dict):
        return f"the file holds a {type(state).__name__}, not a state dict of tensors"
    expected = expected_shapes()
    unexpected = sorted(k for k in state if k not in expected)
    if unexpected:
        return f"{len(unexpected)} tensor(s) the architecture lacks, e.g. '{unexpected[0]}'"
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    if missing:
        return f"{len(missing)} of its {len(expected)} tensors are missing, e.g. '{missing[0]}'"
    for key, shape in expected.items():
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            return f"'{key}' is a {type(value).__name__}, not a tensor"
        if tuple(value.shape) != shape:
            return f"'{key}' has shape {list(value.shape)} where the architecture has {list(shape)}"
    return None


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of torch-fidelity's FeatureExtractorInceptionV3.

    Built on the meta device (no memory, a few milliseconds) from a subclass that
    skips loading: torch-fidelity's constructor always loads a file, and here there
    is none yet.
    """
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        skeleton = Skeleton("inception-v3-skeleton", ["2048"], feature_extractor_weights_path=empty)
    return {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
