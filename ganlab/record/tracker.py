"""The tracker: a built-in lifecycle plugin that records a run (``MlflowTracker``).

It never imports MLflow: every write goes to the process behind its ``store``
(ganlab.record.store_process). Metrics are buffered and written with
``log_batch``: on SQLite every call costs tens of milliseconds. At the run's end
it closes the record and, when the record could not be completed, says in one
line what happened, what is kept and how to go on (``account``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganlab import __version__, hookimpl
from ganlab.errors import GanlabError, one_line
from ganlab.record.heartbeat import heartbeat_tags, process_tags
from ganlab.record.outputs import (EXPORT_NOTE, EXPORT_STEP_TAG, EXPORT_TAG, data_card, data_card_params, data_preview,
                                   param_value, samples_as_text, shown_path, store_label, write_outputs)
from ganlab.record.ownership import own, release, run_lock
from ganlab.record.pictures import picture_of
from ganlab.record.store import DEFAULT_URI, absolute_sqlite, local_artifact_dir, sqlite_path
from ganlab.record.store_process import StoreProcess, TrackingError, signal_name
from ganlab.redact import mask_credentials


class MlflowTracker:
    """A built-in plugin that records a run through the lifecycle hooks.

    It never imports MLflow: every write goes to the process behind ``store``
    (ganlab.record.store_process), which does the MLflow work on another core.
    """

    flush_seconds = 10.0
    #: at most this long between heartbeats while steps complete (see ganlab.record.heartbeat)
    heartbeat_seconds = 30.0

    def __init__(self, store: StoreProcess, resume_run_id: str | None = None, registry: Any = None) -> None:
        self.store = store
        #: the registry the run's components came from: the tracker tags which plugin gave each
        #: regulariser, augmentation, metric and optimiser the run uses (None: the sections only)
        self.registry = registry
        self.uri = store.uri
        self.run_id = resume_run_id
        self.buffer: list[tuple[str, float, int, int]] = []
        self.last_flush = time.monotonic()
        self.last_beat = time.monotonic()
        self.step = 0
        self.skip_until: dict[str, int] = {}
        self.upload_dir: Path | None = None
        #: the record of the run could not be completed: the runner raises this once training is over
        self.failure: RecordFailure | None = None
        self.completed_at: int | None = None  # the step at which the whole record was last written
        self.checkpointed: int | None = None  # the step of the newest checkpoint this process wrote
        self.lock: Path | None = None  # this run's ownership (ganlab.record.ownership)
        #: the keys of the metrics' pictures logged by this process (animated at the run's end)
        self.picture_keys: set[str] = set()

    # ---- lifecycle ---------------------------------------------------------
    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        config = ctx.config
        if self.run_id is None:
            # run_params: how the run was executed, e.g. world_size and backend (ganlab.dist)
            params = {**config.flat(), **data_card_params(ctx), **ctx.extras.get("run_params", {})}
            self.run_id, artifact_uri = self.store.call(
                "start_run", config.experiment, config.run_name or config.default_run_name(),
                {**self.tags(ctx), **process_tags(), **heartbeat_tags(ctx.step)},
                {k: param_value(v) for k, v in params.items()})
            self.log_data_card(ctx)
        else:
            tags = {"ganlab.resumed_at_step": str(ctx.step), **process_tags(), **heartbeat_tags(ctx.step)}
            artifact_uri, self.skip_until = self.store.call("resume_run", self.run_id, tags)
        ctx.run_id = self.run_id
        ctx.recorder = self
        local = local_artifact_dir(artifact_uri)
        # held until the run has ended in the store (a resume already holds it: re-entrant)
        self.lock = own(run_lock(self.run_id, local), f"run '{self.run_id}'")
        if local is None:  # remote artifact store: write locally, upload on checkpoint
            local = Path("mlruns") / "uploads" / self.run_id
            self.upload_dir = local
        local.mkdir(parents=True, exist_ok=True)
        ctx.workdir = local
        self.announce(ctx)

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: dict[str, Any]) -> None:
        self.step = step
        if time.monotonic() - self.last_beat > self.heartbeat_seconds:
            self.flush()  # carries the heartbeat, so a slow run with a long log_every still looks alive
        if step % ctx.config.log_every and step != ctx.config.steps:
            return
        for key, value in losses.items():
            self.add(key, float(value), step)  # the only host sync, at log intervals
        if time.monotonic() - self.last_flush > self.flush_seconds:
            self.flush()

    @hookimpl
    def on_samples(self, ctx: Any, step: int, samples: Any) -> None:
        if self.skip_until.get("samples", -1) >= step:
            return  # logged before an interruption; a second image at this step would be a duplicate
        text = samples_as_text(ctx, samples)
        if text is not None:  # token sequences: the decoded lines, one file per sample step
            self.store.send("log_text", self.run_id, text, f"samples/step_{step:07d}.txt")
            return
        self.store.send("log_image", self.run_id, picture_of(samples), key="samples", step=step)

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float], pictures: dict[str, Any]) -> None:
        for key, value in metrics.items():
            self.add(key, value, step)
        for key, picture in (pictures or {}).items():  # rendered by the writer: an image card per key
            self.picture_keys.add(key)
            if self.skip_until.get(f"images/{key}", -1) < step:  # not logged before an interruption
                self.store.send("log_image", self.run_id, picture, key=key, step=step)
        params = ctx.extras.get("metric_params") or {}
        new = {k: v for k, v in params.items() if k not in ctx.extras.setdefault("logged_metric_params", set())}
        if new:
            self.store.send("log_batch", self.run_id, params={k: param_value(v) for k, v in new.items()})
            ctx.extras["logged_metric_params"].update(new)
        self.flush()

    @hookimpl
    def before_checkpoint(self, ctx: Any, step: int) -> None:
        """Wait until the store holds everything logged up to ``step``; at the last step, all of the record.

        A run resumed from this checkpoint skips the steps the store already
        holds and trains the rest again: a step logged but never written (the
        writer died, the store failed) would otherwise be missing for good.
        Before the last checkpoint the whole record is completed (config,
        weights, final metrics and samples): a run whose record cannot be
        completed fails before it, and ``ganlab resume`` can still finish it
        from the checkpoint before. Raising keeps the previous checkpoint the newest.
        """
        if step >= ctx.config.steps:
            self.complete(ctx)
        else:
            self.flush()
            self.store.wait()

    @hookimpl
    def on_checkpoint(self, ctx: Any, step: int, path: Any) -> None:
        self.checkpointed = step
        if self.upload_dir is not None:
            # waits: the next checkpoint may overwrite the file
            self.store.call("log_artifact", self.run_id, str(path), artifact_path="checkpoints")

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        """Close the record: FINISHED only once all of it is written (see ``before_checkpoint``).

        Never raises: a record that cannot be completed or closed becomes
        ``self.failure``, which the runner raises once every plugin has seen
        the end of the run.
        """
        if self.run_id is None:
            return
        try:
            self._close_record(ctx, status, error)
        finally:
            if self.lock is not None:
                release(self.lock)
                self.lock = None

    def _close_record(self, ctx: Any, status: str, error: BaseException | None) -> None:
        problem = error if isinstance(error, (TrackingError, RecordFailure)) else None
        if problem is None and self.completed_at != ctx.step:  # a run that stopped early: record what there is
            try:
                self.complete(ctx)
            except GanlabError as exc:
                problem = exc
        if problem is not None and status == "FINISHED":
            status, error = "FAILED", problem
        not_ended = self.end(status, end_tags(ctx, status, error, problem))
        problem = problem or not_ended
        if problem is not None:
            self.failure = RecordFailure(self.account(ctx, problem, status, not_ended is None))

    def complete(self, ctx: Any) -> None:
        """Write the rest of the record and wait until the store holds all of it.

        Raises TrackingError (the store or its writer failed) or RecordFailure
        (anything else: a module missing, a directory that cannot be written).
        """
        try:
            self.flush()
            self.log_outputs(ctx)
            self.store.wait()
        except GanlabError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stops the record from being complete
            raise RecordFailure(one_line(exc, plain_ganlab_errors=True)) from exc
        self.completed_at = ctx.step

    def end(self, status: str, tags: dict[str, str]) -> TrackingError | None:
        """Mark the run ended; the failure if the store would not take it.

        If the writer died, a fresh one marks the run: a run whose record
        cannot go on must not be left RUNNING.
        """
        if not self.store.gone:
            try:
                self.store.call("end_run", self.run_id, status, tags)
                return None
            except TrackingError as exc:
                if not self.store.gone:
                    return exc
        fresh: StoreProcess | None = None
        try:
            fresh = StoreProcess(self.uri)
            fresh.call("end_run", self.run_id, status, tags)
            return None
        except TrackingError as exc:
            return exc
        finally:
            if fresh is not None:
                fresh.close()

    def account(self, ctx: Any, problem: BaseException, status: str, ended: bool) -> str:
        """The one line that says what happened to the record, what is kept, and how to go on."""
        run, kind = self.run_id, getattr(problem, "kind", "refused")
        reason = one_line(problem, plain_ganlab_errors=True)
        if isinstance(problem, RecordFailure):
            what = f"the record of run {run} could not be completed at step {ctx.step}: {reason}"
        else:
            what = f"{reason}, at step {ctx.step} of run {run}"
        if kind in ("deleted", "replaced"):
            state = "the run's record went with it"
        elif ended:
            state = f"the run is marked {status}"
        else:
            state = f"the run could not be marked {status} and stays RUNNING (`ganlab runs` shows it STALE)"
        step, directory = self.kept_checkpoint(ctx)
        if step is None:
            return f"{what}; {state}; {self.no_checkpoint_left(ctx, kind, directory)}"
        kept = f"the checkpoint of step {step} is kept"
        if kind in ("deleted", "replaced"):
            return (f"{what}; {state}; {kept} in {shown_path(directory)}, but resuming needs the record: "
                    f"restore {store_label(self.uri)}, then `ganlab resume {run}`")
        if step >= ctx.config.steps:
            return f"{what}; {state}; {kept}"
        fix = "make the store writable, then " if kind == "readonly" else ""
        return f"{what}; {state}; {kept}: {fix}`ganlab resume {run}` continues from it"

    def no_checkpoint_left(self, ctx: Any, kind: str, directory: Path) -> str:
        """Why no checkpoint is on disk: none was written, or those written are gone (``rm -rf mlruns``)."""
        written = self.checkpointed if self.checkpointed is not None else ctx.resumed_from
        if written is None:
            return "no checkpoint was written to resume from"
        store = sqlite_path(self.uri)
        # the default layout keeps checkpoints in the store's folder: deleting it took them too
        with_store = kind == "deleted" and store is not None and directory.resolve().is_relative_to(store.parent)
        return (f"checkpoints up to step {written} had been written under {shown_path(directory)}, "
                f"{'deleted with the store' if with_store else 'since deleted'}; nothing is left to resume from")

    def kept_checkpoint(self, ctx: Any) -> tuple[int | None, Path]:
        """The newest checkpoint on disk, the one a resume starts from (its step, and the directory)."""
        from ganlab.train.checkpoint import list_checkpoints

        directory = Path(ctx.workdir or ".") / "checkpoints"
        found = list_checkpoints(directory) if ctx.workdir is not None else []
        return (int(found[-1].name[len("step-"):-len(".pt")]) if found else None), directory

    def announce(self, ctx: Any) -> None:
        """Say where the run goes, once it has an id: on stderr, before the first step."""
        import sys

        usual = absolute_sqlite(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI)  # what `ganlab ui` opens
        option = "" if absolute_sqlite(self.uri) == usual else f" --tracking-uri {self.uri}"
        what = f"run {self.run_id}" if ctx.resumed_from is None else f"resuming run {self.run_id} at step {ctx.step}"
        print(mask_credentials(f"ganlab: {what} in {store_label(self.uri)}; watch: ganlab ui{option}; "
                               f"samples: ganlab sample {self.run_id}{option}"), file=sys.stderr, flush=True)

    # ---- what plugins record through the context (RunContext.log_metrics, log_artifact) ----------
    def log_metrics(self, metrics: Any, step: int) -> None:
        for key, value in metrics.items():
            self.add(str(key), float(value), int(step))

    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None:
        self.store.call("log_artifact", self.run_id, str(path), artifact_path)  # copied before this returns

    # ---- helpers -------------------------------------------------------------
    def add(self, key: str, value: float, step: int) -> None:
        if self.skip_until.get(key, -1) >= step:
            return  # already recorded before an interruption: no duplicates on resume
        self.buffer.append((key, value, int(time.time() * 1000), step))

    def flush(self) -> None:
        metrics, self.buffer = self.buffer, []
        self.store.send("log_batch", self.run_id, metrics, tags=heartbeat_tags(self.step))
        self.last_flush = self.last_beat = time.monotonic()

    def tags(self, ctx: Any) -> dict[str, str]:
        used = () if self.registry is None else components_in_use(
            self.registry, ctx.config, ctx.extras.get("metrics"))
        tags = component_tags(ctx.components, used)
        commit = git_commit()
        if commit:
            tags["ganlab.git_commit"] = commit
        parent = ctx.config.settings.get("parent_run_id")
        if parent:  # MLflow's own nesting tag: the UI shows the run under its sweep
            tags["mlflow.parentRunId"] = parent
        return tags

    def log_data_card(self, ctx: Any) -> None:
        self.store.send("log_dict", self.run_id, data_card(ctx), "data_card/data_card.json")
        preview = data_preview(ctx)
        if preview is not None and getattr(ctx.data, "vocab", None) is not None:
            self.store.send("log_text", self.run_id, samples_as_text(ctx, preview), "data_card/real_samples.txt")
        elif preview is not None:
            self.store.send("log_image", self.run_id, picture_of(preview), artifact_file="data_card/real_samples.png")

    def log_outputs(self, ctx: Any) -> None:
        names = write_outputs(ctx, Path(ctx.workdir))
        note = ctx.extras.get(EXPORT_NOTE)
        if note is not None:  # the networks are not the final ones: say so on the run, where sample reads it
            self.store.send("log_batch", self.run_id, tags={EXPORT_TAG: note[0], EXPORT_STEP_TAG: note[1]})
        if self.upload_dir is not None:
            for name in names:
                self.store.send("log_artifact", self.run_id, str(Path(ctx.workdir) / name))
        self.log_animations()

    def log_animations(self) -> None:
        """Each picture key's pictures as one GIF, ``KEY/animation.gif``: the keys logged by this process
        and, in a resumed run, those logged before it (what the store held when it resumed)."""
        earlier = {name[len("images/"):] for name in self.skip_until if name.startswith("images/")}
        for key in sorted(self.picture_keys | earlier):
            self.store.send("log_animation", self.run_id, key)


def component_tags(components: dict[str, Any], used: Iterable[Any] = ()) -> dict[str, str]:
    """The tags naming a run's components, their plugins and versions.

    ``components``, one per section: ``ganlab.arch`` = mlp, ``ganlab.arch.plugin`` = architectures,
    ``ganlab.arch.version``. ``used``, the components a run may use several of a kind (regularisers,
    augmentations, metrics, optimisers; see :func:`components_in_use`): ``ganlab.<kind>.<name>.plugin``
    and ``ganlab.<kind>.<name>.version``, e.g. ``ganlab.regularizer.gp.plugin`` = regularizers.
    """
    tags = {"ganlab.version": __version__}
    for section, component in components.items():
        tags[f"ganlab.{section}"] = component.name
        tags[f"ganlab.{section}.plugin"] = component.provenance.plugin
        tags[f"ganlab.{section}.version"] = component.provenance.version or "unknown"
    for component in used:
        prefix = f"ganlab.{component.kind}.{component.name}"
        tags[f"{prefix}.plugin"] = component.provenance.plugin
        tags[f"{prefix}.version"] = component.provenance.version or "unknown"
    return tags


def components_in_use(registry: Any, config: Any, metrics: Iterable[str] | None = None) -> list[Any]:
    """The registry entries of the regularisers, augmentations, metrics and optimisers ``config`` uses,
    in that order. ``metrics``: the names of the metrics the run evaluates (with ``metrics=auto``, those
    that apply; default: the ones the configuration names). A name the registry lacks is left out."""
    metric_names = list(metrics) if metrics is not None else (config.metric_names or [])
    names = {"regularizer": list(config.regularizers), "augmentation": list(config.augmentations),
             "metric": metric_names, "optimizer": list(dict.fromkeys([config.optimizer_g, config.optimizer_d]))}
    return [registry.get(kind, name) for kind, listed in names.items()
            for name in listed if name in registry.names(kind)]


class RecordFailure(GanlabError):
    """The run's record could not be completed or closed (the store failed, its writer died).

    ``kind``: as for TrackingError; ``refused`` for a failure outside the store.
    """

    kind = "refused"


def end_tags(ctx: Any, status: str, error: BaseException | None,
             record_problem: BaseException | None) -> dict[str, str]:
    """Tags saying how the run ended: the failure and its step, or the signal that stopped it."""
    tags: dict[str, str] = {}
    if error is not None and status == "FAILED":
        tags["ganlab.error"] = mask_credentials(" ".join(str(error).split()))[:4000] or type(error).__name__
        tags["ganlab.error_type"] = type(error).__name__
        if hasattr(error, "step"):
            tags["ganlab.failed_step"] = str(error.step)
        if hasattr(error, "what"):
            tags["ganlab.failure_reason"] = f"non-finite {error.what}"
        elif record_problem is not None and getattr(record_problem, "kind", "") == "lost":
            tags["ganlab.failure_reason"] = "the process writing the record died"
        elif record_problem is not None:
            tags["ganlab.failure_reason"] = "the record could not be completed"
    elif status == "KILLED":
        signum = getattr(error, "signum", None)
        tags["ganlab.killed_at_step"] = str(ctx.step)
        tags["ganlab.killed_by"] = signal_name(signum) if signum else "KeyboardInterrupt"
    return tags


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
