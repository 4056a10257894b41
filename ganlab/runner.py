"""Compose a run: plugins + configuration -> built components -> trainer -> record."""

from __future__ import annotations

from typing import Any

from ganlab.config import RunConfig
from ganlab.plugins import PluginManager


def run(config: RunConfig, plugins: PluginManager, resume_run_id: str | None = None,
        resume_state: dict[str, Any] | None = None, progress: bool = True) -> Any:
    """Train one run to the end; returns the final RunContext.

    Under torchrun every rank runs this; rank 0 alone records (see ganlab.distributed).
    """
    import sys

    from ganlab import distributed
    from ganlab.build import build
    from ganlab.engine import Trainer

    dist = distributed.setup(config)  # None unless started by torchrun
    try:
        distributed.check_resume(resume_state, dist, resume_run_id)
        main = dist is None or dist.is_main
        uri = None
        if config.tracking and main:
            from ganlab.tracking import tracking_uri

            uri = tracking_uri(config.tracking_uri or None)  # refuse a bad URI before building anything
        with distributed.main_process_first(dist):
            built = build(plugins, config)
        if dist is not None:
            distributed.wrap(built, dist)
        trainer = Trainer(built, plugins)
        tracker = None
        if uri is not None:
            from ganlab.tracking import MlflowTracker

            tracker = MlflowTracker(uri, resume_run_id)
        if dist is not None:
            distributed.attach(trainer, dist, tracker)
        if resume_state is not None:
            trainer.load_state_dict(resume_state)
            distributed.restore(trainer, dist, resume_state)
        if tracker is not None:
            plugins.register_object(tracker, "ganlab.tracking")
        if progress and main:
            from ganlab.progress import ProgressBar

            plugins.register_object(ProgressBar(), "ganlab.progress")
        return trainer.fit()
    except Exception as exc:
        explained = distributed.explain(exc, dist)  # another rank's failure, said in one line
        if explained is exc:
            raise
        raise explained from exc
    finally:
        distributed.teardown(dist, failed=sys.exc_info()[0] is not None)
