"""Reading a local SQLite run store without MLflow: the listings (``ganlab runs``, ``compare``) in well
under a second.

Importing MLflow and opening its SQLAlchemy store cost about 2.5 s before the first row is read;
a listing needs neither. :class:`SqliteReader` answers the few read calls those commands make
(``search_experiments``, ``get_experiment_by_name``, ``get_run``, ``search_runs``,
``get_metric_history``) with plain ``sqlite3`` queries on MLflow's tables, read-only, and returns
objects with the attributes of MLflow's entities that ganlab reads (``run.info.run_id``,
``run.data.params`` ...). A store whose tables lack a column it reads (another MLflow schema), or
a filter it does not know, goes to MLflow's own client instead: :func:`reader` decides.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the columns read, per table: a store without them is read through MLflow
COLUMNS = {
    "runs": {"run_uuid", "name", "status", "start_time", "end_time", "lifecycle_stage", "artifact_uri",
             "experiment_id"},
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "latest_metrics": {"key", "value", "is_nan", "run_uuid"},
    "metrics": {"key", "value", "is_nan", "run_uuid", "step", "timestamp"},
}
#: the filters ganlab's listings pass: one tag or the status, equal to a quoted value
_FILTER = re.compile(r"^\s*(?:tags\.`(?P<tag>[^`]+)`|attributes\.status)\s*=\s*'(?P<value>[^']*)'\s*$")


@dataclass
class RunInfo:
    run_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str
    experiment_id: str


@dataclass
class RunData:
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Run:
    info: RunInfo
    data: RunData


@dataclass
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str


@dataclass
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


class Page(list):  # type: ignore[type-arg]
    """One page of runs: all of them (``token`` None, as MLflow's last page)."""

    token = None


class SqliteReader:
    def __init__(self, path: Path, fallback: Callable[[], Any]) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self._fallback, self._client = fallback, None
        self.workspace = "workspace" in _columns(self.db, "experiments")

    def client(self) -> Any:
        """MLflow's own client, for what this reader does not answer."""
        if self._client is None:
            self._client = self._fallback()
        return self._client

    # ---- experiments ----------------------------------------------------------------
    def search_experiments(self) -> list[Experiment]:
        where = " AND workspace = 'default'" if self.workspace else ""
        rows = self.db.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
                               f"WHERE lifecycle_stage = 'active'{where} ORDER BY experiment_id")
        return [Experiment(str(i), n, a or "", s) for i, n, a, s in rows]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        where = " AND workspace = 'default'" if self.workspace else ""
        row = self.db.execute("SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments "
                              f"WHERE name = ?{where}", (name,)).fetchone()
        return Experiment(str(row[0]), row[1], row[2] or "", row[3]) if row else None

    # ---- runs -----------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        found = self._runs("r.run_uuid = ?", [run_id], deleted=True)
        if not found:
            raise KeyError(run_id)  # MLflow raises its own exception; callers catch any
        return found[0]

    def search_runs(self, experiment_ids: Iterable[str], filter_string: str = "", max_results: int = 1000,
                    order_by: list[str] | None = None, page_token: Any = None) -> Any:
        match = _FILTER.match(filter_string) if filter_string else None
        if filter_string and match is None:
            return self.client().search_runs(list(experiment_ids), filter_string=filter_string,
                                             max_results=max_results, order_by=order_by, page_token=page_token)
        ids = [int(e) for e in experiment_ids]
        where, args = [f"r.experiment_id IN ({','.join('?' * len(ids))})"], list(ids)
        if match is not None and match.group("tag") is not None:
            where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.key = ? AND t.value = ?)")
            args += [match.group("tag"), match.group("value")]
        elif match is not None:
            where.append("r.status = ?")
            args.append(match.group("value"))
        newest_first = any("DESC" in o for o in order_by or [])
        return Page(self._runs(" AND ".join(where), args, newest_first=newest_first) if ids else [])

    def _runs(self, where: str, args: list[Any], deleted: bool = False, newest_first: bool = False) -> list[Run]:
        if not deleted:
            where += " AND r.lifecycle_stage = 'active'"
        order = "DESC" if newest_first else "ASC"
        rows = self.db.execute("SELECT r.run_uuid, r.name, r.status, r.start_time, r.end_time, r.lifecycle_stage, "
                               f"r.artifact_uri, r.experiment_id FROM runs r WHERE {where} "
                               f"ORDER BY r.start_time {order}, r.run_uuid ASC", args).fetchall()
        runs = {row[0]: Run(RunInfo(row[0], row[1] or "", row[2], row[3], row[4], row[5], row[6] or "", str(row[7])),
                            RunData()) for row in rows}
        for table, target in (("tags", "tags"), ("params", "params")):
            for chunk in _chunks(list(runs)):
                for key, value, run_id in self.db.execute(
                        f"SELECT key, value, run_uuid FROM {table} WHERE run_uuid IN ({','.join('?' * len(chunk))})",
                        chunk):
                    getattr(runs[run_id].data, target)[key] = value
        for chunk in _chunks(list(runs)):
            for key, value, is_nan, run_id in self.db.execute(
                    "SELECT key, value, is_nan, run_uuid FROM latest_metrics "
                    f"WHERE run_uuid IN ({','.join('?' * len(chunk))})", chunk):
                runs[run_id].data.metrics[key] = math.nan if is_nan else float(value)
        for run in runs.values():  # MLflow keeps a run's name in a tag as well as in the column
            run.info.run_name = run.info.run_name or run.data.tags.get("mlflow.runName", "")
        return list(runs.values())

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        rows = self.db.execute("SELECT key, value, is_nan, timestamp, step FROM metrics WHERE run_uuid = ? AND key = ? "
                               "ORDER BY timestamp, step", (run_id, key))
        return [Metric(k, math.nan if nan else float(v), int(t or 0), int(s)) for k, v, nan, t, s in rows]

    def __getattr__(self, name: str) -> Any:  # anything else (writing, artifacts): MLflow's client
        return getattr(self.client(), name)


def reader(uri: str, fallback: Callable[[], Any]) -> Any:
    """A reader of the store at ``uri``: :class:`SqliteReader` for a local SQLite file whose tables have
    the columns it reads, else ``fallback()`` (MLflow's client)."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return fallback()
    path = Path(uri[len("sqlite:///"):])
    if not path.is_file():
        return fallback()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            known = all(COLUMNS[table] <= _columns(db, table) for table in COLUMNS)
        finally:
            db.close()
    except sqlite3.Error:
        return fallback()
    return SqliteReader(path, fallback) if known else fallback()


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
