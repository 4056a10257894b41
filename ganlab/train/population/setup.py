"""What a population needs settled before it is built: its seeds, its replicas' configurations, and
whether they can be stacked."""

from __future__ import annotations

from typing import Any

from ganlab.config import RunConfig, parse_seeds
from ganlab.errors import GanlabError


def replica_config(config: RunConfig, seed: int, parent_run_id: str = "") -> RunConfig:
    """The configuration of one replica: a single run's, with its seed and its parent."""
    return config.replace(seed=seed, seeds="", parent_run_id=parent_run_id)


def check_population(config: RunConfig) -> list[int]:
    """The seeds, after refusing what a population cannot do (before anything is built)."""
    from ganlab.dist import launched_by_torchrun

    from ganlab.record.local import check_run_dir

    seeds = parse_seeds(config.seeds)
    check_run_dir(config, resuming=False)
    if launched_by_torchrun():
        raise GanlabError("a population (--seeds) runs in one process; start it without torchrun / --nproc")
    if config.precision == "fp16":
        raise GanlabError("a population (--seeds) cannot use precision fp16: its gradient scaler would skip "
                          "every replica's step when one overflows; use bf16 or fp32")
    if config.compile:
        raise GanlabError("a population (--seeds) is not compiled: drop --compile (it vectorises instead)")
    return seeds


def why_sequential(built: Any) -> str | None:
    """Why this run's replicas cannot be stacked, or None when they can."""
    from ganlab.data import TensorData

    arch = built.config.name_of("arch")
    if not getattr(built.architecture, "vectorisable", False):
        return (f"architecture '{arch}' does not declare vectorisable = True "
                "(docs/plugins.md, \"Population runs\")")
    if not getattr(built.latent, "standard_normal", False):
        return f"latent '{built.config.name_of('latent')}' is not the plain Gaussian the stacked replicas draw"
    if getattr(built, "conditioning", None) is not None:
        return f"architecture '{arch}' is conditional (the stacked replicas are not called with labels)"
    if not isinstance(built.data, TensorData):
        return f"dataset '{built.config.name_of('dataset')}' is streamed from disk, not held in memory"
    if getattr(built.objective, "semi_supervised", False) or getattr(built.objective, "vectorisable", True) is False:
        return f"loss '{built.config.name_of('loss')}' keeps state of its own for each run"
    from ganlab.train.step import written_on_step

    if written_on_step(built.objective):  # a single run trains the step-object methods: so must its replica
        return f"loss '{built.config.name_of('loss')}' is written on the step object, not on scores"
    for name, made in built.optimizers.items():
        if not getattr(made, "elementwise", False):
            return (f"optimizer '{name}' does not declare elementwise = True (one optimiser over the stacked "
                    "weights must update each replica as its own would)")
    for r in built.regularizers:
        if r.penalises and not getattr(r.made, "vectorisable", False):
            return (f"regularizer '{r.name}' does not declare vectorisable = True (its penalty must reduce "
                    "with step.mean to give one value per replica)")
    return None


