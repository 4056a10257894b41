"""Helpers for testing ganlab plugins (documented in docs/plugins.md).

What a plugin's test suite needs, and ganlab's own tests use too:

* :func:`make_plugin_manager`: a plugin manager holding only the plugins a test
  names (plus, optionally, ganlab's built-ins), *strict* so that a broken
  hook fails the test instead of becoming a warning on stderr;
* tiny in-memory datasets (:func:`tiny_image_data`, :func:`tiny_vector_data`),
  also registered as the datasets ``tiny-images`` and ``tiny-vectors``;
* :func:`run_steps`: a few real training steps with the components you name,
  returning the losses and evaluation metrics the lifecycle hooks saw;
* the checks ganlab makes of what plugins hand over, as assertions:
  :func:`assert_head_contract`, :func:`assert_dataset_contract`, :func:`assert_metric_values`.

Importing this module is cheap; torch is imported by the functions that train
or make tensors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ganlab import Option, hookimpl
from ganlab.errors import PluginError
from ganlab.plugins import PluginManager

if TYPE_CHECKING:  # pragma: no cover
    from ganlab.data import TensorData

__all__ = [
    "TinyDatasets",
    "assert_dataset_contract",
    "assert_head_contract",
    "assert_metric_values",
    "make_plugin_manager",
    "run_steps",
    "tiny_image_data",
    "tiny_vector_data",
]

#: Settings that keep :func:`run_steps` to a fraction of a second per step on a CPU.
FAST_SETTINGS: dict[str, Any] = {
    "batch_size": 16,
    "latent_dim": 8,
    "log_every": 1,  # check losses and parameters for NaN/Inf after every step
    "sample_every": 0,
    "eval_every": 0,  # evaluate once, after the last step
    "eval_samples": 64,
    "device": "cpu",
    "tracking": False,
}


# ---- tiny datasets ------------------------------------------------------------
def tiny_image_data(n: int = 64, shape: tuple[int, ...] = (1, 8, 8), classes: int = 0,
                    seed: int = 0) -> TensorData:
    """``n`` random images in [-1, 1], labelled 0..classes-1 when ``classes`` > 0.

    Each class gets its own mean brightness, so a discriminator can learn
    something, but the point is speed: shapes and plumbing, not image quality.
    """
    import torch

    from ganlab.data import TensorData

    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes if classes > 0 else None
    centre = torch.zeros(n) if y is None else (y.float() / max(classes - 1, 1)) * 1.2 - 0.6
    x = (centre.view(n, *([1] * len(shape))) + 0.3 * torch.randn(n, *shape, generator=generator)).clamp(-1, 1)
    return TensorData(x=x.float(), y=y, num_classes=classes, source=f"ganlab.testing: {n} random images {shape}",
                      test_x=x[: max(n // 4, 1)].clone(), test_y=None if y is None else y[: max(n // 4, 1)].clone())


def tiny_vector_data(n: int = 256, dim: int = 2, classes: int = 0, seed: int = 0) -> TensorData:
    """``n`` points in [-1, 1]^dim around ``max(classes, 1)`` centres, labelled when ``classes`` > 0."""
    import torch

    from ganlab.data import TensorData

    generator = torch.Generator().manual_seed(seed)
    k = max(classes, 1)
    centres = torch.rand(k, dim, generator=generator) * 1.2 - 0.6
    y = torch.arange(n) % k
    x = (centres[y] + 0.05 * torch.randn(n, dim, generator=generator)).clamp(-1, 1)
    return TensorData(x=x.float(), y=y if classes > 0 else None, num_classes=classes,
                      source=f"ganlab.testing: {n} random points in {dim}-D")


class _InMemory:
    """A dataset component wrapping an already-built TensorData."""

    cacheable = False  # never write test data to the user's dataset cache

    def __init__(self, data: TensorData) -> None:
        self.data = data

    def load(self, request: Any) -> TensorData:
        return self.data


class TinyDatasets:
    """A plugin registering ``tiny-images`` and ``tiny-vectors`` (and any TensorData you give it).

    ``TinyDatasets(extra={"my-data": tensor_data})`` registers ``my-data`` too,
    which lets a test train on data it built itself; ``tiny=False`` registers
    only the extra ones.
    """

    def __init__(self, extra: Mapping[str, TensorData] | None = None, tiny: bool = True) -> None:
        self.extra = dict(extra or {})
        self.tiny = tiny

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        for name, data in self.extra.items():
            register(name, lambda data=data: _InMemory(data), summary=f"ganlab.testing: {data.source or name}")
        if not self.tiny:
            return
        register(
            "tiny-images",
            lambda n, size, channels, classes, seed: _InMemory(tiny_image_data(n, (channels, size, size), classes, seed)),
            summary="ganlab.testing: a few random images in memory, for tests",
            options={"n": Option(int, 64, min=1), "size": Option(int, 8, min=1), "channels": Option(int, 1, min=1),
                     "classes": Option(int, 0, min=0), "seed": Option(int, 0, min=0)},
        )
        register(
            "tiny-vectors",
            lambda n, dim, classes, seed: _InMemory(tiny_vector_data(n, dim, classes, seed)),
            summary="ganlab.testing: a few random points in memory, for tests",
            options={"n": Option(int, 256, min=1), "dim": Option(int, 2, min=1),
                     "classes": Option(int, 0, min=0), "seed": Option(int, 0, min=0)},
        )


# ---- plugin managers -------------------------------------------------------------
def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def make_plugin_manager(*plugins: object, builtins: bool | Iterable[str] = True, tiny_data: bool = True,
                        strict: bool = True) -> PluginManager:
    """A plugin manager holding exactly the plugins a test names.

    ``plugins`` are plugin objects (a module, a class instance, anything with
    hookimpls) or strings understood by ``--plugin`` (``path/to/file.py`` or
    an importable module). Installed third-party plugins, ``GANLAB_PLUGINS``
    and ``--plugin`` from the environment are *not* loaded, so a test sees the
    same components wherever it runs.

    ``builtins``: True loads all of ganlab's built-in plugins, False none but the
    optimisers, a collection of their names (``{"heads", "architectures"}``) only
    those and the optimisers.
    ``tiny_data`` adds the ``tiny-images`` / ``tiny-vectors`` datasets.
    ``strict`` (default) turns a plugin failure (import error, bad hookimpl,
    an exception in a hook) into a :class:`~ganlab.errors.PluginError` instead
    of a warning, so a test cannot pass with its plugin silently left out.
    Built-in plugins that fail to import are warned about, never fatal: they
    are not what the test is about.
    """
    state = {"strict": False}

    def warn(message: str) -> None:
        if state["strict"]:
            raise PluginError(message)
        print(f"ganlab: warning: {message}", file=sys.stderr)

    manager = PluginManager(warn=warn)
    # the optimisers always: every run needs one, and adam, the default, was the core's own before 2.0
    wanted = None if builtins is True else {"optimizers", *(builtins or ())}  # type: ignore[arg-type]
    _load_builtins(manager, wanted)
    if tiny_data:
        manager.register_object(TinyDatasets(), "ganlab.testing.tiny-data")
    state["strict"] = strict
    taken = set(manager.infos)
    for plugin in plugins:
        if isinstance(plugin, str):
            manager.load_local(plugin)
            continue
        name = base = _plugin_name(plugin)
        counter = 2
        while name in taken:  # two instances of one class: keep both, with distinct names
            name = f"{base}-{counter}"
            counter += 1
        taken.add(name)
        manager.register_object(plugin, name, builtin=False)
    return manager


def _load_builtins(manager: PluginManager, wanted: set[str] | None) -> None:
    """Load ganlab's built-in plugins (all, or those named in ``wanted``)."""
    found = manager.load_builtins(wanted)
    missing = sorted((wanted or set()) - set(found))
    if missing:
        raise PluginError(f"no built-in plugin named {', '.join(missing)} (see `ganlab plugins`)")


# ---- a few training steps ---------------------------------------------------------
class _Recorder:
    """A lifecycle plugin that keeps every loss and metric value a run reports."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {"step": [], "eval_step": []}

    @hookimpl
    def on_step_end(self, step: int, losses: dict[str, Any]) -> None:
        # float() syncs with the device each step: fine for a test, never for a real run
        self.values["step"].append(float(step))
        for key, value in losses.items():
            self.values.setdefault(key, []).append(float(value))

    @hookimpl
    def on_evaluate(self, step: int, metrics: dict[str, float]) -> None:
        self.values["eval_step"].append(float(step))
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(float(value))


ComponentSpec = str | Mapping[str, Any] | None


def run_steps(head: ComponentSpec = "sigmoid", loss: ComponentSpec = "nonsaturating", arch: ComponentSpec = "mlp",
              dataset: ComponentSpec | TensorData = "tiny-images", steps: int = 3, plugins: Iterable[object] = (),
              builtins: bool | Iterable[str] = True, sets: Iterable[str] = (), manager: PluginManager | None = None,
              threads: int | None = 1, **settings: Any) -> dict[str, list[float]]:
    """Train ``steps`` generator updates with the named components; return what was recorded.

    A component is a name or a table like a TOML section,
    ``head={"name": "entmax", "alpha": 1.25}``; ``dataset`` may also be a
    :class:`~ganlab.data.TensorData`. ``plugins`` are handed to
    :func:`make_plugin_manager` (or pass a ready ``manager``); ``sets`` are
    ``--set`` strings; other keyword arguments are run settings (``seed=1``,
    ``metrics="diagnostics"``, ``d_steps=2``...). Defaults keep runs tiny
    (:data:`FAST_SETTINGS`); tracking is off, so nothing touches MLflow.
    ``threads`` sets torch's intra-op threads for the run and restores them
    afterwards: tiny networks train several times faster on one thread than
    on threads that fight other test processes for the cores (None: leave it).

    Returns ``{"step": [1.0, 2.0, ...], "loss.d": [...], "loss.g": [...],
    "eval_step": [...], "<metric>": [...]}``: losses once per step, metrics
    once per evaluation (by default once, after the last step).
    """
    from ganlab.config import ConfigBuilder
    from ganlab.data import TensorData
    from ganlab.train.runner import run

    extra: dict[str, TensorData] = {}
    if isinstance(dataset, TensorData):
        extra["ganlab-testing-data"] = dataset
        dataset = "ganlab-testing-data"
    if manager is None:
        manager = make_plugin_manager(*plugins, builtins=builtins)
    if extra:
        manager.register_object(TinyDatasets(extra, tiny=False), f"ganlab.testing.data-{id(extra)}")

    builder = ConfigBuilder()
    builder.add_mapping({**FAST_SETTINGS, "steps": steps}, "ganlab.testing defaults")
    components = {"head": head, "loss": loss, "arch": arch, "dataset": dataset}
    builder.add_mapping({k: v for k, v in components.items() if v is not None}, "run_steps()")
    builder.add_mapping(settings, "run_steps() settings")
    builder.add_sets(sets)
    config = builder.build(manager.registry)

    recorder = _Recorder()
    manager.register_object(recorder, f"ganlab.testing.recorder-{id(recorder)}")
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        run(config, manager, progress=False)
    finally:
        torch.set_num_threads(before)
    return recorder.values


# ---- contract checks an author calls from a test ------------------------------------
def assert_head_contract(head: Any, num_classes: int = 1) -> None:
    """Fail (AssertionError, one line) when ``head`` breaks the head contract ganlab checks before a run:
    each method's output shape on a small batch, finite values, ``probs`` rows that are distributions."""
    from ganlab.contracts import head_outputs_problem

    problem = head_outputs_problem(head, int(head.num_logits(num_classes)), num_classes)
    assert problem is None, problem


def assert_dataset_contract(data: Any) -> None:
    """Fail (AssertionError, one line) when what a dataset's ``load`` returned breaks the dataset contract:
    float32 finite samples, images in [-1, 1], labels and token ids in range."""
    from ganlab.contracts import dataset_data_problem
    from ganlab.data import StreamingData, TensorData

    assert isinstance(data, (TensorData, StreamingData)), f"load() returned {type(data).__name__}, not TensorData"
    problem = dataset_data_problem(data)
    assert problem is None, problem


def assert_metric_values(values: Any) -> None:
    """Fail (AssertionError, one line) when what a metric's ``evaluate`` returned is not a dict of named numbers
    and pictures (:class:`ganlab.Picture`: its key, kind, pixels or data as the run checks them)."""
    from ganlab.contracts import metric_values_problem

    problem = metric_values_problem(values)
    assert problem is None, problem
