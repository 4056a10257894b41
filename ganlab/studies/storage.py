"""Where a study lives: a URL, opened as an Optuna storage, checked reachable in one line.

Default (no ``--storage``): Optuna's journal file ``mlruns/optuna.journal`` next to the MLflow
store. A journal file takes appends from concurrent local processes under a file lock, where
SQLite through SQLAlchemy gives "database is locked" once several workers write at once.
``journal:PATH`` names another journal file; ``postgresql://``, ``mysql://`` and ``sqlite:///``
URLs are relational storages (PostgreSQL is the one for workers on several machines).

Heartbeats are Optuna's: ``RDBStorage(heartbeat_interval=..., grace_period=...)`` with a
stale-trial callback, read by ``optuna.storages.fail_stale_trials``. Optuna implements the
heartbeat for its relational storage only; ``JournalHeartbeat`` (:func:`journal_heartbeat_class`) is the one piece written
here, the same three methods for the journal file, so that one worker loop serves both.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError, GanlabError, did_you_mean
from ganlab.redact import mask_credentials

DEFAULT_JOURNAL = Path("mlruns") / "optuna.journal"
RDB_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "mysql+pymysql", "sqlite")
SCHEMES = ("journal", *RDB_SCHEMES)
#: A journal trial's last heartbeat: [trial id, unix time]. The trial id is kept because Optuna's
#: retry callback copies a dead trial's system attributes, this one included, into its retry.
BEAT_ATTR = "ganlab:heartbeat"


def resolve(url: str | None) -> str:
    """The storage URL a study is created or found under (the default made explicit)."""
    if not url:
        return f"journal:{DEFAULT_JOURNAL.resolve()}"
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"--storage {mask_credentials(url)}: unknown storage scheme '{scheme or url}'{did_you_mean(scheme, SCHEMES)} "
                          f"(valid: journal:PATH, postgresql://..., mysql://..., sqlite:///PATH)")
    if scheme == "journal":
        return f"journal:{Path(url.split(':', 1)[1]).expanduser().resolve()}"
    return url


def open_storage(url: str, heartbeat: float | None = None, grace: float | None = None,
                 on_stale: Callable[[Any, Any], None] | None = None) -> Any:
    """An Optuna storage for a resolved URL, with heartbeats when ``heartbeat`` is given (a worker's);
    an unreachable or unusable storage is one line."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    beats = {"heartbeat_interval": heartbeat, "grace_period": grace,
             "heartbeat_stale_trial_callback": on_stale} if heartbeat is not None else {}
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.split(":", 1)[1])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return journal_heartbeat_class()(JournalFileBackend(str(path)), **beats)
        except OSError as exc:
            raise GanlabError(f"storage {url}: cannot open the journal file ({exc.strerror or exc})") from None
    given = url
    if url.startswith("postgresql://"):  # psycopg (3), the driver ganlab installs, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        # a short connect timeout: an unreachable server is an error in seconds, not minutes
        engine_kwargs = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat is "experimental"
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beats)
    except ModuleNotFoundError as exc:
        raise GanlabError(f"storage {mask_credentials(given)}: its database driver is not installed ({exc.name})") from None
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: the server did not answer
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanlabError(f"storage {mask_credentials(given)} is unreachable: {reason}") from None


@functools.cache
def journal_heartbeat_class() -> type:
    """The class below; made on first use, so that importing this module does not import Optuna."""
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    class JournalHeartbeat(JournalStorage, BaseHeartbeat):
        """Optuna's journal storage with the heartbeat Optuna gives only its relational storage.

        A heartbeat is a trial system attribute; a RUNNING trial is stale once its last heartbeat
        (or its start, before the first) is ``grace_period`` seconds old on the reader's wall clock:
        workers sharing one journal file are expected on one machine (use PostgreSQL across machines,
        where the database's own clock judges).
        """

        def __init__(self, backend: Any, heartbeat_interval: float | None = None, grace_period: float | None = None,
                     heartbeat_stale_trial_callback: Callable[[Any, Any], None] | None = None) -> None:
            super().__init__(backend)
            self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
            self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, [trial_id, time.time()])

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            from optuna.trial import TrialState

            now, stale = time.time(), []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                beat = trial.system_attrs.get(BEAT_ATTR)
                if isinstance(beat, list) and beat[0] == trial._trial_id:
                    last = float(beat[1])
                else:
                    last = trial.datetime_start.timestamp() if trial.datetime_start else now
                if now - last > float(self.grace_period or 0):
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> Any:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return self.heartbeat_stale_trial_callback

    return JournalHeartbeat

