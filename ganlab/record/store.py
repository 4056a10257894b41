"""The run store, opened one way: where it is, a client of it, and reading runs back.

The store defaults to SQLite under ``mlruns/`` in the working directory (MLflow
3 refuses a bare file store by default); ``--tracking-uri`` or
``MLFLOW_TRACKING_URI`` point elsewhere (a team's tracking server). Everything
that opens it goes through here: the writer process (ganlab.record.store_worker)
that records a run, and the commands that read runs (runs, compare, resume,
sample, ui, sweeps). MLflow is imported only inside ``client``: the training
process imports this module and never MLflow.

Over 400 lines on purpose: every way into the store is here, so that no other module opens one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ganlab.errors import GanlabError, did_you_mean
from ganlab.record.reach import check_reachable
from ganlab.redact import mask_credentials

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
_SCHEMES = ("sqlite", "http", "https", "file", "postgresql", "mysql", "databricks", "mssql")


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


def existing_store(explicit: str | None = None) -> str:
    """The store a command that only reads opens: a local SQLite store must exist already.

    ``tracking_uri`` creates the store's directory, right for a command that records
    runs; one that only reads says plainly that nothing is there instead.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        if not path.is_file():
            hint = "run from the project directory or pass --tracking-uri" if uri == DEFAULT_URI else "check --tracking-uri"
            raise GanlabError(f"no MLflow store at {path} (in {Path.cwd()}); {hint}")
        return uri
    return tracking_uri(uri)  # checks the scheme


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


def read_client(uri: str) -> Any:
    """A client for reading the store at ``uri`` (listings, comparisons): a local SQLite store is read
    directly, without importing MLflow (``ganlab.record.sqlite_reader``); anything else through
    :func:`client`."""
    from ganlab.record.sqlite_reader import reader

    if os.environ.get("GANLAB_STORE_READER") == "mlflow":  # the baseline of benchmarks/bench_listing.py
        return client(uri)
    return reader(absolute_sqlite(uri), lambda: client(uri))


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



def find_run(run_id: str, uri: str) -> Any:
    return get_run(client(uri), run_id, uri, see="`ganlab runs`")


def get_run(mlflow_client: Any, run_id: str, uri: str, see: str = "`ganlab compare` or the MLflow UI") -> Any:
    """The run ``run_id`` names: a full run id, a unique prefix of one (at least 4 characters, as
    `ganlab runs` and the run's first line show it), or ``last`` for the newest run in the store."""
    import re

    if run_id in ("last", "latest"):
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        newest = mlflow_client.search_runs(experiments, max_results=1, order_by=["attributes.start_time DESC"]) \
            if experiments else []
        if not newest:
            raise GanlabError(f"no run in the tracking store {uri} for '{run_id}' (see {see})")
        return newest[0]
    if re.fullmatch(r"[0-9a-f]{4,31}", run_id):  # a prefix: MLflow's ids are 32 hex digits
        experiments = [e.experiment_id for e in mlflow_client.search_experiments()]
        found = [r.info.run_id for r in search_all(mlflow_client, experiments) if r.info.run_id.startswith(run_id)] \
            if experiments else []
        if len(found) > 1:
            raise GanlabError(f"run id prefix '{run_id}' is ambiguous in {uri}: {', '.join(found[:5])}"
                              + (f" and {len(found) - 5} more" if len(found) > 5 else "") + "; give more of it")
        if found:
            run_id = found[0]
    try:
        return mlflow_client.get_run(run_id)
    except Exception:
        raise GanlabError(f"no run '{run_id}' in the tracking store {uri} (see {see})") from None


def experiment_names(mlflow_client: Any) -> list[str]:
    return sorted(e.name for e in mlflow_client.search_experiments())


def get_experiment(mlflow_client: Any, name: str, uri: str) -> Any:
    found = mlflow_client.get_experiment_by_name(name)
    if found is None or found.lifecycle_stage == "deleted":
        names = experiment_names(mlflow_client)
        raise GanlabError(
            f"unknown experiment '{name}'{did_you_mean(name, names)} "
            f"(experiments in {uri}: {', '.join(names) if names else 'none'})"
        )
    return found


def search_all(mlflow_client: Any, experiment_ids: list[str], filter_string: str = "",
               limit: int | None = None, newest_first: bool = False) -> list[Any]:
    """Every matching run (the first ``limit`` when given), oldest first, following MLflow's result pages."""
    runs: list[Any] = []
    token = None
    while True:
        page = mlflow_client.search_runs(experiment_ids, filter_string=filter_string, max_results=min(limit or 1000, 1000),
                                         order_by=[f"attributes.start_time {'DESC' if newest_first else 'ASC'}"],
                                         page_token=token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token or (limit is not None and len(runs) >= limit):
            return runs if limit is None else runs[:limit]


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


def local_artifact_dir(uri: str) -> Path | None:
    """The directory behind an artifact URI, where it is a local one."""
    from urllib.request import url2pathname

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))  # as MLflow reads it: '%20' is a space
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None
