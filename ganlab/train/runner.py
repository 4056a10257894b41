"""Compose a run: plugins + configuration -> built components -> trainer -> record."""

from __future__ import annotations

from typing import Any

from ganlab.config import RunConfig
from ganlab.errors import GanlabError
from ganlab.plugins import PluginManager
from ganlab.train.signals import GracefulStop


def run(config: RunConfig, plugins: PluginManager, resume_run_id: str | None = None,
        resume_state: dict[str, Any] | None = None, progress: bool = True) -> Any:
    """Train one run to the end; returns the final RunContext.

    Under torchrun every rank runs this; rank 0 alone records (see ganlab.dist).
    """
    import sys

    from ganlab import dist as distributed
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    if config.seeds:
        raise GanlabError("a population (seeds = ...) is run by ganlab.train.population.launch.run_population")
    dist = distributed.setup(config)  # None unless started by torchrun
    store = None
    registered: list[str] = []
    try:
        distributed.check_resume(resume_state, dist, resume_run_id)
        main = dist is None or dist.is_main
        from ganlab.record.local import LocalRunDirectory, check_run_dir

        local = check_run_dir(config, resuming=resume_state is not None)
        uri = None
        if config.tracking and main:
            from ganlab.record.store import experiment_directory, tracking_uri

            uri = tracking_uri(config.tracking_uri or None)  # refuse a bad URI before building anything
            if resume_run_id is None:
                experiment_directory(config.experiment)  # and an experiment name that cannot be stored
            from ganlab.record.store_process import StoreProcess

            # Opens the store on another core while this process imports torch and loads the data.
            store = StoreProcess(uri)
        with distributed.main_process_first(dist):
            built = build(plugins, config)
        if dist is not None:
            distributed.wrap(built, dist)
        trainer = Trainer(built, plugins)
        tracker = None
        if store is not None:
            from ganlab.record.tracker import MlflowTracker

            store.wait()  # a store that cannot be opened is refused here, before training starts
            tracker = MlflowTracker(store, resume_run_id, registry=plugins.registry)
        if dist is not None:
            distributed.attach(trainer, dist, tracker)
        if resume_state is not None:
            trainer.load_state_dict(resume_state)
            distributed.restore(trainer, dist, resume_state)
        if tracker is not None:
            plugins.register_object(tracker, "ganlab.tracking")
            registered.append("ganlab.tracking")
        elif local is not None and main:
            plugins.register_object(LocalRunDirectory(local), "ganlab.run_dir")
            registered.append("ganlab.run_dir")
        if progress and main:
            from ganlab.train.progress import ProgressBar

            plugins.register_object(ProgressBar(), "ganlab.progress")
            registered.append("ganlab.progress")
        return _fit(trainer, tracker)
    except Exception as exc:
        explained = distributed.explain(exc, dist)  # another rank's failure, said in one line
        if explained is exc:
            raise
        raise explained from exc
    finally:
        # Training is over, but a signal now (torchrun's SIGTERM to the ranks that outlive a
        # failed one, a late Ctrl-C) must not cut the record's last writes, nor the process's
        # own one-line account of how the run ended, short.
        with GracefulStop(doing="closing the run's record first"):
            for name in registered:  # the next run in this process (a sequential population) registers its own
                plugins.unregister_object(name)
            if store is not None and _stopped_before_a_run_existed(sys.exc_info()[1]):
                store.abandon()  # nothing to write, and the writer may be waiting on a server that does not answer
            elif store is not None:
                store.close()  # waits until the record is written
            distributed.teardown(dist, failed=sys.exc_info()[0] is not None)


def _stopped_before_a_run_existed(exc: BaseException | None) -> bool:
    from ganlab.train.engine import StoppedBeforeTraining

    return isinstance(exc, StoppedBeforeTraining) and exc.run_id is None


def _fit(trainer: Any, tracker: Any) -> Any:
    """Train; then make sure a record that could not be completed is not a quiet success.

    The tracker never raises at the end of a run (every plugin must see it end);
    it leaves ``tracker.failure``, raised here: in place of the failure of the
    record that caused it, or after a run that otherwise finished. Another
    failure (divergence, a plugin's error, a signal) stays the one reported,
    with the record's trouble as a warning before it.
    """
    import sys

    from ganlab.record.store_process import TrackingError
    from ganlab.record.tracker import RecordFailure

    try:
        ctx = trainer.fit()
    except BaseException as exc:
        failure = tracker.failure if tracker is not None else None
        if failure is None:
            raise
        if isinstance(exc, (TrackingError, RecordFailure)):
            raise failure from exc
        print(f"ganlab: warning: {failure}", file=sys.stderr)
        raise
    if tracker is not None and tracker.failure is not None:
        raise tracker.failure
    return ctx
