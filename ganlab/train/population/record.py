"""The MLflow record of a population: a parent run, and one ordinary child run per replica.

Every replica's record is written by an ordinary ``MlflowTracker`` (the one a
single run uses), all of them through one store process. The parent run holds
the population's configuration (``seeds``) and how it ended; the children
carry MLflow's ``mlflow.parentRunId`` tag, so the UI nests them, and their
params are those of a single run with their seed, so ``compare``, ``sample``
and ``resume`` treat them as ordinary runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ganlab import hookimpl

#: tags of a population's parent run
POPULATION_TAG = "ganlab.population"
SEEDS_TAG = "ganlab.population.seeds"
MODE_TAG = "ganlab.population.mode"


class ByReplica:
    """One plugin that hands each lifecycle call to the object serving that replica.

    Registering N trackers as N plugins would call each of them for every
    replica's hooks (N² calls per step); this routes each call to one.
    """

    def __init__(self, targets: dict[int, Any]) -> None:
        self.targets = targets  # id(ctx) -> the replica's tracker

    def _for(self, ctx: Any) -> Any:
        return self.targets.get(id(ctx))

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_run_start(ctx=ctx)

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_step_end(ctx=ctx, step=step, losses=losses)

    @hookimpl
    def on_samples(self, ctx: Any, step: int, samples: Any) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_samples(ctx=ctx, step=step, samples=samples)

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float], pictures: dict[str, Any]) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_evaluate(ctx=ctx, step=step, metrics=metrics, pictures=pictures)

    @hookimpl
    def before_checkpoint(self, ctx: Any, step: int) -> None:
        if (target := self._for(ctx)) is not None:
            target.before_checkpoint(ctx=ctx, step=step)

    @hookimpl
    def on_checkpoint(self, ctx: Any, step: int, path: Any) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_checkpoint(ctx=ctx, step=step, path=path)

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        if (target := self._for(ctx)) is not None:
            target.on_run_end(ctx=ctx, status=status, error=error)


class PopulationProgress:
    """One progress display for the population: it follows the first replica still training,
    and says how each replica ended."""

    def __init__(self, replicas: Sequence[Any], bar: Any) -> None:
        self.replicas = list(replicas)
        self.bar = bar
        self.started = False
        # each replica's own last logged losses and evaluation, for its summary (the bar follows the lead)
        self.losses: dict[int, tuple[int, str]] = {}
        self.evaluated: dict[int, tuple[int, dict[str, float]]] = {}

    def _lead(self) -> Any:
        return next((r.ctx for r in self.replicas if not r.ended), None)

    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        if not self.started:
            self.started = True
            self.bar.on_run_start(ctx=ctx)

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        from ganlab.train.progress import losses_line

        if not step % ctx.config.log_every or step == ctx.config.steps:
            self.losses[id(ctx)] = (step, losses_line(losses))
        if ctx is self._lead():
            self.bar.on_step_end(ctx=ctx, step=step, losses=losses)

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float]) -> None:
        self.evaluated[id(ctx)] = (step, dict(metrics))

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        self.bar.losses, self.bar.evaluated = self.losses.get(id(ctx)), self.evaluated.get(id(ctx))
        self.bar.on_run_end(ctx=ctx, status=status, error=error)


class ParentRun:
    """The population's own MLflow run: created before the replicas start, ended after they all have."""

    def __init__(self, store: Any, run_id: str, artifact_uri: str) -> None:
        from ganlab.record.ownership import own, run_lock
        from ganlab.record.store import local_artifact_dir

        self.store = store
        self.run_id = run_id
        # held until the parent has ended (a resume of the population already holds it: re-entrant)
        self.lock = own(run_lock(run_id, local_artifact_dir(artifact_uri)), f"population '{run_id}'")

    @classmethod
    def start(cls, store: Any, config: Any, seeds: Sequence[int], mode: str, tags: dict[str, str]) -> ParentRun:
        from ganlab.record.heartbeat import process_tags
        from ganlab.record.outputs import param_value

        name = config.run_name or f"{config.default_run_name()} seeds {config.seeds}"
        all_tags = {**tags, POPULATION_TAG: str(len(seeds)), SEEDS_TAG: config.seeds, MODE_TAG: mode,
                    **process_tags()}
        parent = config.settings.get("parent_run_id")
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        params = {k: param_value(v) for k, v in config.flat().items()}
        run_id, artifact_uri = store.call("start_run", config.experiment, name, all_tags, params)
        return cls(store, run_id, artifact_uri)

    @classmethod
    def resumed(cls, store: Any, run_id: str, step: int) -> ParentRun:
        artifact_uri, _ = store.call("resume_run", run_id, {"ganlab.resumed_at_step": str(step)})
        return cls(store, run_id, artifact_uri)

    def end(self, status: str, tags: dict[str, str]) -> None:
        """Mark the parent ended. Never raises: the children's records are what matter, and a failure
        of the store has already been said for them; a parent left RUNNING shows STALE in `ganlab runs`."""
        import sys

        from ganlab.errors import GanlabError, one_line

        from ganlab.record.ownership import release

        try:
            self.store.call("end_run", self.run_id, status, tags)
        except GanlabError as exc:
            print(f"ganlab: warning: the population's parent run {self.run_id} could not be marked {status}: "
                  f"{one_line(exc, plain_ganlab_errors=True)}", file=sys.stderr)
        finally:
            release(self.lock)


def killed_tags(interrupt: BaseException) -> dict[str, str]:
    """The parent's tag naming the signal that stopped the population, as its children's say it."""
    import signal

    from ganlab.record.store_process import signal_name

    return {"ganlab.killed_by": signal_name(int(getattr(interrupt, "signum", signal.SIGINT)))}
