"""MLflow as the record of every run.

The store defaults to SQLite under ``mlruns/`` in the working directory (MLflow
3 refuses a bare file store by default); ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` point elsewhere (a team's tracking server). Metrics
are buffered and written with ``log_batch``: on SQLite every call costs tens
of milliseconds. A run's tracker (``MlflowTracker``) writes through another
process (ganlab.store_process); the helpers here serve both it and the commands
that read the store (runs, compare, resume, sample).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ganlab import __version__, hookimpl
from ganlab.errors import GanlabError
from ganlab.heartbeat import heartbeat_tags, process_tags
from ganlab.pictures import picture_of
from ganlab.store_process import StoreProcess

DEFAULT_STORE_DIR = Path("mlruns")
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "databricks", "mssql")
#: MLflow names a logged image ``images/<key>+step+<step>+timestamp+...``
_SAMPLE_IMAGE = re.compile(r"^samples\+step\+(\d+)\+")


def sample_image_step(name: str) -> int | None:
    """The step of a sample grid, from the file name MLflow gave the image."""
    found = _SAMPLE_IMAGE.match(name)
    return int(found.group(1)) if found else None


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def tracking_uri(explicit: str | None = None) -> str:
    """The store to use: explicit, else MLFLOW_TRACKING_URI, else the project's SQLite store."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    scheme = urlparse(uri).scheme.split("+", 1)[0]
    if scheme not in _SCHEMES:
        raise GanlabError(
            f"tracking URI '{uri}' is not one MLflow understands (e.g. {DEFAULT_URI} or http://127.0.0.1:5000)"
        )
    if scheme == "sqlite":
        path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else ""
        if not path:
            raise GanlabError(f"tracking URI '{uri}' has no database path (e.g. {DEFAULT_URI})")
        # Absolute from here on: MLflow caches stores by URI within a process, and a relative
        # path would keep meaning the directory of the first run made in it.
        uri = "sqlite:///" + str(Path(path).resolve())
        parent = Path(path).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GanlabError(f"cannot create the tracking store directory {parent}: {exc.strerror}") from None
        if not os.access(parent, os.W_OK):
            raise GanlabError(f"the tracking store directory {parent} is not writable")
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it, in ``<store dir>/artifacts``."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def client(uri: str) -> Any:
    """A client of the store at ``uri``; a store that cannot be opened is refused in one line."""
    from mlflow import MlflowClient

    try:
        return RetryingClient(MlflowClient(tracking_uri=absolute_sqlite(uri)))
    except Exception as exc:  # SQLite opens (and migrates) the store right here
        raise GanlabError(f"cannot open the tracking store {uri}: {store_error(exc)}") from None


def absolute_sqlite(uri: str) -> str:
    """``sqlite:///mlruns/mlflow.db`` -> the same file by absolute path.

    MLflow caches one store per URI string for the whole process, so a relative
    SQLite URI would keep pointing at the directory where it was first used
    (several runs, tests or sweeps in one process, each in its own directory).
    """
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////") and ":memory:" not in uri:
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    return uri


def store_error(exc: BaseException) -> str:
    """A store failure in one line: SQLAlchemy appends the SQL statement and a help link."""
    text = " ".join(str(exc).split("[SQL:", 1)[0].split("(Background on", 1)[0].split())
    return (text or type(exc).__name__)[:300]


def _is_locked(exc: BaseException) -> bool:
    """SQLite's 'database is locked' (another process holds the write lock), however MLflow wraps it."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        text = str(seen).lower()
        if "database is locked" in text or "database table is locked" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _DropLockErrors:
    """A logging filter: MLflow logs every 'database is locked' with a traceback before raising it,
    which would print a traceback on stderr for a call that the retry then completes."""

    def filter(self, record: Any) -> bool:
        return not (record.exc_info and _is_locked(record.exc_info[1]))


def _quiet_lock_errors() -> None:
    import logging

    logger = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _DropLockErrors) for f in logger.filters):
        logger.addFilter(_DropLockErrors())


class RetryingClient:
    """An MlflowClient whose calls wait and retry while SQLite reports the store locked.

    Several processes logging to one SQLite file take turns holding its write
    lock; a writer that waits longer than SQLite's busy timeout gets 'database
    is locked'. A failed call rolls back its transaction, so retrying it
    neither loses nor duplicates anything. The jitter comes from a private
    ``random.Random``: the global RNGs belong to training and are checkpointed.
    """

    attempts = 12
    base_delay = 0.05
    max_delay = 2.0

    def __init__(self, inner: Any) -> None:
        import random

        self._inner = inner
        self._jitter = random.Random()
        _quiet_lock_errors()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(self.attempts):
                try:
                    return attr(*args, **kwargs)
                except Exception as exc:
                    if attempt == self.attempts - 1 or not _is_locked(exc):
                        raise
                    delay = min(self.max_delay, self.base_delay * 2**attempt)
                    time.sleep(delay * (0.5 + self._jitter.random()))
            raise AssertionError("unreachable")

        return call


def ensure_experiment(mlflow_client: Any, name: str, uri: str) -> str:
    """Get or create an experiment; safe when several processes race to create it."""
    for attempt in range(5):
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise GanlabError(f"experiment '{name}' is deleted in {uri}; restore it or pick another name")
            return found.experiment_id
        try:
            location = artifact_root(uri)
            return mlflow_client.create_experiment(name, artifact_location=f"{location}/{name}" if location else None)
        except Exception:
            time.sleep(0.2 * (attempt + 1))  # another process created it first; look again
    raise GanlabError(f"cannot create experiment '{name}' in {uri}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def local_artifact_dir(uri: str) -> Path | None:
    """The directory behind an artifact URI, where it is a local one."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


class MlflowTracker:
    """A built-in plugin that records a run through the lifecycle hooks.

    It never imports MLflow: every write goes to the process behind ``store``
    (ganlab.store_process), which does the MLflow work on another core.
    """

    flush_seconds = 10.0
    #: at most this long between heartbeats while steps complete (see ganlab.heartbeat)
    heartbeat_seconds = 30.0

    def __init__(self, store: StoreProcess, resume_run_id: str | None = None) -> None:
        self.store = store
        self.uri = store.uri
        self.run_id = resume_run_id
        self.buffer: list[tuple[str, float, int, int]] = []
        self.last_flush = time.monotonic()
        self.last_beat = time.monotonic()
        self.step = 0
        self.skip_until: dict[str, int] = {}
        self.upload_dir: Path | None = None

    # ---- lifecycle ---------------------------------------------------------
    @hookimpl
    def on_run_start(self, ctx: Any) -> None:
        config = ctx.config
        if self.run_id is None:
            # run_params: how the run was executed, e.g. world_size and backend (ganlab.distributed)
            params = {**config.flat(), **data_card_params(ctx), **ctx.extras.get("run_params", {})}
            self.run_id, artifact_uri = self.store.call(
                "start_run", config.experiment, config.run_name or config.default_run_name(),
                {**self.tags(ctx), **process_tags(), **heartbeat_tags(ctx.step)},
                {k: _param_value(v) for k, v in params.items()})
            self.log_data_card(ctx)
        else:
            tags = {"ganlab.resumed_at_step": str(ctx.step), **process_tags(), **heartbeat_tags(ctx.step)}
            artifact_uri, self.skip_until = self.store.call("resume_run", self.run_id, tags)
        ctx.run_id = self.run_id
        local = local_artifact_dir(artifact_uri)
        if local is None:  # remote artifact store: write locally, upload on checkpoint
            local = Path("mlruns") / "uploads" / self.run_id
            self.upload_dir = local
        local.mkdir(parents=True, exist_ok=True)
        ctx.workdir = local

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
        self.store.send("log_image", self.run_id, picture_of(samples), key="samples", step=step)

    @hookimpl
    def on_evaluate(self, ctx: Any, step: int, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.add(key, value, step)
        params = ctx.extras.get("metric_params") or {}
        new = {k: v for k, v in params.items() if k not in ctx.extras.setdefault("logged_metric_params", set())}
        if new:
            self.store.send("log_batch", self.run_id, params={k: _param_value(v) for k, v in new.items()})
            ctx.extras["logged_metric_params"].update(new)
        self.flush()

    @hookimpl
    def on_checkpoint(self, ctx: Any, step: int, path: Any) -> None:
        self.flush()
        if self.upload_dir is not None:
            # waits: the next checkpoint may overwrite the file
            self.store.call("log_artifact", self.run_id, str(path), artifact_path="checkpoints")

    @hookimpl
    def on_run_end(self, ctx: Any, status: str, error: BaseException | None) -> None:
        if self.run_id is None:
            return
        tags: dict[str, str] = {}
        try:
            self.flush()
            self.log_outputs(ctx)
        finally:
            if error is not None and status == "FAILED":
                tags["ganlab.error"] = " ".join(str(error).split())[:4000] or type(error).__name__
                tags["ganlab.error_type"] = type(error).__name__
                if hasattr(error, "step"):
                    tags["ganlab.failed_step"] = str(error.step)
                if hasattr(error, "what"):
                    tags["ganlab.failure_reason"] = f"non-finite {error.what}"
            elif status == "KILLED":
                signum = getattr(error, "signum", None)
                tags["ganlab.killed_at_step"] = str(ctx.step)
                tags["ganlab.killed_by"] = _signal_name(signum) if signum else "KeyboardInterrupt"
            self.store.call("end_run", self.run_id, status, tags)

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
        tags = {"ganlab.version": __version__}
        for section, component in ctx.components.items():
            prov = component.provenance
            tags[f"ganlab.{section}"] = component.name
            tags[f"ganlab.{section}.plugin"] = prov.plugin
            tags[f"ganlab.{section}.version"] = prov.version or "unknown"
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
        if preview is not None:
            self.store.send("log_image", self.run_id, picture_of(preview), artifact_file="data_card/real_samples.png")

    def log_outputs(self, ctx: Any) -> None:
        import tomli_w
        import torch

        workdir = Path(ctx.workdir)
        (workdir / "config.toml").write_text(tomli_w.dumps(_toml_safe(ctx.config.to_toml_dict())))
        torch.save(ctx.generator.state_dict(), workdir / "generator.pt")
        torch.save(ctx.discriminator.state_dict(), workdir / "discriminator.pt")
        if self.upload_dir is not None:
            for name in ("config.toml", "generator.pt", "discriminator.pt"):
                self.store.send("log_artifact", self.run_id, str(workdir / name))


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]


def _toml_safe(mapping: dict[str, Any]) -> dict[str, Any]:
    return {k: (_toml_safe(v) if isinstance(v, dict) else v) for k, v in mapping.items() if v is not None}


def data_card(ctx: Any) -> dict[str, Any]:
    config, data = ctx.config, ctx.data
    dataset = ctx.extras.get("dataset")
    declared = getattr(dataset, "labelled", None)  # mode indices of a mixture are not annotations
    labelled = declared if declared is not None else (getattr(data, "y", None) is not None)
    return {
        "name": config.name_of("dataset"),
        "size": len(data),
        "shape": list(ctx.data_shape),
        "num_classes": int(getattr(data, "num_classes", 0) or 0),
        "labelled": bool(labelled),
        "source": getattr(data, "source", ""),
        "options": config.options_of("dataset"),
        "storage": "resident tensor" if hasattr(data, "x") else "streamed",
        "test_size": len(data.test_x) if getattr(data, "test_x", None) is not None else 0,
    }


def data_card_params(ctx: Any) -> dict[str, Any]:
    card = data_card(ctx)
    return {f"data.{key}": card[key] for key in ("size", "shape", "num_classes", "source", "storage")}


def data_preview(ctx: Any) -> Any:
    data = ctx.data if hasattr(ctx.data, "x") else getattr(ctx.data, "preview", None)
    if data is None:
        return None
    n = 64 if len(ctx.data_shape) == 3 else min(len(data), 2000)
    return data.x[:n].float().cpu()
