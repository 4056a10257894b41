"""A population whose replicas cannot be stacked: the seeds trained one after another.

The record is the same as a vectorised population's (a parent run, one child
run per seed), so comparing and resuming do not depend on how it was trained.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from ganlab.config import RunConfig
from ganlab.plugins import PluginManager
from ganlab.train.population.setup import replica_config
from ganlab.train.population.record import ParentRun


def run_sequentially(config: RunConfig, plugins: PluginManager, seeds: Sequence[int], store: Any,
                     progress: bool, resume: Any = None, tags: dict[str, str] | None = None) -> list[Any]:
    from ganlab.train.engine import Diverged, Interrupted
    from ganlab.train.runner import run
    from ganlab.train.population.trainer import PopulationDiverged

    parent = None
    if store is not None:
        store.wait()
        if resume is None:
            parent = ParentRun.start(store, config, seeds, "sequential", tags or {})
        else:
            parent = ParentRun.resumed(store, resume.parent_id, 0)
    contexts: list[Any] = []
    diverged: list[tuple[int, Diverged]] = []
    status = "FAILED"
    try:
        for seed in seeds:
            run_id = resume.run_ids.get(seed) if resume is not None else None
            state = resume.states.get(seed) if resume is not None else None
            if resume is not None and run_id is not None and state is None:
                continue  # a finished child
            child = replica_config(config, seed, parent.run_id if parent is not None else "")
            if state is not None:
                from ganlab.config import ConfigBuilder

                child = ConfigBuilder().add_mapping(state["config"], "checkpoint").add_mapping(
                    {"tracking_uri": config.tracking_uri, "tracking": True, "steps": config.steps}, "resume"
                ).build(plugins.registry)
            try:
                contexts.append(run(child, plugins, resume_run_id=run_id, resume_state=state, progress=progress))
            except Diverged as exc:
                print(f"ganlab: seed {seed}: {exc}", file=sys.stderr)
                diverged.append((seed, exc))
        status = "FAILED" if len(diverged) == len(seeds) else "FINISHED"  # FINISHED: some seeds did
    except (Interrupted, KeyboardInterrupt):
        status = "KILLED"
        raise
    finally:
        if parent is not None:
            tags = {"ganlab.population.diverged": ",".join(str(s) for s, _ in diverged)} if diverged else {}
            parent.end(status, tags)
    if diverged:
        raise PopulationDiverged(diverged, len(seeds))
    return contexts
