"""Pictures: sample grids and scatter plots, and the pictures metrics return.

Split in two because the halves run in different processes: ``picture_of``
(and every :class:`Picture` a metric returns) in the training process, which
holds the tensors and prepares arrays (a grid is cheap in torch), ``render``
in the process that writes the MLflow record, which pays for importing PIL and
matplotlib, for drawing and for encoding the PNG. ``animate`` assembles a
key's pictures into one GIF, in that process too (and in ``ganlab sample RUN
--field``).

``ganlab sample`` draws vector samples against the run's real data instead:
``scatter_of`` decides what is drawn (points, projection, labels, title) and
``render_scatter`` draws it, so what the picture claims can be tested without
reading pixels.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

#: The kinds of picture: pixels as they are, a scatter of points, a figure drawn by a named function.
KINDS = ("grid", "points", "plot")
#: What a picture's key may hold: it names the image card and the files MLflow writes for it.
KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
_DRAW = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
#: The most bytes of arrays one picture may carry to the record writer (it goes down a pipe).
MAX_PICTURE_BYTES = 8 << 20
#: The largest image a picture may be, pixels on a side.
MAX_SIDE = 4096


@dataclass(frozen=True)
class Picture:
    """A picture to log: one a metric returns among its values, or a sample grid.

    ``kind`` 'grid': ``array`` holds uint8 pixels, H×W or H×W×3; 'points': ``array`` an N×D float
    array, plotted by its first two columns; 'plot': ``draw`` names a function, ``"module:function"``,
    that the record writer's process imports and calls as ``function(figure, **data)`` to draw on a
    matplotlib figure (``data``: NumPy arrays, numbers, strings and lists or dicts of them).

    Make one with :meth:`image`, :meth:`points` or :meth:`plot`, which also turn tensors into arrays.
    """

    kind: str
    array: Any = None
    draw: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    #: the file of ``draw``'s module where the writer cannot import it by name (a plugin loaded from a
    #: path, ``--plugin file.py``): set by :func:`located`
    origin: str = ""

    @classmethod
    def image(cls, pixels: Any) -> Picture:
        """Pixels as they are: an H×W or H×W×3 array or tensor, uint8 (0-255) or float in [0, 1]."""
        import numpy as np

        array = np.asarray(_plain(pixels))
        if array.dtype.kind == "f":
            array = (np.clip(np.nan_to_num(array), 0.0, 1.0) * 255).round().astype(np.uint8)
        return cls("grid", array)

    @classmethod
    def points(cls, xy: Any) -> Picture:
        """A scatter plot of an N×D array or tensor of points (the first two columns)."""
        import numpy as np

        array = np.asarray(_plain(xy), dtype=np.float32)
        return cls("points", array.reshape(len(array), -1))

    @classmethod
    def plot(cls, draw: str, **data: Any) -> Picture:
        """A figure drawn in the record writer's process by ``draw`` (``"module:function"``) from ``data``.

        Tensors among ``data`` (also inside lists and dicts) become NumPy arrays here, in the
        training process; the module is imported only in the writer's.
        """
        return cls("plot", draw=draw, data={key: _plain(value) for key, value in data.items()})


def _plain(value: Any) -> Any:
    """Tensors (anything with ``detach``) as NumPy arrays, inside lists, tuples and dicts too."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def located(picture: Picture) -> Picture:
    """The picture, with the file of its drawing function's module when this process has that module
    loaded from a file: a plugin loaded by path is imported in the writer's process from there."""
    import sys

    if picture.kind != "plot":
        return picture
    path = getattr(sys.modules.get(picture.draw.partition(":")[0]), "__file__", None)
    return replace(picture, origin=str(path)) if path else picture


def picture_problem(key: Any, picture: Picture) -> str | None:
    """What is wrong with a picture a metric returned under ``key`` (None: nothing), said after "evaluate()"."""
    import numpy as np

    if not isinstance(key, str) or not KEY.match(key):
        return (f"returned a picture under {key!r}; a picture's key is 1 to 100 letters, digits, '_', '.' or '-', "
                "not starting with '.' or '-'")
    if picture.kind not in KINDS:
        return (f"returned a picture '{key}' of unknown kind {picture.kind!r} (make it with Picture.image, "
                "Picture.points or Picture.plot)")
    array = picture.array
    if picture.kind == "grid":
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or not (
                array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
            return f"returned a picture '{key}' whose pixels are not a uint8 H×W or H×W×3 array"
        if min(array.shape[:2]) < 1 or max(array.shape[:2]) > MAX_SIDE:
            return f"returned a picture '{key}' of {array.shape[1]}×{array.shape[0]} pixels (1 to {MAX_SIDE} a side)"
        return None
    if picture.kind == "points":
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.shape[1] < 1:
            return f"returned a picture '{key}' whose points are not an N×D array"
        return _size_problem(key, array.nbytes)
    if not isinstance(picture.draw, str) or not _DRAW.match(picture.draw):
        return f"returned a picture '{key}' whose draw is {picture.draw!r}, not 'module:function'"
    found = _plain_problem(picture.data)
    if found is not None:
        return (f"returned a picture '{key}' whose data holds {found}; give NumPy arrays, numbers, strings, "
                "lists or dicts")
    return _size_problem(key, _nbytes(picture.data))


def _plain_problem(value: Any) -> str | None:
    import numbers

    import numpy as np

    if value is None or isinstance(value, (str, bool, numbers.Number, np.generic)):
        return None
    if isinstance(value, np.ndarray):
        return "an array of Python objects" if value.dtype == object else None
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_plain_problem, value) if p is not None), None)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "a dict with keys that are not strings"
        return next((p for p in map(_plain_problem, value.values()) if p is not None), None)
    return f"a {type(value).__name__}"


def _nbytes(value: Any) -> int:
    if hasattr(value, "nbytes"):
        return int(value.nbytes)
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(map(_nbytes, value))
    if isinstance(value, Mapping):
        return sum(map(_nbytes, value.values()))
    return 8


def _size_problem(key: str, size: int) -> str | None:
    if size > MAX_PICTURE_BYTES:
        return (f"returned a picture '{key}' of {size / 2**20:.1f} MiB of data (at most "
                f"{MAX_PICTURE_BYTES >> 20} MiB)")
    return None


#: Image samples smaller than this (pixels on a side) are enlarged by a whole factor, nearest-neighbour,
#: before tiling: MLflow's image card shows a grid of 32-pixel digits too small to read.
MIN_TILE = 64


def picture_of(samples: Any) -> Picture:
    """A batch of samples (N×C×H×W images in [-1, 1], or N×D points) as a picture to render."""
    if samples.dim() == 4:
        images = samples.detach().float().cpu().clamp(-1, 1).add(1).div(2)
        factor = max(1, -(-MIN_TILE // max(1, min(images.shape[-2:]))))
        if factor > 1:
            images = images.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
        grid = tile(images, columns=8)
        pixels = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        return Picture("grid", pixels if pixels.shape[2] == 3 else pixels[:, :, 0].copy())
    return Picture("points", samples.detach().float().cpu().reshape(len(samples), -1).numpy())


def tile(images: Any, columns: int = 8, padding: int = 2) -> Any:
    """N×C×H×W images in [0, 1] -> one C×H'×W' image: rows of ``columns``, white ``padding`` around each.

    (torchvision's make_grid does the same; importing torchvision for it would cost a run
    that does not otherwise need torchvision an import: docs/benchmarks.md.)
    """
    import torch

    n, channels, height, width = images.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = torch.ones(channels, rows * (height + padding) + padding, columns * (width + padding) + padding)
    for index in range(n):
        top = (index // columns) * (height + padding) + padding
        left = (index % columns) * (width + padding) + padding
        canvas[:, top:top + height, left:left + width] = images[index]
    return canvas


def render(picture: Picture) -> Any:
    """A PIL image of the picture."""
    from PIL import Image

    if picture.kind == "grid":
        return Image.fromarray(picture.array)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if picture.kind == "plot":
        return _drawn(picture)
    points = picture.array
    fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
    ax.scatter(points[:, 0], points[:, 1] if points.shape[1] > 1 else points[:, 0] * 0, s=2, alpha=0.5)
    ax.set_aspect("equal")
    return _png(fig, tight=True)


def _drawn(picture: Picture) -> Any:
    """A 'plot' picture: its function draws on a fresh figure (5×5 inches at 100 dpi unless it resizes it).

    A function that cannot be imported or fails is no reason to lose the run's record: the
    picture then says, in its place, what went wrong.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(5, 5), dpi=100)
    try:
        module, _, name = picture.draw.partition(":")
        getattr(_module(module, picture.origin), name)(fig, **picture.data)
    except Exception as exc:  # noqa: BLE001 - a plugin's drawing code: its failure is shown, not raised
        import sys
        import textwrap

        fig.clf()
        fig.set_size_inches(5, 2)
        message = f"{picture.draw} failed: {type(exc).__name__}: {exc}"
        fig.text(0.02, 0.5, textwrap.fill(" ".join(message.split())[:600], 70), va="center", fontsize=8)
        print(f"ganlab: picture drawn by {message}", file=sys.stderr)
    return _pixels(fig)


def _module(name: str, origin: str) -> Any:
    """The module ``name``: imported, or loaded from ``origin`` (its file in the training process)."""
    import importlib
    import importlib.util
    import sys

    try:
        return importlib.import_module(name)
    except ImportError:
        if not origin:
            raise
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, origin)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {name} from {origin}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _pixels(fig: Any) -> Any:
    """The figure as a PIL image, from the canvas's pixels: no PNG written and read back here, since the
    record encodes it anyway."""
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
    plt.close(fig)
    return Image.fromarray(pixels)


def _png(fig: Any, tight: bool) -> Any:
    import matplotlib.pyplot as plt
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **({"bbox_inches": "tight"} if tight else {}))
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


#: The most frames an animation holds: a longer run's is every k-th evaluation, and the last.
MAX_FRAMES = 200
#: How long each frame is shown, and the last one (milliseconds)
FRAME_MS, LAST_FRAME_MS = 400, 2000


def one_per_step(images: list[Any], key: str) -> list[Any]:
    """The logged images of ``key`` (``ganlab.record.logged_images.LoggedImage``), one per step (the newest
    where a resumed run logged a step twice), in step order: an animation's frames."""
    newest: dict[int, Any] = {}
    for image in images:
        if image.key == key and (image.step not in newest or image.timestamp >= newest[image.step].timestamp):
            newest[image.step] = image
    return [newest[step] for step in sorted(newest)]


def animate(frames: list[Any], out: Any) -> int:
    """Write PIL images, in order, as one looping GIF to ``out`` (a path or a binary file); returns the
    frames written. Frames of different sizes are placed top-left on a white canvas of the largest; a frame
    identical to the one before it is shown as one, held longer (GIF's encoder merges them)."""
    from PIL import Image

    if len(frames) > MAX_FRAMES:
        stride = -(-len(frames) // MAX_FRAMES)
        frames = frames[: len(frames) - 1 : stride] + frames[-1:]
    width = max(frame.width for frame in frames)
    height = max(frame.height for frame in frames)
    canvases: list[Any] = []
    for frame in frames:
        canvas = Image.new("RGB", (width, height), "white")
        canvas.paste(frame.convert("RGB"), (0, 0))
        canvases.append(canvas.quantize(colors=255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
    durations = [FRAME_MS] * (len(canvases) - 1) + [LAST_FRAME_MS]
    canvases[0].save(out, format="GIF", save_all=True, append_images=canvases[1:], duration=durations, loop=0,
                     disposal=1, optimize=False)
    return len(canvases)


@dataclass(frozen=True)
class Scatter:
    """What a sample plot of vector data shows, decided before anything is drawn.

    ``kind`` is 'scatter' (2-D points, or a 2-D projection of more) or 'histogram'
    (1-D data). ``samples`` and ``real`` hold the drawn coordinates (N×2, or N×1 for
    a histogram); ``real`` is None when the real data could not be had. ``note`` says
    what was done to the data to draw it ('' when it is drawn as it is).
    """

    kind: str
    samples: Any
    real: Any
    title: str
    xlabel: str
    ylabel: str
    note: str = ""


def scatter_of(samples: Any, real: Any, run_label: str, step: int | None) -> Scatter:
    """Samples (N×D) and real data (M×D, or None) of a run as a plot: D = 1 histograms,
    D = 2 as they are, D > 2 projected onto the real data's first two principal components.
    """
    import numpy as np

    samples = np.asarray(samples, dtype=np.float64).reshape(len(samples), -1)
    real = None if real is None else np.asarray(real, dtype=np.float64).reshape(len(real), -1)
    dims = samples.shape[1]
    counts = f"{len(samples)} samples" + (f" vs {len(real)} real points" if real is not None else ", no real data")
    title = f"{run_label}, step {'?' if step is None else step}\n{counts}"
    if dims == 1:
        return Scatter("histogram", samples, real, title, "x", "density")
    if dims == 2:
        return Scatter("scatter", samples, real, title, "x[0]", "x[1]")
    basis_of = "real data" if real is not None and len(real) > 2 else "samples"
    mean, axes, shares = _principal_axes(real if basis_of == "real data" else samples)
    project = (lambda x: (x - mean) @ axes.T)
    drawn = "the samples" + ("" if real is None else " and the real data")
    note = (f"the data has {dims} dimensions: the plot shows {drawn} projected onto the first two principal "
            f"components of the {basis_of} ({sum(shares):.0%} of the variance)")
    title += f"\nprojected onto the first 2 principal components of the {basis_of} ({dims}-D)"
    xlabel, ylabel = (f"PC{i + 1} of the {basis_of} ({share:.0%} of variance)" for i, share in enumerate(shares))
    return Scatter("scatter", project(samples), None if real is None else project(real), title, xlabel, ylabel, note)


def _principal_axes(points: Any) -> tuple[Any, Any, list[float]]:
    """(mean, the first two principal axes as rows, the share of the variance along each)."""
    import numpy as np

    mean = points.mean(axis=0)
    _, singular, rows = np.linalg.svd(points - mean, full_matrices=False)
    if len(rows) < 2:  # a single point: no second direction to show
        rows, singular = np.vstack([rows, np.zeros_like(rows)]), np.append(singular, 0.0)
    variance = singular ** 2
    total = float(variance.sum()) or 1.0
    return mean, rows[:2], [float(v) / total for v in variance[:2]]


def render_scatter(plot: Scatter) -> Any:
    """A PIL image of the plot: real data under the samples, in another colour, with a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    real_style = {"color": "tab:blue", "label": "real data" + ("" if plot.real is None else f" ({len(plot.real)})")}
    fake_style = {"color": "tab:orange", "label": f"samples ({len(plot.samples)})"}
    if plot.kind == "histogram":
        bins = 60
        if plot.real is not None:
            ax.hist(plot.real[:, 0], bins=bins, density=True, alpha=0.45, **real_style)
        ax.hist(plot.samples[:, 0], bins=bins, density=True, alpha=0.6, histtype="step", linewidth=1.5, **fake_style)
    else:
        if plot.real is not None:
            ax.scatter(plot.real[:, 0], plot.real[:, 1], s=4, alpha=0.35, linewidths=0, **real_style)
        ax.scatter(plot.samples[:, 0], plot.samples[:, 1], s=4, alpha=0.6, linewidths=0, **fake_style)
        ax.set_aspect("equal", adjustable="datalim")  # both axes in the data's own units
    ax.set_title(plot.title, fontsize=9)
    ax.set_xlabel(plot.xlabel)
    ax.set_ylabel(plot.ylabel)
    ax.legend(loc="best", fontsize=8, markerscale=3, framealpha=0.8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
