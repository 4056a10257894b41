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
    """Why this run's replicas cannot be stacked, or None when they can: the one declared list.

    A population trains the single run's step (``ganlab.train.engine.make_step_functions``) on the
    stacked networks, so every kind of run is stacked whose components declare that they can be: an
    architecture whose networks run under ``vmap``, the plain Gaussian drawn per replica, an objective and
    penalties that reduce with ``step.mean`` and keep no state of their own per run, elementwise
    optimisers; and data held in memory. Anything else trains its seeds one after another, said in one line.
    """
    from ganlab.data import TensorData

    name = built.config.name_of
    declared = [
        ("architecture", name("arch"), built.architecture, "vectorisable", "its networks run under vmap"),
        ("latent", name("latent"), built.latent, "standard_normal", "each replica draws z ~ N(0, I) from its own "
                                                                   "stream"),
        ("loss", name("loss"), built.objective, "vectorisable", "its terms reduce with step.mean, and it keeps no "
                                                              "state of its own for each run"),
        *(("optimizer", n, made, "elementwise", "one optimiser over the stacked weights must update each replica "
                                                 "as its own would") for n, made in built.optimizers.items()),
        *(("regularizer", r.name, r.made, "vectorisable", "its penalty must reduce with step.mean to give one "
                                                          "value per replica") for r in built.regularizers if r.penalises),
    ]
    for kind, component, made, capability, meaning in declared:
        if not getattr(made, capability, False):
            return f"{kind} '{component}' does not declare {capability} = True ({meaning})"
    if not isinstance(built.data, TensorData):
        return f"dataset '{name('dataset')}' is streamed from disk, not held in memory"
    return None
