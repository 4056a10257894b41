"""``ganlab resume RUN_ID``: continue a run in the same MLflow run from its last checkpoint.

Everything that can refuse is checked before the run is touched: the run
exists, is not finished (unless ``--steps`` extends it), is not still being
written by a live process, and its newest checkpoint reads back as a complete
ganlab checkpoint. Only then does training restart, in the same MLflow run, at
the checkpoint's step; the tracker skips metric steps the store already holds,
so the record has no duplicate (key, step) pairs.

A corrupt newest checkpoint is refused rather than silently skipped: resuming
from an older one would be a different run from what the user asked for. The
message says which file to delete to resume from the one before.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError


def checkpoint_dir(run: Any) -> Path:
    """Where the tracker wrote the run's checkpoints (remote artifact stores: the local upload copy)."""
    from ganlab.record.store import local_artifact_dir

    local = local_artifact_dir(run.info.artifact_uri)
    if local is None:
        local = Path("mlruns") / "uploads" / run.info.run_id
    return local / "checkpoints"


def owning(run: Any, kind: str = "run") -> contextlib.AbstractContextManager[Path]:
    """This process's ownership of ``run`` while it resumes it (see ganlab.record.ownership)."""
    from ganlab.record.ownership import owned, run_lock
    from ganlab.record.store import local_artifact_dir

    lock = run_lock(run.info.run_id, local_artifact_dir(run.info.artifact_uri))
    return owned(lock, f"{kind} '{run.info.run_id}'")


def check_not_running(run: Any) -> None:
    """Refuse to resume a run whose writer is still alive: two writers would interleave one record."""
    from ganlab.record.heartbeat import liveness

    if run.info.status != "RUNNING":
        return
    state = liveness(run)
    if state.state == "alive":
        pid = run.data.tags.get("ganlab.pid", "?")
        raise GanlabError(
            f"run '{run.info.run_id}' is still running ({state.detail}); stop it first "
            f"(Ctrl-C, or kill -TERM {pid}: it checkpoints and exits), then resume"
        )
    if state.state == "recent":
        print(f"ganlab: warning: run '{run.info.run_id}' is RUNNING elsewhere ({state.detail}); "
              f"resuming it here in case that process is gone", file=sys.stderr)


def latest_checkpoint(run: Any) -> tuple[Path, dict[str, Any]]:
    from ganlab.train import checkpoint

    directory = checkpoint_dir(run)
    found = checkpoint.list_checkpoints(directory)
    if not found:
        from ganlab.record.archive import why_no_artifacts

        raise GanlabError(f"run '{run.info.run_id}' has no checkpoint to resume from "
                          f"({why_no_artifacts(run, f'looked in {directory}')})")
    state = checkpoint.load(found[-1])
    named = int(found[-1].name[len("step-"):-len(".pt")])
    if int(state["step"]) != named:
        raise GanlabError(f"checkpoint {found[-1]} holds step {state['step']}, not {named}: it is not this run's")
    return found[-1], state


def resume_run(run_id: str, plugins: Any, tracking_uri: str | None = None, steps: int | None = None) -> Any:
    """Continue ``run_id`` from its newest checkpoint; ``steps`` trains to a new total."""
    from ganlab.record.store import find_run, tracking_uri as resolve_uri

    uri = resolve_uri(tracking_uri)
    run = find_run(run_id, uri)
    run_id = run.info.run_id  # a prefix or "last", resolved once: read again below, it must name the same run
    if run.info.lifecycle_stage == "deleted":
        raise GanlabError(f"run '{run_id}' is deleted; restore it first (mlflow runs restore)")
    if run.info.status == "FINISHED" and steps is None:
        raise GanlabError(f"run '{run_id}' already FINISHED; pass --steps N to train it further")
    from ganlab.dist import is_main_process

    # before anything reads the checkpoint or touches the record; under torchrun rank 0 alone
    # writes the record, so it alone owns the run
    with owning(run) if is_main_process() else contextlib.nullcontext():
        return _resume_owned(find_run(run_id, uri), plugins, uri, steps)


def _resume_owned(run: Any, plugins: Any, uri: str, steps: int | None) -> Any:
    """Resume ``run``, read again once owned: the previous owner may have ended it meanwhile."""
    from ganlab.config import ConfigBuilder
    from ganlab.train.runner import run as run_training

    run_id = run.info.run_id
    if run.info.status == "FINISHED" and steps is None:
        raise GanlabError(f"run '{run_id}' already FINISHED; pass --steps N to train it further")
    check_not_running(run)
    path, state = latest_checkpoint(run)
    builder = ConfigBuilder().add_mapping(state["config"], f"checkpoint {path.name}")
    sets: dict[str, Any] = {"tracking_uri": uri, "tracking": True}
    if steps is not None:
        sets["steps"] = steps
    builder.add_mapping(sets, "resume")
    try:
        config = builder.build(plugins.registry)
    except GanlabError as exc:
        raise GanlabError(f"{exc}{_plugin_hint(run, plugins)}") from None
    if int(state["step"]) >= config.steps:
        raise GanlabError(
            f"run '{run_id}' is at step {state['step']} of {config.steps}; pass --steps N with N > {state['step']}"
        )
    return run_training(config, plugins, resume_run_id=run_id, resume_state=state)


def resume_directory(directory: Path, plugins: Any, steps: int | None = None) -> Any:
    """Continue the untracked run whose ``run_dir`` is ``directory`` from its newest checkpoint."""
    from ganlab.record.ownership import directory_lock, owned

    with owned(directory_lock(directory), f"the run in {directory}"):
        return _resume_directory_owned(directory, plugins, steps)


def _resume_directory_owned(directory: Path, plugins: Any, steps: int | None) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.train import checkpoint
    from ganlab.train.runner import run as run_training

    found = checkpoint.list_checkpoints(directory / "checkpoints")
    if not found:
        raise GanlabError(f"{directory} holds no checkpoint to resume from (looked in {directory / 'checkpoints'})")
    state = checkpoint.load(found[-1])
    if int(state["step"]) != checkpoint.step_of(found[-1]):
        raise GanlabError(f"checkpoint {found[-1]} holds step {state['step']}, not {checkpoint.step_of(found[-1])}")
    builder = ConfigBuilder().add_mapping(state["config"], f"checkpoint {found[-1].name}")
    builder.add_mapping({"tracking": False, "run_dir": str(directory),
                         **({"steps": steps} if steps is not None else {})}, "resume")
    config = builder.build(plugins.registry)
    if int(state["step"]) >= config.steps:
        raise GanlabError(f"the run in {directory} is at step {state['step']} of {config.steps}; "
                          f"pass --steps N with N > {state['step']} to train it further")
    return run_training(config, plugins, resume_state=state)


def _plugin_hint(run: Any, plugins: Any) -> str:
    """A component from a ``--plugin`` file is only there if resume gets the same ``--plugin``."""
    tags = run.data.tags
    used = {tags[f"ganlab.{s}.plugin"] for s in ("arch", "head", "loss", "dataset") if f"ganlab.{s}.plugin" in tags}
    missing = sorted(name for name in used if name not in plugins.infos or plugins.infos[name].error)
    if not missing:
        return ""
    return f"; the run used plugin(s) {', '.join(missing)}, not loaded now: pass them with --plugin"
