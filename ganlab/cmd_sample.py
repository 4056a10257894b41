"""``ganlab sample RUN_ID --n N --out FILE``: generated samples from a recorded run, for use outside ganlab.

The generator is rebuilt from the run's ``config.toml`` artifact through the
registry (so a third-party architecture needs its ``--plugin`` here too) and
loaded from ``generator.pt`` with ``torch.load(weights_only=True)``, which
refuses pickled code. The data shape comes from the run's ``data.shape``
param, so the dataset is not loaded. Samples are drawn the way the run's own
evaluations drew them (the generator in the mode it trained in, batches of
512), so they match what its metrics measured; ``--seed`` fixes the noise.

``.npy``: float32 array (N, *shape) in data space, [-1, 1]. ``.png``: images
as a square grid; 2-D points as a scatter plot.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganlab.errors import GanlabError

SUFFIXES = (".npy", ".png")


def sample(
    run_id: Annotated[str, typer.Argument(help="The MLflow run whose generator to sample.")],
    n: Annotated[int, typer.Option("--n", "-n", min=1, help="How many samples.")] = 64,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file: .npy (any data) or .png (image grid, 2-D scatter).")] = Path("samples.npy"),
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    plugin: Annotated[Optional[list[str]], typer.Option("--plugin", "-p", help="Extra plugin providing the run's architecture (repeatable).")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(help="MLflow tracking URI. [default: sqlite:///mlruns/mlflow.db]")] = None,
) -> None:
    """Write N samples from a run's generator weights to a .npy array or a .png grid."""
    from ganlab.cli import load_plugins
    from ganlab.compare_store import client, existing_store, get_run

    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise GanlabError(f"cannot write '{out}': unsupported extension '{out.suffix or '(none)'}'; "
                          f"use .npy (any data) or .png (images, 2-D points)")
    if not out.parent.exists():
        raise GanlabError(f"cannot write '{out}': directory {out.parent} does not exist")
    uri = existing_store(tracking_uri)
    mlflow_client = client(uri)
    run = get_run(mlflow_client, run_id, uri)
    files = _artifacts(mlflow_client, run, ("config.toml", "generator.pt"))
    plugins = load_plugins(plugin)
    generator, shape, latent_dim = _generator(run, files, plugins, device)
    samples = _generate(generator, n, latent_dim, seed, device)
    if suffix == ".npy":
        import numpy as np

        np.save(out, samples.numpy().astype("float32"))
    else:
        _write_png(samples, shape, out)
    print(f"ganlab: wrote {n} samples of shape {tuple(shape)} from run {run_id} to {out}", file=sys.stderr)


def _artifacts(mlflow_client: Any, run: Any, names: tuple[str, ...]) -> dict[str, Path]:
    """Local paths of the run's artifacts (downloaded when the store is remote)."""
    from ganlab.tracking import local_artifact_dir

    run_id = run.info.run_id
    local = local_artifact_dir(run.info.artifact_uri)
    found: dict[str, Path] = {}
    for name in names:
        path = local / name if local is not None else None
        if path is None or not path.is_file():
            try:
                path = Path(mlflow_client.download_artifacts(run_id, name))
            except Exception:
                path = None
        if path is None or not path.is_file():
            what = "generator weights" if name == "generator.pt" else "resolved configuration"
            raise GanlabError(f"run '{run_id}' ({run.info.run_name}, {run.info.status}) has no {what} "
                              f"({name}) among its artifacts; it may have stopped before writing them")
        found[name] = path
    return found


def _generator(run: Any, files: dict[str, Path], plugins: Any, device: str) -> tuple[Any, tuple[int, ...], int]:
    import torch

    from ganlab.config import ConfigBuilder, read_toml
    from ganlab.runtime import resolve_device

    builder = ConfigBuilder().add_mapping(read_toml(files["config.toml"]), f"run {run.info.run_id} config.toml")
    config = builder.build(plugins.registry)
    shape = _data_shape(run, config, plugins)
    arch = plugins.registry.get("architecture", config.name_of("arch")).create(config.options_of("arch"))
    head = plugins.registry.get("head", config.name_of("head")).create(config.options_of("head"))
    try:
        num_logits = int(head.num_logits(1))  # D's width only; the generator does not depend on it
    except Exception:
        num_logits = 1
    generator, _ = arch.build(shape, config.latent_dim, num_logits)
    try:
        state = torch.load(files["generator.pt"], map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanlabError(f"cannot read {files['generator.pt']}: {type(exc).__name__}: {exc}") from None
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise GanlabError(f"generator.pt of run '{run.info.run_id}' does not fit architecture "
                          f"'{config.name_of('arch')}' as configured: {first}") from None
    return generator.to(resolve_device(device)), shape, config.latent_dim


def _data_shape(run: Any, config: Any, plugins: Any) -> tuple[int, ...]:
    text = run.data.params.get("data.shape")
    if text:
        try:
            return tuple(int(v) for v in json.loads(text))
        except (ValueError, TypeError):
            pass
    # an older run without its data card: ask the dataset (slower)
    from ganlab.build import create, load_data
    from ganlab.data import DataRequest, default_cache_dir

    component, dataset = create(plugins, config, "dataset")
    request = DataRequest(root=Path(config.data_root), download=False, seed=config.seed)
    data, _ = load_data(component, dataset, config.options_of("dataset"), request, default_cache_dir())
    return tuple(data.shape)


def _generate(generator: Any, n: int, latent_dim: int, seed: int, device: str) -> Any:
    import torch

    noise_gen = torch.Generator().manual_seed(seed)
    target = next(generator.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, n, 512):
            size = min(512, n - start)
            noise = torch.randn(size, latent_dim, generator=noise_gen).to(target)
            chunks.append(generator(noise).float().cpu())
    return torch.cat(chunks)


def _write_png(samples: Any, shape: tuple[int, ...], out: Path) -> None:
    if len(shape) == 3:
        from PIL import Image
        from torchvision.utils import make_grid

        nrow = max(1, math.ceil(math.sqrt(len(samples))))
        grid = make_grid(samples.clamp(-1, 1), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
        array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(array if shape[0] == 3 else array[:, :, 0]).save(out)
        return
    if shape == (2,) or (len(shape) == 1 and shape[0] >= 1):
        from ganlab.pictures import render_samples

        render_samples(samples).save(out)
        return
    raise GanlabError(f"cannot draw samples of shape {shape} as .png; use .npy")


def register(app: typer.Typer) -> None:
    app.command("sample")(sample)
