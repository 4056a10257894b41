"""Objects handed to lifecycle hooks and metrics.

Hooks get a context object rather than loose arguments so that the context
can grow without breaking any plugin written against an older version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ganlab.config import RunConfig
    from ganlab.data import StreamingData, TensorData


@dataclass
class RunContext:
    """Everything about a run in progress."""

    config: RunConfig
    device: Any
    generator: Any  # torch.nn.Module
    discriminator: Any  # torch.nn.Module
    head: Any
    objective: Any
    data: TensorData | StreamingData
    data_shape: tuple[int, ...]
    num_classes: int
    components: dict[str, Any] = field(default_factory=dict)  # kind -> Component (provenance)
    run_id: str | None = None
    step: int = 0
    resumed_from: int | None = None
    workdir: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # free space for plugins
    # the moving average of G's weights (setting ``ema``), or None; where set, it is what samples,
    # evaluation and the exported generator.pt use, while ``generator`` is the one being trained
    generator_average: Any = None
    # what log_metrics and log_artifact go through: the run's MLflow tracker, once the run is open
    recorder: Any = field(default=None, repr=False)
    #: each plugin's options for this run (``plugin_options`` hook), by plugin name
    plugin_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a class-conditional run's ``ganlab.train.conditioning.Conditioning`` (classes, which networks
    #: take labels, how fakes get theirs); None for an unconditional run
    conditioning: Any = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Record a plugin's own metrics in this run at ``step`` (default: the current step), through
        the writer that records the losses, so they survive a resume without duplicates. A run without
        tracking records nothing."""
        if self.recorder is not None:
            self.recorder.log_metrics(metrics, self.step if step is None else step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy the file at ``path`` into this run's artifacts (under ``artifact_path``, if given)."""
        if self.recorder is not None:
            self.recorder.log_artifact(path, artifact_path)


@dataclass
class EvalContext:
    """What a metric sees: ways to draw generated and real samples, the networks, the data.

    ``generate(n)`` returns n samples (data space, no grad) from a noise stream
    seeded per evaluation, so metrics are comparable across steps and runs;
    ``discriminate(x)`` returns D's raw scores in float32 without grad;
    ``real_batch(n)`` returns n random training samples. Evaluation draws its
    randomness from forked RNG state, so evaluating never changes training.
    """

    step: int
    device: Any
    dataset_name: str
    data: TensorData | None
    head: Any
    generator: Any
    discriminator: Any
    latent_dim: int
    seed: int
    cache_dir: Path
    generate: Callable[[int], torch.Tensor]
    discriminate: Callable[[torch.Tensor], torch.Tensor]
    real_batch: Callable[[int], torch.Tensor]
    objective: Any = None
    run: RunContext | None = None
    config: RunConfig | None = None
    params: dict[str, Any] = field(default_factory=dict)  # protocol params a metric wants logged once
    #: conditional runs (``conditioning`` set): ``generate_labelled(n)`` returns n samples and the classes
    #: they were generated for (balanced: 0, 1, ..., K-1, 0, ...), the stream ``generate`` draws from;
    #: ``real_labelled(n)`` n training samples with their labels. ``discriminate(x, labels)`` needs the
    #: labels where D is conditional (``conditioning.discriminator``).
    conditioning: Any = None
    generate_labelled: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
    #: the run's latent component (``sample(n, latent_dim, device, generator)``; InfoGAN's has ``codes``),
    #: and ``generate_from(noise, labels=None)``: samples of given latents, as ``generate`` makes them
    latent: Any = None
    generate_from: Callable[..., torch.Tensor] | None = None
    real_labelled: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
    #: whether pictures are logged at this evaluation (the run's ``pictures`` setting): a metric that
    #: returns :class:`ganlab.Picture` values can skip the work of preparing them when False
    pictures: bool = True
