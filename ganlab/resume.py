"""``ganlab resume RUN_ID``: continue a run in the same MLflow run from its last checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError


def find_run(run_id: str, uri: str) -> Any:
    from ganlab.tracking import client

    try:
        return client(uri).get_run(run_id)
    except Exception:
        raise GanlabError(f"no run '{run_id}' in the tracking store {uri} (see `ganlab runs`)") from None


def checkpoint_dir(run: Any) -> Path:
    from ganlab.tracking import local_artifact_dir

    local = local_artifact_dir(run)
    if local is None:
        local = Path("mlruns") / "uploads" / run.info.run_id
    return local / "checkpoints"


def resume_run(run_id: str, plugins: Any, tracking_uri: str | None = None, steps: int | None = None) -> Any:
    from ganlab import checkpoint
    from ganlab.config import ConfigBuilder
    from ganlab.runner import run as run_training
    from ganlab.tracking import tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    run = find_run(run_id, uri)
    if run.info.status == "FINISHED" and steps is None:
        raise GanlabError(f"run '{run_id}' already FINISHED; pass --steps N to train it further")
    found = checkpoint.list_checkpoints(checkpoint_dir(run))
    if not found:
        raise GanlabError(f"run '{run_id}' has no checkpoint to resume from (looked in {checkpoint_dir(run)})")
    state = checkpoint.load(found[-1])
    builder = ConfigBuilder().add_mapping(state["config"], f"checkpoint {found[-1].name}")
    sets = {"tracking_uri": uri, "tracking": True}
    if steps is not None:
        sets["steps"] = steps
    builder.add_mapping(sets, "resume")
    config = builder.build(plugins.registry)
    if int(state["step"]) >= config.steps:
        raise GanlabError(f"run '{run_id}' is at step {state['step']} of {config.steps}; pass --steps N with N > {state['step']}")
    return run_training(config, plugins, resume_run_id=run_id, resume_state=state)
