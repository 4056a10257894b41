"""From a validated configuration to the pieces a training loop needs.

Nothing here trains; it instantiates components, loads data (through the
on-disk cache), builds and places the networks, and makes the optimisers.
Every refusal happens here, before a tracking run exists.

Over 400 lines on purpose: every component of a run is made, and every check between components
made, here, in the order a run needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ganlab.config import RunConfig
from ganlab.contracts import check_dataset_data, check_head_outputs, dataset_data_problem
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
from ganlab.train.memory import check_step

T = TypeVar("T")


class PluginFailed(ComponentError):
    """A component's method raised: the line names the component, its plugin and the method."""


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
    # distributed runs: the (G, D) DDP wrappers the step functions train through (ganlab.dist.wrap)
    wrapped: tuple[Any, Any] | None = None
    #: the registered metric components, by name (whose plugin a failing metric comes from)
    metric_components: dict[str, Component] = field(default_factory=dict)
    #: D's regularisers and the augmentations of D's inputs, in the order the configuration lists them
    regularizers: list[Regularizer] = field(default_factory=list)
    augmentations: list[tuple[Component, Any]] = field(default_factory=list)
    #: what plugin-registered optimisers' factories made, by name (the built-in ones are not here)
    optimizers: dict[str, Any] = field(default_factory=dict)
    #: class-conditional runs: which networks take labels, and how many classes (None: unconditional)
    conditioning: Any = None
    #: what G is fed (``latent`` component; ``sample(n, latent_dim, device, generator)``)
    latent: Any = None
    #: a network the objective trains with D on D's features (InfoGAN's Q head), or None
    auxiliary: Any = None


def make_optimizer_plugins(plugins: PluginManager, config: RunConfig) -> dict[str, Any]:
    """Name -> the optimiser component made, for each one the run uses (built-ins take no table)."""
    names = dict.fromkeys([config.optimizer_g, config.optimizer_d, *config.optimizer_options])
    return {name: plugins.registry.get("optimizer", name).create(config.optimizer_options.get(name, {}))
            for name in names}


@dataclass
class Regularizer:
    """A regulariser in use: its component, what its factory made, and the engine's options."""

    name: str
    component: Component
    made: Any
    weight: float
    every: int

    def due(self, step: int) -> bool:
        return step % self.every == 0

    @property
    def penalises(self) -> bool:
        return callable(getattr(self.made, "penalty", None))


def make_regularizers(plugins: PluginManager, config: RunConfig) -> list[Regularizer]:
    out = []
    for name, options in config.regularizers.items():
        component = plugins.registry.get("regularizer", name)
        made = component.create(options)
        out.append(Regularizer(name, component, made, float(options.get("weight", 1.0)),
                               int(options.get("every", 1))))
    return out


def make_augmentations(plugins: PluginManager, config: RunConfig,
                       data_shape: tuple[int, ...]) -> list[tuple[Component, Any]]:
    out = []
    for name, options in config.augmentations.items():
        component = plugins.registry.get("augmentation", name)
        made = component.create(options)
        if hasattr(made, "check"):  # e.g. an image augmentation on 2-D points
            call_plugin(component, "check", made.check, data_shape)
        out.append((component, made))
    return out


def composed_augmentation(augmentations: list[tuple[Component, Any]]) -> Callable[..., Any] | None:
    """The augmentations applied in order, as ``f(x, generator)``; None when there are none."""
    if not augmentations:
        return None

    def augment(x: Any, generator: Any = None) -> Any:
        for _, made in augmentations:
            x = made.augment(x, generator)
        return x

    return augment


def make_latent(plugins: PluginManager, config: RunConfig, components: dict[str, Component]) -> Any:
    """The run's latent (``--latent``), checked against the latent size; the engine's own N(0, I) when
    the default ``gaussian`` is not registered (a plugin manager without the built-ins)."""
    name = config.name_of("latent")
    if name not in plugins.registry.names("latent"):
        from ganlab.train.noise import StandardNormal

        return StandardNormal()
    components["latent"], latent = create(plugins, config, "latent")
    if hasattr(latent, "check"):
        call_plugin(components["latent"], "check", latent.check, config.latent_dim)
    return latent


def create(plugins: PluginManager, config: RunConfig, section: str) -> tuple[Component, Any]:
    from ganlab.config import SECTIONS

    component = plugins.registry.get(SECTIONS[section], config.name_of(section))
    return component, component.create(config.options_of(section))


def call_plugin(component: Component, method: str, function: Callable[..., T], *args: Any,
                failed: str | None = None) -> T:
    """Call a component's method; anything but a GanlabError it raises becomes one line naming whose it is.

    A plugin's exception is a fault of that plugin, not of ganlab: the user needs
    the component, the plugin, the method and what it said, not a traceback.
    ``failed`` words the failure (default: "failed in METHOD()").
    """
    try:
        return function(*args)
    except GanlabError:
        raise
    except (Exception, SystemExit) as exc:  # SystemExit: a plugin calling sys.exit() must not end ganlab silently
        raise PluginFailed(
            f"{component.kind} '{component.name}' (plugin '{component.provenance.plugin}') "
            f"{failed or f'failed in {method}()'}: {type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'}"
        ) from exc


def check_text_pairing(plugins: PluginManager, config: RunConfig, arch: Any, is_text: bool) -> None:
    """Token sequences need a network that emits and reads distributions over a vocabulary, and such a
    network has nothing to say about images or points: refuse either mismatch before anything is built
    (a dataset registered with ``text=True`` is checked before it loads, any other once it has)."""
    if is_text == bool(getattr(arch, "text", False)):
        return
    arch_name, dataset = config.name_of("arch"), config.name_of("dataset")
    text_archs = [n for n in plugins.registry.names("architecture")
                  if plugins.registry.get("architecture", n).metadata.get("text")]
    if is_text:
        raise ComponentError(
            f"architecture '{arch_name}' generates images or vectors, but dataset '{dataset}' holds token "
            f"sequences; use a text architecture: {', '.join(text_archs) or 'none is installed'}")
    other = [n for n in plugins.registry.names("architecture") if n not in text_archs]
    raise ComponentError(
        f"architecture '{arch_name}' generates token sequences, but dataset '{dataset}' is not text; use it with "
        f"a text dataset, or pick one of: {', '.join(other)}")


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
            keyed["content"] = call_plugin(component, "cache_token", token, request)
        key = cache_key(component.name, keyed, version)
        path = cache_dir / f"{key}.pt"
        cached = load_cached(path)
        if cached is not None and dataset_data_problem(cached) is not None:
            cached = None  # written before the contract was checked: loaded afresh, and refused if still bad
        if cached is not None:
            print(f"ganlab: dataset '{component.name}' loaded from cache {path}", file=sys.stderr)
            return cached, True
    data = call_plugin(component, "load", dataset.load, request, failed="failed to load")
    if not isinstance(data, (TensorData, StreamingData)):
        raise ComponentError(
            f"dataset '{component.name}' returned {type(data).__name__}; expected ganlab.data.TensorData or StreamingData"
        )
    if isinstance(data, TensorData) and len(data) == 0:
        raise GanlabError(f"dataset '{component.name}' is empty")
    check_dataset_data(component.name, component.provenance.plugin, data)
    if path is not None and isinstance(data, TensorData):
        save_cached(path, data)
    return data, False


def build(plugins: PluginManager, config: RunConfig) -> Built:
    import torch

    from ganlab.train.runtime import resolve_device, seed_everything

    plugins.configure_run(config)
    device = resolve_device(config.device)
    if config.precision == "fp16" and device.type != "cuda":
        raise GanlabError("precision fp16 needs a CUDA device (on CPU use bf16 or fp32)")
    seed_everything(config.seed, config.deterministic)

    components: dict[str, Component] = {}
    made: dict[str, Any] = {}
    for section in ("dataset", "head", "loss", "arch"):
        components[section], made[section] = create(plugins, config, section)
    latent = make_latent(plugins, config, components)

    if components["dataset"].metadata.get("text"):  # before minutes of generating an oracle's sequences
        check_text_pairing(plugins, config, made["arch"], True)
    request = DataRequest(root=Path(config.data_root), download=config.download, seed=config.seed,
                          batch_size=config.batch_size)
    data, hit = load_data(components["dataset"], made["dataset"], config.options_of("dataset"), request,
                          default_cache_dir())
    head, objective, arch = made["head"], made["loss"], made["arch"]

    loss, architecture = components["loss"], components["arch"]
    if hasattr(objective, "check"):
        call_plugin(loss, "check", objective.check, config.name_of("head"), head, data)
    if hasattr(objective, "use_latent"):  # e.g. InfoGAN: the codes it must recover
        call_plugin(loss, "use_latent", objective.use_latent, config.name_of("latent"), latent)
    num_classes = int(call_plugin(loss, "num_classes", objective.num_classes, data)) \
        if hasattr(objective, "num_classes") else 1
    try:
        num_logits = int(call_plugin(components["head"], "num_logits", head.num_logits, num_classes))
    except PluginFailed:
        raise
    except ComponentError as exc:
        raise ComponentError(f"head '{config.name_of('head')}' with loss '{config.name_of('loss')}': {exc}") from None
    check_head_outputs(config.name_of("head"), components["head"].provenance.plugin, head, num_logits, num_classes)

    check_text_pairing(plugins, config, arch, getattr(data, "vocab", None) is not None)
    shape = tuple(data.shape)
    from ganlab.train import conditioning as cond
    from ganlab.train import packing  # PacGAN: with pack > 1, D is built for packs (pack 1: unchanged)

    conditioning = cond.conditioning_for(arch, config.name_of("arch"), data, config.name_of("dataset"),
                                         config.fake_labels, made["dataset"])
    check_conditioning(config, objective, conditioning)
    packing.check_pack(config.pack, config.batch_size, len(data), num_classes, config.name_of("loss"))
    arch_build = cond.build_with_classes(arch.build, conditioning)
    networks = packing.build_networks(
        lambda built_for: call_plugin(architecture, "build", arch_build, built_for, config.latent_dim, num_logits),
        shape, config.pack)
    if not (isinstance(networks, (tuple, list)) and len(networks) == 2):
        raise ComponentError(f"architecture '{config.name_of('arch')}' build() returned {type(networks).__name__}; "
                             "expected a (generator, discriminator) pair of torch.nn.Module")
    generator, discriminator = networks
    for role, net in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(net, torch.nn.Module):
            raise ComponentError(f"architecture '{config.name_of('arch')}' returned a {type(net).__name__} as {role}; expected a torch.nn.Module")
    check_samplewise(config.name_of("arch"), arch, discriminator)
    memory_format = torch.channels_last if (device.type == "cuda" and getattr(arch, "convolutional", False)) else torch.preserve_format
    generator = generator.to(device=device, memory_format=memory_format)
    discriminator = discriminator.to(device=device, memory_format=memory_format)
    if isinstance(data, TensorData):
        data = data.to(device)
    optimizers = make_optimizer_plugins(plugins, config)
    check_step(config, device, generator, discriminator, data, optimizers, conditioning)
    auxiliary = make_auxiliary(config, loss, objective, discriminator, device)

    opt_g = make_optimizer(config.optimizer_g, generator.parameters(), config.lr_g, config,
                           optimizers[config.optimizer_g])
    d_params = [*discriminator.parameters(), *(auxiliary.parameters() if auxiliary is not None else ())]
    opt_d = make_optimizer(config.optimizer_d, d_params, config.lr_d, config, optimizers[config.optimizer_d])

    metric_components = select_metrics(plugins, config)
    metrics = {c.name: c.create(config.metric_options.get(c.name, {})) for c in metric_components}
    regularizers = make_regularizers(plugins, config)
    penalties = [r.name for r in regularizers if r.penalises]
    if config.compile and penalties:
        raise GanlabError(f"--compile cannot train regularizer '{penalties[0]}': a gradient penalty differentiates "
                          "twice, which torch.compile does not support; drop --compile or the regularizer")
    if hasattr(objective, "check_regularizers"):  # e.g. wasserstein: an unconstrained critic
        call_plugin(loss, "check_regularizers", objective.check_regularizers, [r.name for r in regularizers])
    return Built(config, device, components, made["dataset"], data, head, objective, arch, num_classes,
                 num_logits, generator, discriminator, opt_g, opt_d, hit, metrics,
                 metric_components={c.name: c for c in metric_components},
                 regularizers=regularizers, augmentations=make_augmentations(plugins, config, shape),
                 optimizers=optimizers, conditioning=conditioning, latent=latent, auxiliary=auxiliary)


def make_auxiliary(config: RunConfig, loss: Component, objective: Any, discriminator: Any, device: Any) -> Any:
    """The objective's network on D's features (``auxiliary_network(feature_dim)``: InfoGAN's Q), on the
    run's device, or None. D must expose ``features(x)`` and ``feature_dim``; the network trains with D's
    optimiser and is checkpointed with the run (a distributed run refuses it: ganlab.dist.wrap)."""
    import torch

    if not callable(getattr(objective, "auxiliary_network", None)):
        return None
    name, arch = config.name_of("loss"), config.name_of("arch")
    if not (callable(getattr(discriminator, "features", None)) and getattr(discriminator, "feature_dim", None)):
        why = " (a packed D scores packs, not samples)" if config.pack > 1 else ""
        raise GanlabError(f"loss '{name}' reads D's features, but architecture '{arch}'{why} does not expose them: "
                          "its discriminator needs features(x) and feature_dim (docs/plugins.md, \"Latents\")")
    network = call_plugin(loss, "auxiliary_network", objective.auxiliary_network, int(discriminator.feature_dim))
    if not isinstance(network, torch.nn.Module):
        raise ComponentError(f"loss '{name}' auxiliary_network() returned a {type(network).__name__}, "
                             "not a torch.nn.Module")
    return network.to(device)


def check_conditioning(config: RunConfig, objective: Any, conditioning: Any) -> None:
    """Refuse, in one line, what a conditional run cannot do, and an objective that needs one without it."""
    loss = config.name_of("loss")
    if getattr(objective, "needs_conditional_generator", False) and (conditioning is None or not conditioning.generator):
        follow = " and arch.projection=false (its D must not be given the class)" \
            if getattr(objective, "predicts_classes", False) else ""
        raise GanlabError(f"loss '{loss}' trains a class-conditional generator: use an architecture with "
                          f"arch.conditional=true{follow} (the built-in mlp, dcgan and sngan have them) on a labelled dataset")
    if conditioning is None:
        return
    if getattr(objective, "predicts_classes", False) and conditioning.discriminator:
        raise GanlabError(f"loss '{loss}' trains D to predict each sample's class, but architecture "
                          f"'{config.name_of('arch')}' gives D the class (a projection discriminator); "
                          "set arch.projection=false")
    if config.pack > 1:
        raise GanlabError(f"pack {config.pack} scores packs of samples jointly, which have no single class: a "
                          f"conditional architecture ('{config.name_of('arch')}') needs pack 1")
    if getattr(objective, "semi_supervised", False):
        raise GanlabError(f"loss '{loss}' with a labelled subset (semi-supervised) assumes the other samples are "
                          "unlabelled, but a conditional architecture labels every sample; set loss.labeled=0 "
                          "or arch.conditional=false")


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
    (``ganlab.train.engine``); BatchNorm would then normalise them together, which
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


def make_optimizer(kind: str, params: Any, lr: float, config: RunConfig, made: Any) -> Any:
    """The optimiser ``made`` (the component ``kind``, a plugin's or a built-in) builds over ``params``."""
    import torch

    optimizer = made.build(list(params), lr, config)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ComponentError(f"optimizer '{kind}' build() returned a {type(optimizer).__name__}, "
                             "not a torch.optim.Optimizer")
    return _with_initial_rates(optimizer)


def _with_initial_rates(optimizer: Any) -> Any:
    """Remember each parameter group's starting rate: the schedule scales that (a plugin's optimiser may
    set its own rates per group), and it travels in the optimiser's state_dict through checkpoints."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return optimizer


def select_metrics(plugins: PluginManager, config: RunConfig) -> list[Component]:
    names = config.metric_names
    if names is None:
        return plugins.registry.of_kind("metric")
    return [plugins.registry.get("metric", name) for name in names]
