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
from ganlab.train.engine import Interrupted
from ganlab.train.population.setup import replica_config
from ganlab.train.population.record import ParentRun, killed_tags


def run_sequentially(config: RunConfig, plugins: PluginManager, seeds: Sequence[int], store: Any,
                     progress: bool, resume: Any = None, tags: dict[str, str] | None = None) -> list[Any]:
    from ganlab.train.engine import Diverged
    from ganlab.train.runner import run
    from ganlab.train.population.trainer import PopulationDiverged
    from ganlab.train.signals import BetweenRuns, GracefulStop, Signalled

    parent = None
    contexts: list[Any] = []
    diverged: list[tuple[int, Diverged]] = []
    ended: list[int] = []  # the seeds whose runs ended here
    status = "FAILED"
    stopped_by: dict[str, str] = {}  # the signal that stopped the population, for its parent's tags
    # Between the seeds (the next one loading its data, building), a signal stops the population at once:
    # its parent ends KILLED, never RUNNING (docs/reliability.md, "Signals").
    with BetweenRuns() as between:
        try:
            if store is not None:
                store.wait()
                if resume is None:
                    parent = ParentRun.start(store, config, seeds, "sequential", tags or {})
                else:
                    parent = ParentRun.resumed(store, resume.parent_id, 0)
            for seed in seeds:
                between.check()  # a signal the previous seed's run took during its last step or its close
                run_id = resume.run_ids.get(seed) if resume is not None else None
                state = resume.states.get(seed) if resume is not None else None
                if resume is not None and run_id is not None and state is None:
                    ended.append(seed)
                    continue  # a finished child
                child = replica_config(config, seed, parent.run_id if parent is not None else "")
                if state is not None:
                    from ganlab.config import ConfigBuilder

                    child = ConfigBuilder().add_mapping(state["config"], "checkpoint").add_mapping(
                        {"tracking_uri": config.tracking_uri, "tracking": True, "steps": config.steps}, "resume"
                    ).build(plugins.registry)
                try:
                    contexts.append(run(child, plugins, resume_run_id=run_id, resume_state=state,
                                        progress=progress))
                except Diverged as exc:
                    print(f"ganlab: seed {seed}: {exc}", file=sys.stderr)
                    diverged.append((seed, exc))
                ended.append(seed)
            between.check()
            status = "FAILED" if len(diverged) == len(seeds) else "FINISHED"  # FINISHED: some seeds did
        except Signalled as exc:
            status, stopped_by = "KILLED", killed_tags(exc)
            resumable = parent is not None and (bool(ended) or resume is not None)
            raise SeedsInterrupted(exc.signum, parent.run_id if resumable else None,
                                   [s for s in seeds if s not in ended]) from None
        except (Interrupted, KeyboardInterrupt) as exc:
            status, stopped_by = "KILLED", killed_tags(exc)
            raise
        finally:
            if parent is not None:
                tags = {"ganlab.population.diverged": ",".join(str(s) for s, _ in diverged)} if diverged else {}
                tags.update(stopped_by)
                with GracefulStop(doing="closing the population's record first"):
                    parent.end(status, tags)
    if diverged:
        raise PopulationDiverged(diverged, len(seeds))
    return contexts


class SeedsInterrupted(Interrupted):
    """A signal between the seeds of a sequential population: no step to finish, no checkpoint to write;
    the command line exits with ``exit_code``, 128 + the signal."""

    def __init__(self, signum: int, parent_id: str | None, left: list[int]) -> None:
        import signal

        super().__init__(signum)
        untrained = f"; seed(s) {', '.join(map(str, left))} not trained" if left else ""
        then = (f"; `ganlab resume {parent_id}` trains the rest" if parent_id else
                "; no seed had trained, so there is nothing to resume: start it again")
        self.args = (f"interrupted by {signal.Signals(signum).name} between the seeds of a population{untrained}{then}",)
