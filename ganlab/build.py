"""From a validated configuration to the pieces a training loop needs.

Nothing here trains; it instantiates components, loads data (through the
on-disk cache), builds and places the networks, and makes the optimisers.
Every refusal happens here, before a tracking run exists.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganlab.config import RunConfig
from ganlab.data import (
    DataRequest,
    StreamingData,
    TensorData,
    cache_key,
    default_cache_dir,
    load_cached,
    save_cached,
)
from ganlab.errors import ComponentError, GanlabError
from ganlab.plugins import PluginManager
from ganlab.registry import Component


@dataclass
class Built:
    config: RunConfig
    device: Any
    components: dict[str, Component]
    dataset: Any
    data: TensorData | StreamingData
    head: Any
    objective: Any
    architecture: Any
    num_classes: int
    num_logits: int
    generator: Any
    discriminator: Any
    opt_g: Any
    opt_d: Any
    cache_hit: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    # distributed runs: the (G, D) DDP wrappers the step functions train through (ganlab.distributed.wrap)
    wrapped: tuple[Any, Any] | None = None


def create(plugins: PluginManager, config: RunConfig, section: str) -> tuple[Component, Any]:
    from ganlab.config import SECTIONS

    component = plugins.registry.get(SECTIONS[section], config.name_of(section))
    return component, component.create(config.options_of(section))


def load_data(component: Component, dataset: Any, options: dict[str, Any], request: DataRequest,
              cache_dir: Path | None) -> tuple[TensorData | StreamingData, bool]:
    """Load a dataset, using the on-disk cache of its converted tensor when allowed."""
    cacheable = bool(getattr(dataset, "cacheable", False)) and cache_dir is not None
    path = None
    if cacheable:
        version = component.provenance.version or "0"
        keyed = {**options, "root": str(request.root.resolve())}
        token = getattr(dataset, "cache_token", None)
        if callable(token):  # data whose content can change under the same options (a folder)
            keyed["content"] = token(request)
        key = cache_key(component.name, keyed, version)
        path = cache_dir / f"{key}.pt"
        cached = load_cached(path)
        if cached is not None:
            print(f"ganlab: dataset '{component.name}' loaded from cache {path}", file=sys.stderr)
            return cached, True
    try:
        data = dataset.load(request)
    except GanlabError:
        raise
    except Exception as exc:
        raise GanlabError(
            f"dataset '{component.name}' (plugin '{component.provenance.plugin}') failed to load: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    if not isinstance(data, (TensorData, StreamingData)):
        raise ComponentError(
            f"dataset '{component.name}' returned {type(data).__name__}; expected ganlab.data.TensorData or StreamingData"
        )
    if isinstance(data, TensorData) and len(data) == 0:
        raise GanlabError(f"dataset '{component.name}' is empty")
    if path is not None and isinstance(data, TensorData):
        save_cached(path, data)
    return data, False


def build(plugins: PluginManager, config: RunConfig) -> Built:
    import torch

    from ganlab.runtime import resolve_device, seed_everything

    device = resolve_device(config.device)
    if config.precision == "fp16" and device.type != "cuda":
        raise GanlabError("precision fp16 needs a CUDA device (on CPU use bf16 or fp32)")
    seed_everything(config.seed, config.deterministic)

    components: dict[str, Component] = {}
    made: dict[str, Any] = {}
    for section in ("dataset", "head", "loss", "arch"):
        components[section], made[section] = create(plugins, config, section)

    request = DataRequest(root=Path(config.data_root), download=config.download, seed=config.seed)
    data, hit = load_data(components["dataset"], made["dataset"], config.options_of("dataset"), request,
                          default_cache_dir())
    head, objective, arch = made["head"], made["loss"], made["arch"]

    if hasattr(objective, "check"):
        objective.check(config.name_of("head"), head, data)
    num_classes = int(objective.num_classes(data)) if hasattr(objective, "num_classes") else 1
    try:
        num_logits = int(head.num_logits(num_classes))
    except ComponentError as exc:
        raise ComponentError(f"head '{config.name_of('head')}' with loss '{config.name_of('loss')}': {exc}") from None

    shape = tuple(data.shape)
    generator, discriminator = arch.build(shape, config.latent_dim, num_logits)
    for role, net in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(net, torch.nn.Module):
            raise ComponentError(f"architecture '{config.name_of('arch')}' returned a {type(net).__name__} as {role}; expected a torch.nn.Module")
    check_samplewise(config.name_of("arch"), arch, discriminator)
    memory_format = torch.channels_last if (device.type == "cuda" and getattr(arch, "convolutional", False)) else torch.preserve_format
    generator = generator.to(device=device, memory_format=memory_format)
    discriminator = discriminator.to(device=device, memory_format=memory_format)
    if isinstance(data, TensorData):
        data = data.to(device)

    betas = (config.beta1, config.beta2)
    opt_g = make_adam(generator, config.lr_g, betas, device)
    opt_d = make_adam(discriminator, config.lr_d, betas, device)

    metric_components = select_metrics(plugins, config)
    metrics = {c.name: c.create(config.metric_options.get(c.name, {})) for c in metric_components}
    return Built(config, device, components, made["dataset"], data, head, objective, arch, num_classes,
                 num_logits, generator, discriminator, opt_g, opt_d, hit, metrics)


def scores_samples_independently(arch: Any) -> bool:
    """Does the architecture declare that D scores each sample on its own?

    Then the D step scores the real and the fake batch in one call. An
    architecture whose D has batch statistics (BatchNorm, minibatch features)
    must not declare it: one call would mix the real and fake batches'
    statistics. ``check_samplewise`` refuses the declaration on a D with BatchNorm.
    """
    return bool(getattr(arch, "samplewise_discriminator", False))


def check_samplewise(name: str, arch: Any, discriminator: Any) -> None:
    """Refuse ``samplewise_discriminator`` on a D that keeps batch statistics.

    The declaration makes the D step score real and fake samples in one call
    (``ganlab.engine``); BatchNorm would then normalise them together, which
    changes the game rather than just its speed.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    if not scores_samples_independently(arch):
        return
    batchnorm = [n for n, m in discriminator.named_modules() if isinstance(m, _BatchNorm)]
    if batchnorm:
        raise ComponentError(
            f"architecture '{name}' declares samplewise_discriminator = True but its discriminator has "
            f"BatchNorm ({', '.join(batchnorm[:3])}), whose statistics depend on the whole batch; "
            "remove the declaration or the BatchNorm layers"
        )


def make_adam(net: Any, lr: float, betas: tuple[float, float], device: Any) -> Any:
    """Adam, fused where torch has the kernel: CUDA, and the CPU since torch 2.4.

    The fused kernel updates all of a network's parameters in one pass instead
    of about ten tensor operations per parameter; on a 2-core CPU it makes
    the article's MLP step about 10 % faster (docs/benchmarks.md).
    """
    import torch

    if device.type in ("cuda", "cpu"):
        try:
            return torch.optim.Adam(net.parameters(), lr=lr, betas=betas, fused=True)
        except RuntimeError:  # no fused kernel for this device in this torch
            pass
    return torch.optim.Adam(net.parameters(), lr=lr, betas=betas)


def select_metrics(plugins: PluginManager, config: RunConfig) -> list[Component]:
    names = config.metric_names
    if names is None:
        return plugins.registry.of_kind("metric")
    return [plugins.registry.get("metric", name) for name in names]
