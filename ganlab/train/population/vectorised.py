"""Building and running a vectorised population, with its record."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ganlab.config import RunConfig
from ganlab.errors import GanlabError
from ganlab.plugins import PluginManager
from ganlab.train.build import Built
from ganlab.train.memory import check_step
from ganlab.train.population.setup import replica_config
from ganlab.train.population.record import ByReplica, ParentRun, PopulationProgress, killed_tags
from ganlab.train.engine import Interrupted
from ganlab.train.population.trainer import PopulationDiverged, PopulationTrainer, ReplicaTrainer


def build_replicas(config: RunConfig, plugins: PluginManager, seeds: Sequence[int], first: Built) -> list[ReplicaTrainer]:
    """One single-run build per seed; each replica's trainer is made right after its build, so that
    its generator takes the state the global generator has there in a single run."""
    from ganlab.train.build import build

    replicas = [ReplicaTrainer(first, plugins)]
    check_step(first.config, first.device, first.generator, first.discriminator, first.data, first.optimizers,
               first.conditioning, replicas=len(seeds))
    for seed in seeds[1:]:
        built = build(plugins, replica_config(config, seed))
        if len(built.data) != len(first.data) or tuple(built.data.shape) != tuple(first.data.shape):
            raise GanlabError(f"seed {seed} loads {len(built.data)} samples of shape {tuple(built.data.shape)} but "
                              f"seed {seeds[0]} {len(first.data)} of {tuple(first.data.shape)}: "
                              "a population's replicas need data of one size")
        if _same_data(built.data, first.data):
            built.data = first.data  # one copy for the whole population
        replicas.append(ReplicaTrainer(built, plugins))
    return replicas


def _same_data(a: Any, b: Any) -> bool:
    import torch

    if not torch.equal(a.x, b.x):
        return False
    return (a.y is None and b.y is None) or (a.y is not None and b.y is not None and torch.equal(a.y, b.y))


def run_vectorised(config: RunConfig, plugins: PluginManager, seeds: Sequence[int], first: Built, store: Any,
                   progress: bool, resume: Any = None) -> list[Any]:
    replicas = build_replicas(config, plugins, seeds, first)
    population = PopulationTrainer(replicas, plugins)
    if resume is not None:
        population.load_state_dicts([resume.states[seed] for seed in seeds])
    parent = None
    registered: list[str] = []
    trackers: list[Any] = []
    try:
        if store is not None:
            from ganlab.record.tracker import MlflowTracker

            store.wait()
            if resume is None:
                from ganlab.record.tracker import component_tags, components_in_use

                tags = component_tags(first.components, components_in_use(plugins.registry, first.config))
                parent = ParentRun.start(store, config, seeds, "vectorised", tags)
            else:
                parent = ParentRun.resumed(store, resume.parent_id, population.step)
            for replica, seed in zip(replicas, seeds):
                replica.b.config = replica.ctx.config = replica_config(config, seed, parent.run_id)
            trackers = [MlflowTracker(store, resume.run_ids[seed] if resume is not None else None,
                                      registry=plugins.registry) for seed in seeds]
            announce(parent.run_id, seeds, resume is not None)
            plugins.register_object(ByReplica({id(r.ctx): t for r, t in zip(replicas, trackers)}), "ganlab.tracking")
            registered.append("ganlab.tracking")
        if progress:
            from ganlab.train.progress import ProgressBar

            plugins.register_object(PopulationProgress(replicas, ProgressBar()), "ganlab.progress")
            registered.append("ganlab.progress")
        return _fit(population, parent, trackers)
    finally:
        for name in registered:
            plugins.unregister_object(name)


def _fit(population: PopulationTrainer, parent: ParentRun | None, trackers: Sequence[Any]) -> list[Any]:
    status, tags = "FAILED", {}
    try:
        contexts = population.fit()
        status = "FINISHED"
    except PopulationDiverged as exc:
        status = "FAILED" if len(exc.seeds) == exc.total else "FINISHED"  # FINISHED: some replicas did
        tags = {"ganlab.population.diverged": ",".join(str(s) for s in exc.seeds)}
        raise
    except (Interrupted, KeyboardInterrupt) as exc:
        status, tags = "KILLED", killed_tags(exc)
        raise
    finally:
        failures = [t.failure for t in trackers if t.failure is not None]
        if parent is not None:
            if failures and status == "FINISHED":
                status = "FAILED"
            parent.end(status, tags)
    if failures:
        raise failures[0]
    return contexts


def announce(parent_id: str, seeds: Sequence[int], resumed: bool) -> None:
    what = "resuming population" if resumed else "population"
    print(f"ganlab: {what} {parent_id}: {len(seeds)} seeds trained as one vectorised model, each seed a "
          f"child run; `ganlab resume {parent_id}` continues all of them", file=sys.stderr, flush=True)
