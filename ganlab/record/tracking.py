"""MLflow as the record of every run.

The store defaults to SQLite under ``mlruns/`` in the working directory (MLflow
3 refuses a bare file store by default); ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` point elsewhere (a team's tracking server). Metrics
are buffered and written with ``log_batch``: on SQLite every call costs tens
of milliseconds. A run's tracker (``MlflowTracker``) writes through another
process (ganlab.record.store_process); the helpers here serve both it and the commands
that read the store (runs, compare, resume, sample).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ganlab import __version__, hookimpl
from ganlab.errors import GanlabError, one_line
from ganlab.record.heartbeat import heartbeat_tags, process_tags
from ganlab.record.ownership import own, release, run_lock
from ganlab.record.pictures import picture_of
from ganlab.record.reach import check_reachable
from ganlab.redact import mask_credentials
from ganlab.record.store_process import StoreProcess, TrackingError, signal_name

DEFAULT_STORE_DIR = Path("mlruns")
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "databricks", "mssql")
#: MLflow names a logged image ``images/<key>+step+<step>+timestamp+...``
_SAMPLE_IMAGE = re.compile(r"^samples\+step\+(\d+)\+")


def sample_image_step(name: str) -> int | None:
    """The step of a sample grid, from the file name MLflow gave the image."""
    found = _SAMPLE_IMAGE.match(name)
    return int(found.group(1)) if found else None


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
    check_reachable(uri)  # a server nothing answers at: one line within seconds, not minutes of MLflow's retries
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts of a local SQLite store live beside it, in ``<store dir>/artifacts``."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "artifacts").resolve().as_uri()
    return None


def client(uri: str) -> Any:
    """A client of the store at ``uri``; a store that cannot be opened is refused in one line.

    Opening a local SQLite store creates and migrates its schema when it is new:
    that happens under the store's lock (``store_lock``), so that any number of
    first runs can start at once.
    """
    from mlflow import MlflowClient

    quiet_mlflow_logging()  # after importing mlflow: the import configures its loggers
    absolute = absolute_sqlite(uri)
    try:
        with store_lock(absolute):
            return RetryingClient(MlflowClient(tracking_uri=absolute))
    except GanlabError:
        raise
    except Exception as exc:  # SQLite opens (and migrates) the store right here
        raise GanlabError(f"cannot open the tracking store {uri}: {store_error(exc)}") from None


def verbose() -> bool:
    """GANLAB_VERBOSE=1 (``--verbose``): let MLflow's own log messages through."""
    return os.environ.get("GANLAB_VERBOSE", "") == "1"


def quiet_mlflow_logging() -> None:
    """Keep MLflow's logging off the terminal unless GANLAB_VERBOSE=1.

    MLflow logs at INFO ("Creating initial MLflow database tables...") and logs
    every store error with its traceback before raising it; ganlab reports each
    failure itself, in one line.
    """
    import logging

    if verbose():
        return
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite store, absolute; None for any other store."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return None
    return Path(uri[len("sqlite:///"):]).resolve()


#: how long a process waits for another one to finish creating or migrating the store
STORE_LOCK_SECONDS = 300.0


@contextlib.contextmanager
def store_lock(uri: str, timeout: float = STORE_LOCK_SECONDS) -> Iterator[None]:
    """Hold ``<database>.lock`` (an exclusive ``flock``) while opening a local SQLite store.

    Opening a store that does not exist yet creates and migrates its tables; two
    processes doing that at once collide ("duplicate column name: step",
    "_alembic_tmp_latest_metrics already exists"). Under the lock the second one
    finds the tables made. Only the opening is serialised, not the writes.
    """
    import fcntl

    path = sqlite_path(uri)
    if path is None:
        yield
        return
    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield  # a directory nobody can write to: nobody can be creating a store in it either
        return
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise GanlabError(f"another process has held {path}.lock for {timeout:.0f}s while "
                                      f"opening the tracking store; is one stuck?") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def shown_path(path: Path) -> str:
    """A path as a person would type it here: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def store_label(uri: str) -> str:
    """The store in a message: ``mlruns/mlflow.db`` for a local SQLite store, else its URI."""
    path = sqlite_path(uri)
    return shown_path(path) if path is not None else uri


def find_run(run_id: str, uri: str) -> Any:
    store = client(uri)
    try:
        return store.get_run(run_id)
    except Exception:
        raise GanlabError(f"no run '{run_id}' in the tracking store {uri} (see `ganlab runs`)") from None


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
    text = mask_credentials(" ".join(str(exc).split("[SQL:", 1)[0].split("(Background on", 1)[0].split()))
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


#: MLflow 3's record of what an experiment is for. Its UI opens a "GenAI" experiment on traces
#: and latency and a "custom model development" one on the runs table and charts; ganlab's
#: experiments are the latter. (Where the UI has a GenAI / Machine learning switch instead,
#: ``ganlab ui`` prints a URL that opens the machine-learning view: see ganlab.cli.ui.)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
#: longest directory name Linux and macOS allow, in bytes
_MAX_DIRECTORY_NAME = 255
#: characters an experiment's directory name keeps as they are (and any non-ASCII letter or digit)
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+=,@ ")


def experiment_directory(name: str) -> str:
    """The directory that holds an experiment's runs under the store's artifact root.

    The experiment's name, with every character that could lead out of that
    directory or mean something in a path or URI ('/', '\\', '%', ':', control
    characters, a leading '.') percent-encoded: no name escapes the artifact
    root, and two names never share a directory. Refused in one line when even
    that cannot name a directory (empty, or too long once encoded).
    """
    if not name.strip():
        raise GanlabError("an MLflow experiment name cannot be empty or blank")
    encoded = "".join(c if c in _PLAIN or (ord(c) > 127 and c.isalnum()) else _percent(c) for c in name)
    if encoded.startswith("."):  # '.', '..' and hidden directories
        encoded = "%2E" + encoded[1:]
    size = len(encoded.encode("utf-8", "surrogatepass"))
    if size > _MAX_DIRECTORY_NAME:
        raise GanlabError(
            f"experiment name '{name[:60]}{'...' if len(name) > 60 else ''}' cannot name a directory in the "
            f"store: {size} bytes once characters such as '/' are encoded, at most {_MAX_DIRECTORY_NAME}; "
            f"pick a shorter name")
    return encoded


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))


def experiment_artifact_location(uri: str, name: str) -> str | None:
    """Where a new experiment keeps its artifacts: under the store's artifact root, whatever its name."""
    directory = experiment_directory(name)
    database = sqlite_path(uri)
    if database is None:
        return None  # another store decides its own locations
    # as_uri() escapes the encoded name once more: MLflow decodes the URI back to exactly this path
    return (database.parent / "artifacts" / directory).as_uri()


def ensure_experiment(mlflow_client: Any, name: str, uri: str) -> str:
    """Get or create an experiment; safe when several processes race to create it.

    Every experiment ganlab creates or uses is marked as MLflow's "custom model
    development" kind (``EXPERIMENT_KIND_TAG``) unless it already has a kind.
    """
    location = experiment_artifact_location(uri, name)  # refuses a name that cannot be stored
    last: Exception | None = None
    for attempt in range(5):
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                raise GanlabError(f"experiment '{name}' is deleted in {uri}; restore it or pick another name")
            if EXPERIMENT_KIND_TAG not in found.tags:
                mlflow_client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
            return found.experiment_id
        try:
            return mlflow_client.create_experiment(name, artifact_location=location,
                                                   tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except Exception as exc:
            last = exc
            time.sleep(0.2 * (attempt + 1))  # another process created it first; look again
    reason = f": {store_error(last)}" if last is not None else ""
    raise GanlabError(f"cannot create experiment '{name}' in {uri}{reason}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def local_artifact_dir(uri: str) -> Path | None:
    """The directory behind an artifact URI, where it is a local one."""
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))  # as MLflow reads it: '%20' is a space
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


class MlflowTracker:
    """A built-in plugin that records a run through the lifecycle hooks.

    It never imports MLflow: every write goes to the process behind ``store``
    (ganlab.record.store_process), which does the MLflow work on another core.
    """

    flush_seconds = 10.0
    #: at most this long between heartbeats while steps complete (see ganlab.record.heartbeat)
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
        #: the record of the run could not be completed: the runner raises this once training is over
        self.failure: RecordFailure | None = None
        self.completed_at: int | None = None  # the step at which the whole record was last written
        self.checkpointed: int | None = None  # the step of the newest checkpoint this process wrote
        self.lock: Path | None = None  # this run's ownership (ganlab.record.ownership)

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
                {k: _param_value(v) for k, v in params.items()})
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
        tags = component_tags(ctx.components)
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


#: Tags on a run whose exported networks are not its final ones (they were not finite):
#: what was exported instead, in words, and the step it is from ("none": nothing exported).
EXPORT_TAG = "ganlab.export"
EXPORT_STEP_TAG = "ganlab.export.step"
#: ctx.extras key: (note, step) when write_outputs exported something other than the final networks
EXPORT_NOTE = "export_note"


def write_outputs(ctx: Any, workdir: Path) -> list[str]:
    """A run's resolved configuration and final networks, written into ``workdir``; returns the file names.

    With ``ema``, generator.pt holds the average (what samples) and generator_trained.pt the trained G.
    Non-finite networks (a diverged run) are never exported: see ``exported_networks``.
    """
    import sys

    import torch

    (workdir / "config.toml").write_text(mask_credentials(ctx.config.to_toml()))  # tracking_uri may hold one
    names = ["config.toml"]
    vocab = getattr(ctx.data, "vocab", None)
    if vocab is not None:  # what `ganlab sample` needs to print a text run's samples as text
        (workdir / VOCAB_FILE).write_text(json.dumps({"vocab": list(vocab), "joiner": ctx.data.text_joiner}))
        names.append(VOCAB_FILE)
    networks, step = exported_networks(ctx, workdir / "checkpoints")
    for name, state in networks.items():
        torch.save(state, workdir / name)
        names.append(name)
    if step is not None:
        note = export_note(ctx.step, step, list(networks))
        ctx.extras[EXPORT_NOTE] = (note, str(step) if networks else "none")
        print(f"ganlab: note: {note}", file=sys.stderr, flush=True)
    return names


def exported_networks(ctx: Any, checkpoints: Path) -> tuple[dict[str, Any], int | None]:
    """File name -> state dict of the networks to export, and the checkpoint step they come from.

    The final networks (step None) when they are finite. Otherwise (the run diverged) those
    of the newest checkpoint whose networks are finite: weights full of NaN would make
    ``ganlab sample`` and anything else that loads generator.pt produce NaN. No finite
    checkpoint: nothing (step -1).
    """
    from ganlab.train import checkpoint

    averaged = ctx.generator_average is not None
    final = {"generator.pt": (ctx.generator_average if averaged else ctx.generator).state_dict(),
             "discriminator.pt": ctx.discriminator.state_dict()}
    if averaged:
        final["generator_trained.pt"] = ctx.generator.state_dict()
    if all(finite_state(state) for state in final.values()):
        return final, None
    for path in reversed(checkpoint.list_checkpoints(checkpoints)):
        try:
            state = checkpoint.load(path)
        except GanlabError:
            continue  # damaged: an older one may still do
        kept = {"generator.pt": state.get("generator_average", state["generator"]) if averaged else state["generator"],
                "discriminator.pt": state["discriminator"]}
        if averaged:
            kept["generator_trained.pt"] = state["generator"]
        if all(finite_state(s) for s in kept.values()):
            return kept, int(state["step"])
    return {}, -1


def finite_state(state: dict[str, Any]) -> bool:
    """Whether every floating-point tensor of a state dict is finite (integer buffers always are)."""
    import torch

    return all(bool(torch.isfinite(t).all()) for t in state.values()
               if isinstance(t, torch.Tensor) and t.is_floating_point())


def export_note(final_step: int, step: int, names: list[str]) -> str:
    """What was exported instead of non-finite networks, in one line."""
    if not names:
        return (f"the networks at step {final_step} are not finite and no checkpoint holds finite ones; "
                f"no generator.pt or discriminator.pt exported")
    return (f"the networks at step {final_step} are not finite; {' and '.join(names)} hold those of the "
            f"last finite checkpoint, step {step}")


def component_tags(components: dict[str, Any]) -> dict[str, str]:
    """The tags naming a run's components, their plugins and versions (``ganlab.arch`` = mlp ...)."""
    tags = {"ganlab.version": __version__}
    for section, component in components.items():
        tags[f"ganlab.{section}"] = component.name
        tags[f"ganlab.{section}.plugin"] = component.provenance.plugin
        tags[f"ganlab.{section}.version"] = component.provenance.version or "unknown"
    return tags


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


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]



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
    if getattr(data, "vocab", None) is not None:
        return data.x[:64].cpu()  # token ids: the first 64 lines
    n = 64 if len(ctx.data_shape) == 3 else min(len(data), 2000)
    return data.x[:n].float().cpu()


#: a text run's vocabulary, beside generator.pt: {"vocab": [...], "joiner": ""}
VOCAB_FILE = "vocab.json"


def samples_as_text(ctx: Any, samples: Any) -> str | None:
    """A text run's samples (distributions or token ids) as decoded lines; None for other data."""
    vocab = getattr(ctx.data, "vocab", None)
    if vocab is None:
        return None
    from ganlab.text import as_text_block, decode_samples

    return as_text_block(decode_samples(samples, vocab, ctx.data.text_joiner))
