"""Runs as a file: an experiment's records exported from one store and imported into another.

A run store lives where its runs trained. An experiment whose seeds trained on machines that share no
server, or on machines that do not outlive the run, is put together by exporting each machine's
runs and importing the files into one store, where ``ganlab compare`` reads them as it reads runs
trained there. A file holds each run's name, status, start and end time, params, tags and the
history of its metrics (every logged step, with its timestamp), so compare's tests, speed metrics
and plots give the same answers in either store. Artifacts (checkpoints, pictures, networks) stay
in the source store: the file is small enough to commit beside the results it supports.

Importing is idempotent: each imported run is tagged with the id it first had (``ganlab.imported_from``;
a run exported again from the store it was imported into keeps that first id), and a run already in
the target experiment, by that tag or by its own id, is not imported again: a store's export, taken
again after more runs were added to it, can be imported over an older one.
A sweep's or population's parent link is carried over to the parent's new id.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ganlab.errors import GanlabError

FORMAT = "ganlab-runs/1"
IMPORTED_FROM = "ganlab.imported_from"
PARENT = "mlflow.parentRunId"
#: statuses a run ends with; a RUNNING or SCHEDULED run is still being written and is left out
ENDED = ("FINISHED", "FAILED", "KILLED")
#: the most a file may hold once decompressed (a 3 000-step run of experiments/modes.toml with every
#: metric is about 10 kB, 2 kB compressed)
MAX_BYTES = 1 << 30
#: MLflow's limits on one log_batch call
_BATCH_METRICS, _BATCH_PARAMS = 1000, 100


def why_no_artifacts(run: Any, otherwise: str) -> str:
    """What to say of a run whose artifacts are missing: an imported run's are in the store it came from."""
    if IMPORTED_FROM in run.data.tags:
        return (f"it was imported (`ganlab import`) from run '{run.data.tags[IMPORTED_FROM]}' of another store, "
                "which holds its artifacts")
    return otherwise


def export_runs(store: Any, experiment_id: str, experiment: str, metrics: Iterable[str] = ()) -> tuple[dict[str, Any], int]:
    """The ended runs of one experiment as a document; also how many unfinished runs were left out.

    ``metrics``: fnmatch patterns of the metric keys to keep (all when empty); ``store`` is a
    client of the source store (``ganlab.record.store.read_client``)."""
    from ganlab.record.store import search_all

    patterns = [p for p in metrics if p]
    runs, left_out = [], 0
    for run in search_all(store, [experiment_id]):
        if run.info.status not in ENDED:
            left_out += 1
            continue
        keys = sorted(k for k in run.data.metrics if not patterns or any(fnmatch.fnmatchcase(k, p) for p in patterns))
        runs.append({
            "run_id": run.info.run_id,
            "run_name": run.info.run_name or "",
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "params": dict(run.data.params),
            "tags": dict(run.data.tags),
            "metrics": {key: [[m.step, m.timestamp, _number(m.value)]
                              for m in store.get_metric_history(run.info.run_id, key)] for key in keys},
        })
    return {"format": FORMAT, "experiment": experiment, "runs": runs}, left_out


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)  # JSON has no NaN or infinity


#: the values a point may hold besides a number: what _number writes for the numbers JSON lacks
_NON_FINITE = ("nan", "inf", "-inf")


def write_archive(document: dict[str, Any], path: Path) -> None:
    """Write the document to ``path`` (gzip-compressed when it ends in .gz); an existing file is refused."""
    data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    try:
        with open(path, "xb") as out:  # never over an existing file, even one made since the command began
            out.write(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    except FileExistsError:
        raise GanlabError(f"{path} already exists; export to a new file (nothing was written)") from None
    except OSError as exc:
        raise GanlabError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_archive(path: Path) -> dict[str, Any]:
    """The document in ``path``, checked to be a ganlab runs file; anything else is one line."""
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise GanlabError(f"no runs file at {path}") from None
    except (OSError, EOFError) as exc:
        raise GanlabError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(data) > MAX_BYTES:
        raise GanlabError(f"{path} holds more than {MAX_BYTES >> 20} MiB once decompressed; not a runs file ganlab wrote")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise GanlabError(f"{path} is not a runs file (`ganlab export` writes them): not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else None
        raise GanlabError(f"{path} is not a runs file of format {FORMAT} (found {found!r}); "
                          "`ganlab export` writes them")
    if not isinstance(document.get("experiment"), str) or not isinstance(document.get("runs"), list):
        raise GanlabError(f"{path}: a runs file needs 'experiment' (a name) and 'runs' (a list)")
    for index, run in enumerate(document["runs"]):
        problem = _run_problem(run)
        if problem:
            raise GanlabError(f"{path}: run {index + 1} of {len(document['runs'])} {problem}; nothing was imported")
    return document


def _run_problem(run: Any) -> str | None:
    if not isinstance(run, dict):
        return "is not a table"
    for key, kind in (("run_id", str), ("status", str), ("params", dict), ("tags", dict), ("metrics", dict)):
        if not isinstance(run.get(key), kind):
            return f"lacks '{key}' ({kind.__name__})"
    if run["status"] not in ENDED:
        return f"has status {run['status']!r} (a file holds ended runs: {', '.join(ENDED)})"
    for key in ("start_time", "end_time"):
        if not _is_int(run.get(key)) and run.get(key) is not None:
            return f"has {key} {run[key]!r}, not milliseconds since 1970"
    for key, points in run["metrics"].items():
        if not isinstance(points, list) or not all(_is_point(p) for p in points):
            return f"has metric '{key}' not as [step, timestamp, value] points"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_point(point: Any) -> bool:
    if not (isinstance(point, list) and len(point) == 3 and _is_int(point[0]) and _is_int(point[1])):
        return False
    value = point[2]
    return value in _NON_FINITE or (isinstance(value, (int, float)) and not isinstance(value, bool))


def import_runs(client: Any, experiment_id: str, document: dict[str, Any]) -> tuple[int, int]:
    """Create the document's runs in the experiment (parents before their children); (imported, already there).

    ``client``: an MLflow client of the target store (``ganlab.record.store.client``)."""
    from mlflow.entities import Metric, Param

    from ganlab.record.store import search_all, store_error

    present = {}
    for run in search_all(client, [experiment_id]):
        present[run.info.run_id] = run.info.run_id
        if IMPORTED_FROM in run.data.tags:
            present[run.data.tags[IMPORTED_FROM]] = run.info.run_id
    new_ids = dict(present)  # an id in the file -> the id of that run here
    imported = 0
    for run in _parents_first(document["runs"]):
        old = run["run_id"]
        origin = run["tags"].get(IMPORTED_FROM) or old  # a run exported again after an import keeps its first id
        if origin in present or old in present:
            new_ids[old] = present.get(origin) or present[old]
            continue
        tags = {k: str(v) for k, v in run["tags"].items() if k not in ("mlflow.runName", PARENT)}
        tags[IMPORTED_FROM] = origin
        parent = run["tags"].get(PARENT)
        if parent in new_ids:
            tags[PARENT] = new_ids[parent]
        created = client.create_run(experiment_id, start_time=run.get("start_time"), tags=tags,
                                    run_name=run.get("run_name") or None)
        new_id = created.info.run_id
        try:
            params = [Param(k, str(v)) for k, v in run["params"].items()]
            for start in range(0, len(params), _BATCH_PARAMS):
                client.log_batch(new_id, params=params[start:start + _BATCH_PARAMS])
            points = [Metric(key, float(value), timestamp, step)
                      for key, history in run["metrics"].items() for step, timestamp, value in history]
            for start in range(0, len(points), _BATCH_METRICS):
                client.log_batch(new_id, metrics=points[start:start + _BATCH_METRICS])
            client.set_terminated(new_id, status=run["status"], end_time=run.get("end_time"))
        except Exception as exc:  # the store refused it (a name, a value too long): no half-made run stays
            client.set_terminated(new_id, status="FAILED")
            client.delete_run(new_id)
            raise GanlabError(f"the store refused run '{old}' ({run.get('run_name') or 'unnamed'}): "
                              f"{store_error(exc)}; {imported} run(s) imported before it") from None
        new_ids[old] = new_id
        imported += 1
    return imported, len(document["runs"]) - imported


def _parents_first(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs ordered so that a parent in the list comes before its children (sweep > population > seed)."""
    by_id = {run["run_id"]: run for run in runs}

    def depth(run: dict[str, Any]) -> int:
        level, seen = 0, {run["run_id"]}
        while (parent := run["tags"].get(PARENT)) in by_id and parent not in seen:
            run, level = by_id[parent], level + 1
            seen.add(parent)
        return level

    return sorted(runs, key=depth)  # sorted is stable: the file's order within a level
