"""Running a population: stacked when it can be, one seed after another when it cannot."""

from __future__ import annotations

import sys
from typing import Any

from ganlab.config import RunConfig
from ganlab.plugins import PluginManager
from ganlab.train.population.setup import check_population, replica_config, why_sequential


def run_population(config: RunConfig, plugins: PluginManager, progress: bool = True,
                   resume: Any = None) -> list[Any]:
    """Train every seed of ``config.seeds``; returns the replicas' final contexts.

    ``resume`` (``ganlab.train.population.resume.PopulationResume``) continues a
    population from its children's checkpoints.
    """
    seeds = check_population(config)
    store = None
    try:
        if config.tracking:
            from ganlab.record.store_process import StoreProcess
            from ganlab.record.store import experiment_directory, tracking_uri

            uri = tracking_uri(config.tracking_uri or None)
            experiment_directory(config.experiment)
            store = StoreProcess(uri)
        from ganlab.train.build import build

        first = build(plugins, replica_config(config, seeds[0]))
        reason = why_sequential(first)
        if reason is not None:
            from ganlab.train.population.sequential import run_sequentially

            print(f"ganlab: {reason}: training the {len(seeds)} seeds one after another", file=sys.stderr)
            from ganlab.record.tracker import component_tags, components_in_use

            tags = component_tags(first.components, components_in_use(plugins.registry, first.config))
            return run_sequentially(config, plugins, seeds, store, progress, resume, tags)
        from ganlab.train.population.vectorised import run_vectorised

        return run_vectorised(config, plugins, seeds, first, store, progress, resume)
    finally:
        if store is not None:
            store.close()
