"""Where a study lives: a URL, opened as an Optuna storage, checked reachable in one line.

Default (no ``--storage``): Optuna's journal file ``mlruns/optuna.journal`` next to the MLflow
store. A journal file takes appends from concurrent local processes under a file lock, where
SQLite through SQLAlchemy gives "database is locked" once several workers write at once.
``journal:PATH`` names another journal file; ``postgresql://``, ``mysql://`` and ``sqlite:///``
URLs are relational storages (PostgreSQL is the one for workers on several machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganlab.errors import ConfigError, GanlabError, did_you_mean
from ganlab.redact import mask_credentials

DEFAULT_JOURNAL = Path("mlruns") / "optuna.journal"
RDB_SCHEMES = ("postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "mysql+pymysql", "sqlite")
SCHEMES = ("journal", *RDB_SCHEMES)


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


def open_storage(url: str) -> Any:
    """An Optuna storage for a resolved URL; unreachable or unusable storage is one line."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.split(":", 1)[1])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise GanlabError(f"storage {url}: cannot open the journal file ({exc.strerror or exc})") from None
    given = url
    if url.startswith("postgresql://"):  # psycopg (3), the driver ganlab installs, whatever SQLAlchemy's default
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        # a short connect timeout: an unreachable server is an error in seconds, not minutes
        engine_kwargs = {"connect_args": {"connect_timeout": 5}} if url.startswith("postgresql") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except ModuleNotFoundError as exc:
        raise GanlabError(f"storage {mask_credentials(given)}: its database driver is not installed ({exc.name})") from None
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: the server did not answer
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GanlabError(f"storage {mask_credentials(given)} is unreachable: {reason}") from None
