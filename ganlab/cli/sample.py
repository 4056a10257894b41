"""``ganlab sample RUN_ID --n N --out FILE``: generated samples from a recorded run, for use outside ganlab.

``ganlab sample RUN_ID --field [--out FILE.gif]``: the run's field pictures (2-D data), logged at each
evaluation, as one animated GIF (``write_field_animation``).

The generator is rebuilt from the run's ``config.toml`` artifact through the
registry (so a third-party architecture needs its ``--plugin`` here too) and
loaded from ``generator.pt`` with ``torch.load(weights_only=True)``, which
refuses pickled code. The data shape comes from the run's ``data.shape``
param, so the dataset is not loaded for images. Samples are drawn the way the
run's own evaluations drew them (the generator in the mode it trained in,
batches of 512), so they match what its metrics measured; ``--seed`` fixes the
noise, which is one stream however the batches fall.

``.npy``: float32 array (N, *shape) in data space, written batch by batch into
a memory-mapped file, so any N that fits on the disk fits in memory.
Conditional runs: ``--class C`` draws every sample of class C; without it the classes
take turns (``.npy``: sample i has class i mod K; ``.png``: one class per row of the grid).

``.png``: images as a square grid; vector data as a scatter plot over the
run's real data (a histogram for 1-D data, a projection onto the real data's
first two principal components beyond 2-D); at most ``MAX_PNG_SAMPLES``.

The output is checked before anything is loaded or generated (extension,
directory, permission: a file is created beside it), written under a
temporary name and renamed into place, so a failure never leaves half a file
under the name asked for.

Over 400 lines on purpose: one command, its formats (PNG, NPY, text), conditional and population
runs, and every refusal of a run it cannot sample.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError
from ganlab.text import as_text_block, decode_samples

SUFFIXES = (".npy", ".png", ".txt")
#: Samples per forward pass: the batch the run's evaluations used (a BatchNorm generator
#: in training mode normalises over the batch, so this is part of what a sample is).
BATCH = 512
#: The most samples a .png shows: a grid of more tiles or a scatter of more points is
#: unreadable (and a grid of millions would not fit in memory). A .npy has no cap but the disk.
MAX_PNG_SAMPLES = 10_000


def sample(
    run_id: Annotated[str, typer.Argument(help="The MLflow run whose generator to sample.")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help=f"How many samples (.png: at most {MAX_PNG_SAMPLES}).")] = 64,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file: .npy (any data, any N), .png (image grid, scatter of vector data over the real data) or .txt (text runs: one decoded sample per line). [default: text runs print their samples; others write samples.npy]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    klass: Annotated[Optional[int], typer.Option("--class", help="Conditional runs: draw every sample of this class (default: the classes in turn; .png: one per row).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    plugin: Annotated[Optional[list[str]], typer.Option("--plugin", "-p", help="Extra plugin providing the run's architecture (repeatable).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
    field: Annotated[bool, typer.Option("--field", help="Instead of samples: the run's field pictures (2-D data; one per evaluation) as an animated GIF, --out (default field.gif).")] = False,
) -> None:
    """Write N samples from a run's generator weights to a .npy array or a .png picture."""
    from ganlab.plugins import load_plugins

    if field:
        write_field_animation(run_id, out if out is not None else Path(FIELD_GIF), tracking_uri)
        return
    suffix = check_output(out, n) if out is not None else None
    partial = reserve(out) if out is not None else None
    try:
        mlflow_client, run = sampled_run(run_id, tracking_uri)
        refuse_unexported(run)
        vocab = text_vocab(mlflow_client, run)
        if out is None and vocab is None:  # the default for non-text runs, checked as --out would be
            out = Path("samples.npy")
            suffix, partial = check_output(out, n), reserve(out)
        check_suffix_fits(suffix, vocab is not None, run_id)
        files = _artifacts(mlflow_client, run, ("config.toml", "generator.pt"))
        plugins = load_plugins(plugin)
        model = _load(run, files, plugins, device)
        labels = requested_labels(model, klass, f"run '{run_id}'",
                                  columns=math.ceil(math.sqrt(n)) if suffix == ".png" else 0)
        if suffix == ".npy":
            check_space(out, partial, n, model.shape)
        # closing: an error or Ctrl-C while writing still ends the progress bar
        with contextlib.closing(sample_batches(model.generator, n, model.latent_dim, seed, labels=labels,
                                               latent=model.latent)) as drawn:
            batches = finite_samples(drawn, run_id)
            if out is None:  # a text run without --out: its samples, decoded, on stdout
                for samples in batches:
                    sys.stdout.write(as_text_block(decode_samples(samples, *vocab)))
                sys.stdout.flush()
                return
            _write(batches, suffix, out, partial, model, run, plugins, n, seed, vocab)
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    print(f"ganlab: wrote {n} samples of shape {tuple(model.shape)} from run {run_id} to {out}", file=sys.stderr)
    scores = headline_scores(run, plugins.registry)
    if scores:
        print(f"ganlab: the run's last evaluation: {scores}", file=sys.stderr)


def headline_scores(run: Any, registry: Any) -> str:
    """The run's final values of the numbers its metrics name as their headline (e.g. images.fld and
    images.kid, inception.fid and inception.is), so the samples come with what they scored."""
    logged = run.data.metrics
    return " ".join(f"{key}={logged[key]:.4g}" for key in registry.headline() if key in logged)


#: ``--field`` without ``--out``; the image key of the field pictures (ganlab_plugins.metrics.head_pictures)
FIELD_GIF, FIELD_KEY = "field.gif", "field"


def write_field_animation(run_id: str, out: Path, tracking_uri: str | None) -> None:
    """The run's field pictures, one per evaluation in step order, as one animated GIF at ``out``: the
    frames of the artifact ``field/animation.gif`` a run writes at its end (see ganlab.record.pictures)."""
    import io

    from PIL import Image

    from ganlab.record.logged_images import logged_images, read_image
    from ganlab.record.pictures import animate, one_per_step

    if out.suffix.lower() != ".gif":
        raise GanlabError(f"cannot write '{out}': --field writes an animated GIF; name a .gif file")
    check_writable(out)
    partial = reserve(out)
    try:
        mlflow_client, run = sampled_run(run_id, tracking_uri)
        images = one_per_step(logged_images(mlflow_client, run), FIELD_KEY)
        if not images:
            raise GanlabError(f"run '{run.info.run_id}' logged no field pictures: they are drawn at each evaluation "
                              "of a run on 2-D data (ring8, grid25, ...) unless it sets pictures = false or "
                              "metric.diagnostics.field = false")
        try:
            frames = animate([Image.open(io.BytesIO(read_image(mlflow_client, run, image))) for image in images],
                             partial)
            os.replace(partial, out)
        except OSError as exc:
            raise GanlabError(f"cannot write '{out}': {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    steps = f"step {images[0].step}" if len(images) == 1 else f"steps {images[0].step} to {images[-1].step}"
    print(f"ganlab: wrote the field of run {run.info.run_id} at {frames} evaluations ({steps}) to {out}",
          file=sys.stderr)


def text_vocab(mlflow_client: Any, run: Any) -> tuple[list[str], str] | None:
    """A text run's vocabulary and joiner (its vocab.json artifact), or None for any other run."""
    from ganlab.record.outputs import VOCAB_FILE

    if run.data.params.get("data.shape", "").count(",") != 1:  # text samples are (L, V); skip the lookup otherwise
        return None
    try:
        path = _artifacts(mlflow_client, run, (VOCAB_FILE,))[VOCAB_FILE]
    except GanlabError:
        return None
    try:
        blob = json.loads(path.read_text())
        return [str(t) for t in blob["vocab"]], str(blob.get("joiner", ""))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GanlabError(f"cannot read the vocabulary {path} of run '{run.info.run_id}': {exc}") from None


def check_suffix_fits(suffix: str | None, text: bool, run_id: str) -> None:
    """.txt is for text runs only, and a picture of token distributions means nothing."""
    if suffix == ".txt" and not text:
        raise GanlabError(f"cannot write .txt: run '{run_id}' does not generate text; use .npy or .png")
    if suffix == ".png" and text:
        raise GanlabError(f"run '{run_id}' generates text: leave out --out to print the samples, or write "
                          f".txt (decoded lines) or .npy (the per-position distributions)")


def sampled_run(run_id: str, tracking_uri: str | None) -> tuple[Any, Any]:
    """The client and the run ``ganlab sample`` reads: the run by id, prefix or ``last``, refused in one
    line when it is deleted or a population's parent (which has no generator of its own)."""
    from ganlab.record.store import client, existing_store, get_run

    uri = existing_store(tracking_uri)
    mlflow_client = client(uri)
    run = get_run(mlflow_client, run_id, uri)
    refuse_deleted(run)
    refuse_population_parent(mlflow_client, run)
    return mlflow_client, run


def refuse_deleted(run: Any) -> None:
    """A deleted run is refused as ``ganlab resume`` refuses it: its artifacts linger until MLflow's
    garbage collection, but samples of a run the user threw away would be taken for a live one's."""
    if run.info.lifecycle_stage == "deleted":
        raise GanlabError(f"run '{run.info.run_id}' is deleted; restore it first (mlflow runs restore)")


def refuse_unexported(run: Any) -> None:
    """A run whose networks were never finite exported none (ganlab.record.outputs.exported_networks);
    one that exported an earlier checkpoint's is sampled with a note saying which step."""
    from ganlab.record.outputs import EXPORT_STEP_TAG, EXPORT_TAG

    if run.data.tags.get(EXPORT_STEP_TAG) == "none":
        raise GanlabError(f"run '{run.info.run_id}' ({run.info.status}) has no generator to sample: "
                          f"{run.data.tags.get(EXPORT_TAG, 'its networks were not finite')}")
    if EXPORT_TAG in run.data.tags:  # samples of an earlier step than the run's last: say so
        print(f"ganlab: note: sampling run '{run.info.run_id}' from step {run.data.tags.get(EXPORT_STEP_TAG, '?')}: "
              f"{run.data.tags[EXPORT_TAG]}", file=sys.stderr)


def refuse_population_parent(mlflow_client: Any, run: Any) -> None:
    """A population's parent run holds no networks: name the child runs that do."""
    from ganlab.train.population.resume import children_of, is_population

    if not is_population(run):
        return
    children = children_of(mlflow_client, run)
    listed = ", ".join(f"seed {seed}: {child.info.run_id}" for seed, child in sorted(children.items())[:8])
    more = f" and {len(children) - 8} more" if len(children) > 8 else ""
    raise GanlabError(f"run '{run.info.run_id}' is the parent of a population (seeds {run.data.tags.get('ganlab.population.seeds')}) "
                      f"and holds no networks; sample one of its child runs ({listed or 'none recorded'}{more})")


def _write(batches: Iterator[Any], suffix: str, out: Path, partial: Path, model: Model, run: Any, plugins: Any,
           n: int, seed: int, vocab: tuple[list[str], str] | None = None) -> None:
    """Write the samples to ``partial``, then rename it to ``out``."""
    try:
        if suffix == ".npy":
            write_npy(batches, partial, n, model.shape)
        elif suffix == ".txt":
            with open(partial, "w", encoding="utf-8") as handle:
                for samples in batches:
                    handle.write(as_text_block(decode_samples(samples, *vocab)))
        else:
            _write_png(batches, model, run, plugins, n, seed, partial)
        os.replace(partial, out)
    except OSError as exc:
        raise GanlabError(f"cannot write '{out}': {exc.strerror or exc}") from None


# ---- the output file, checked before anything else ----------------------------
def check_output(out: Path, n: int) -> str:
    """The output's suffix, once ``out`` is a file name ganlab can write N samples to."""
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise GanlabError(f"cannot write '{out}': unsupported extension '{out.suffix or '(none)'}'; "
                          f"use .npy (any data), .png (images, 2-D points) or .txt (text)")
    if suffix == ".png" and n > MAX_PNG_SAMPLES:
        raise GanlabError(f"--n {n} is above the cap of {MAX_PNG_SAMPLES} samples for a .png (a picture of "
                          f"more is unreadable); write a .npy for more (written in batches, no cap)")
    check_writable(out, suffix)
    return suffix


def check_writable(out: Path, suffix: str = ".gif") -> None:
    """Refuse, in one line, an output path that is a directory, not a regular file, read-only, or in a
    directory that is missing or cannot be written."""
    if out.is_dir():
        raise GanlabError(f"cannot write '{out}': it is a directory; name a file, e.g. {out / ('samples' + suffix)}")
    if out.exists() and not out.is_file():
        raise GanlabError(f"cannot write '{out}': it exists and is not a regular file")
    if out.exists() and not os.access(out, os.W_OK):
        raise GanlabError(f"cannot write '{out}': the file exists and is read-only")
    parent = out.parent
    if not parent.exists():
        raise GanlabError(f"cannot write '{out}': directory {parent} does not exist")
    if not parent.is_dir():
        raise GanlabError(f"cannot write '{out}': {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise GanlabError(f"cannot write '{out}': directory {parent} is not writable")


def reserve(out: Path) -> Path:
    """Create the file the samples are first written to, beside ``out``: the proof that it can be written.

    ``os.access`` can say yes where creating fails (root on /proc, some network file systems).
    """
    partial = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial{out.suffix}"
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise GanlabError(f"cannot write '{out}': cannot create a file in {out.parent}: "
                          f"{exc.strerror or exc}") from None
    return partial


def check_space(out: Path, partial: Path, n: int, shape: tuple[int, ...]) -> None:
    """Refuse a .npy the disk cannot hold (the memory-mapped file would fail part-way)."""
    needed = n * math.prod(shape) * 4 + 4096  # float32, and a generous header
    free = shutil.disk_usage(partial.parent).free
    if needed > free:
        raise GanlabError(f"cannot write '{out}': {n} samples of shape {tuple(shape)} take {_size(needed)}, "
                          f"only {_size(free)} free in {out.parent}; ask for fewer with --n")


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


# ---- the run's generator --------------------------------------------------------
@dataclass
class Model:
    generator: Any
    shape: tuple[int, ...]
    latent_dim: int
    config: Any
    #: ganlab.train.conditioning.Conditioning of a conditional run, else None
    conditioning: Any = None
    #: the run's latent component (None: the plain Gaussian)
    latent: Any = None


def requested_labels(model: Model, klass: int | None, what: str, columns: int = 0) -> Any:
    """``labels(start, size)``: the classes of samples start..start+size-1, or None for an unconditional G.

    With ``klass``: all of that class (refused, in one line, on an unconditional run or out of range).
    Otherwise the classes in turn: per sample, or per row of ``columns`` samples (a picture's grid).
    """
    import torch

    from ganlab.train.conditioning import check_class

    cond = model.conditioning
    if klass is not None:
        check_class(klass, cond, what)
        return lambda start, size: torch.full((size,), klass, dtype=torch.long)
    if cond is None or not cond.generator:
        return None
    if columns:
        return lambda start, size: (torch.arange(start, start + size) // columns) % cond.num_classes
    return lambda start, size: torch.arange(start, start + size) % cond.num_classes


def _artifacts(mlflow_client: Any, run: Any, names: tuple[str, ...]) -> dict[str, Path]:
    """Local paths of the run's artifacts (downloaded when the store is remote)."""
    from ganlab.record.store import local_artifact_dir

    run_id = run.info.run_id
    local = local_artifact_dir(run.info.artifact_uri)
    found: dict[str, Path] = {}
    for name in names:
        path = local / name if local is not None else None
        if path is not None and path.exists() and not path.is_file():  # a FIFO would block, /dev/zero never end
            from ganlab.config import file_kind

            raise GanlabError(f"{name} of run '{run_id}' is {file_kind(path.stat().st_mode)}, not a regular file: "
                              f"{path}")
        if path is None:  # a remote artifact store: download it (a local one holds it or not)
            try:
                path = Path(mlflow_client.download_artifacts(run_id, name))
            except Exception:
                path = None
        if path is None or not path.is_file():
            what = "generator weights" if name == "generator.pt" else "resolved configuration"
            from ganlab.record.archive import why_no_artifacts

            raise GanlabError(f"run '{run_id}' ({run.info.run_name}, {run.info.status}) has no {what} "
                              f"({name}) among its artifacts; "
                              + why_no_artifacts(run, "it may have stopped before writing them"))
        found[name] = path
    return found


def _load(run: Any, files: dict[str, Path], plugins: Any, device: str) -> Model:
    import torch

    from ganlab.config import ConfigBuilder, read_toml
    from ganlab.train.conditioning import Conditioning, build_with_classes, declared
    from ganlab.train.runtime import resolve_device

    builder = ConfigBuilder().add_mapping(read_toml(files["config.toml"]), f"run {run.info.run_id} config.toml")
    config = builder.build(plugins.registry)
    shape = _data_shape(run, config, plugins)
    arch = plugins.registry.get("architecture", config.name_of("arch")).create(config.options_of("arch"))
    head = plugins.registry.get("head", config.name_of("head")).create(config.options_of("head"))
    try:
        num_logits = int(head.num_logits(1))  # D's width only; the generator does not depend on it
    except Exception:
        num_logits = 1
    takes_labels = declared(arch)
    conditioning = Conditioning(_num_classes(run, config, plugins), *takes_labels) if any(takes_labels) else None
    generator, _ = build_with_classes(arch.build, conditioning)(shape, config.latent_dim, num_logits)
    try:
        state = torch.load(files["generator.pt"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanlabError(f"cannot read {files['generator.pt']}: {type(exc).__name__}: {exc}") from None
    check_finite_weights(run, state)
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GanlabError(f"generator.pt of run '{run.info.run_id}' does not fit architecture "
                          f"'{config.name_of('arch')}' as configured: {first}") from None
    from ganlab.train.build import make_latent

    latent = make_latent(plugins, config, {})
    return Model(generator.to(resolve_device(device)), shape, config.latent_dim, config, conditioning, latent)


def check_finite_weights(run: Any, state: Any) -> None:
    """Refuse a generator.pt holding NaN or Inf (a diverged run exported by an older ganlab): every
    sample would be NaN, written with exit 0 as if it were data."""
    from ganlab.record.outputs import finite_state

    if isinstance(state, dict) and not finite_state(state):
        step = run.data.tags.get("ganlab.failed_step")
        why = f"; the run diverged at step {step}" if step else ""
        raise GanlabError(f"generator.pt of run '{run.info.run_id}' ({run.info.status}) holds non-finite weights "
                          f"(NaN or Inf){why}; no samples written")


def _num_classes(run: Any, config: Any, plugins: Any) -> int:
    """The classes a conditional run was trained on: its data card, else the dataset."""
    text = run.data.params.get("data.num_classes")
    if text and text.isdigit() and int(text) >= 2:
        return int(text)
    return int(getattr(_dataset(config, plugins), "num_classes", 0) or 0)


def _data_shape(run: Any, config: Any, plugins: Any) -> tuple[int, ...]:
    text = run.data.params.get("data.shape")
    if text:
        try:
            return tuple(int(v) for v in json.loads(text))
        except (ValueError, TypeError):
            pass
    # an older run without its data card: ask the dataset (slower)
    return tuple(_dataset(config, plugins).shape)


def _dataset(config: Any, plugins: Any) -> Any:
    from ganlab.train.build import create, load_data
    from ganlab.data import DataRequest, default_cache_dir

    component, dataset = create(plugins, config, "dataset")
    request = DataRequest(root=Path(config.data_root), download=False, seed=config.seed)
    data, _ = load_data(component, dataset, config.options_of("dataset"), request, default_cache_dir())
    return data


# ---- generating and writing -------------------------------------------------------
def sample_batches(generator: Any, n: int, latent_dim: int, seed: int, batch: int = BATCH,
                   labels: Any = None, latent: Any = None) -> Iterator[Any]:
    """N samples as CPU float tensors of up to ``batch`` each, with progress on stderr.

    The noise is one stream from ``seed``: torch draws the same normal numbers for
    ``randn(a)`` then ``randn(b)`` as for ``randn(a + b)`` when ``a`` is a multiple of 16, and
    every batch but the last holds ``batch × latent_dim`` numbers, a multiple of 512.
    ``labels(start, size)``: a conditional generator's classes for each batch (None: G(z));
    ``latent``: the run's latent component (None: the plain Gaussian, drawn here as it draws).
    """
    import torch

    noise_gen = torch.Generator().manual_seed(seed)
    target = next(generator.parameters()).device
    progress = Progress(n) if n > batch else None
    try:
        for start in range(0, n, batch):
            size = min(batch, n - start)
            noise = torch.randn(size, latent_dim, generator=noise_gen).to(target) if latent is None else \
                latent.sample(size, latent_dim, target, noise_gen)
            with torch.no_grad():
                if labels is None:
                    samples = generator(noise).float().cpu()
                else:
                    samples = generator(noise, labels(start, size).to(target)).float().cpu()
            yield samples
            if progress is not None:
                progress.update(start + size)
    finally:
        if progress is not None:
            progress.close()


def finite_samples(batches: Iterator[Any], run_id: str) -> Iterator[Any]:
    """The batches, refused at the first one holding NaN or Inf (finite weights can still overflow):
    an array of NaN is no sample, and whatever reads it would fail far from the cause."""
    import torch

    done = 0
    for samples in batches:
        if not bool(torch.isfinite(samples).all()):
            raise GanlabError(f"the generator of run '{run_id}' produced non-finite samples (NaN or Inf) among "
                              f"samples {done + 1} to {done + len(samples)}; no samples written")
        done += len(samples)
        yield samples


class Progress:
    """How far a long sampling is, on stderr: a bar on a terminal, else a plain line per tenth done."""

    def __init__(self, total: int) -> None:
        self.total, self.started, self.tenths = total, time.monotonic(), 0
        self.bar: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self.bar = Bar(TextColumn("sampling"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                           TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("sampling", total=total)

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)
            return
        tenths = done * 10 // self.total
        if tenths > self.tenths:
            self.tenths = tenths
            elapsed = time.monotonic() - self.started
            eta = elapsed * (self.total - done) / done
            print(f"ganlab: sampled {done}/{self.total} ({done * 100 // self.total}%) in {elapsed:.1f}s, "
                  f"ETA {eta:.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_npy(batches: Iterator[Any], path: Path, n: int, shape: tuple[int, ...]) -> None:
    """Write the batches into a memory-mapped float32 .npy of shape (n, *shape): memory stays one batch."""
    import numpy as np

    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, *shape))
    start = 0
    for batch in batches:
        array[start:start + len(batch)] = batch.numpy()
        start += len(batch)
    array.flush()
    del array  # closes the mapping before the file is renamed


def _write_png(batches: Iterator[Any], model: Model, run: Any, plugins: Any, n: int, seed: int, out: Path) -> None:
    import torch

    samples = torch.cat(list(batches))
    shape = model.shape
    if len(shape) == 3:
        from PIL import Image
        from torchvision.utils import make_grid

        nrow = max(1, math.ceil(math.sqrt(len(samples))))
        grid = make_grid(samples.clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
        array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array if shape[0] == 3 else array[:, :, 0]).save(out, format="PNG")
        return
    if len(shape) == 1:
        from ganlab.record.pictures import render_scatter, scatter_of

        plot = scatter_of(samples.numpy(), _real_points(model.config, plugins, n, seed), run_label(run),
                          run_step(run))
        if plot.note:
            print(f"ganlab: note: {plot.note}", file=sys.stderr)
        render_scatter(plot).save(out, format="PNG")
        return
    raise GanlabError(f"cannot draw samples of shape {shape} as .png; use .npy")


def _real_points(config: Any, plugins: Any, n: int, seed: int) -> Any:
    """Up to N points of the run's training data (a seeded random subset), or None when it cannot be had."""
    import torch

    from ganlab.data import StreamingData

    try:
        data = _dataset(config, plugins)
    except GanlabError as exc:
        print(f"ganlab: note: the plot shows no real data: {exc}", file=sys.stderr)
        return None
    if isinstance(data, StreamingData):
        data = data.preview
        if data is None:
            print("ganlab: note: the plot shows no real data: the dataset streams and has no preview",
                  file=sys.stderr)
            return None
    chosen = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(seed))[:n]
    return data.x[chosen].float().reshape(len(chosen), -1).numpy()


def run_label(run: Any) -> str:
    """'run NAME (ID)': what a picture of the run calls it."""
    return f"run {run.info.run_name} ({run.info.run_id})"


def run_step(run: Any) -> int | None:
    """The step the run's weights are from: the last it recorded, else its planned steps."""
    for text in (run.data.tags.get("ganlab.step"), run.data.params.get("steps")):
        if text and text.isdigit():
            return int(text)
    return None


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
