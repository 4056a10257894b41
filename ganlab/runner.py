"""Compose a run: plugins + configuration -> built components -> trainer -> record."""

from __future__ import annotations

from typing import Any

from ganlab.config import RunConfig
from ganlab.plugins import PluginManager


def run(config: RunConfig, plugins: PluginManager, resume_run_id: str | None = None,
        resume_state: dict[str, Any] | None = None, progress: bool = True) -> Any:
    """Train one run to the end; returns the final RunContext."""
    from ganlab.build import build
    from ganlab.engine import Trainer

    uri = None
    if config.tracking:
        from ganlab.tracking import tracking_uri

        uri = tracking_uri(config.tracking_uri or None)  # refuse a bad URI before building anything
    built = build(plugins, config)
    trainer = Trainer(built, plugins)
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
    if uri is not None:
        from ganlab.tracking import MlflowTracker

        plugins.register_object(MlflowTracker(uri, resume_run_id), "ganlab.tracking")
    if progress:
        from ganlab.progress import ProgressBar

        plugins.register_object(ProgressBar(), "ganlab.progress")
    return trainer.fit()
