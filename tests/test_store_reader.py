"""Reading the store without MLflow (ganlab.record.sqlite_reader) gives what MLflow's client gives; run ids
are taken as a unique prefix or 'last' wherever a run id is taken."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_in_process


def _store(client: Any) -> dict[str, Any]:
    from mlflow.entities import Metric, Param, RunTag

    made: dict[str, Any] = {"a": client.create_experiment("a"), "b": client.create_experiment("b")}
    start = int(time.time() * 1000)
    runs = []
    for i in range(6):
        run = client.create_run(made["a" if i < 4 else "b"], run_name=f"run-{i}", start_time=start + i,
                                tags={"ganlab.sweep.role": "parent"} if i == 1 else {})
        run_id = run.info.run_id
        client.log_batch(run_id, params=[Param("seed", str(i)), Param("head.name", "sigmoid" if i % 2 else "entmax")],
                         tags=[RunTag("note", f"n{i}")],
                         metrics=[Metric("loss.d", 1.0 + i, start, 1), Metric("loss.d", 0.5 + i, start + 1, 2),
                                  Metric("modes.kl", math.nan, start, 2)])
        client.set_terminated(run_id, status="FINISHED" if i % 3 else "FAILED")
        runs.append(run_id)
    client.delete_run(runs[3])
    made["runs"] = runs
    return made


def _view(run: Any) -> tuple[Any, ...]:
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run.data.metrics.items()}
    return (run.info.run_id, run.info.run_name, run.info.status, run.info.start_time, run.info.end_time,
            run.info.lifecycle_stage, run.info.artifact_uri, str(run.info.experiment_id), dict(run.data.params),
            dict(run.data.tags), metrics)


def test_the_reader_answers_as_mlflows_client(workdir: Path, mlflow_client: Any) -> None:
    from ganlab.record.sqlite_reader import SqliteReader, reader
    from ganlab.record.store import search_all

    made = _store(mlflow_client)
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    fast = reader(uri, lambda: pytest.fail("the reader fell back to MLflow"))
    assert isinstance(fast, SqliteReader)
    assert [(e.experiment_id, e.name) for e in fast.search_experiments()] == \
        [(e.experiment_id, e.name) for e in sorted(mlflow_client.search_experiments(), key=lambda e: int(e.experiment_id))]
    assert fast.get_experiment_by_name("b").experiment_id == mlflow_client.get_experiment_by_name("b").experiment_id
    assert fast.get_experiment_by_name("nope") is None
    both = [made["a"], made["b"]]
    for filter_string in ("", "tags.`ganlab.sweep.role` = 'parent'", "attributes.status = 'FAILED'"):
        for newest_first in (False, True):
            ours = search_all(fast, both, filter_string, newest_first=newest_first)
            theirs = search_all(mlflow_client, both, filter_string, newest_first=newest_first)
            assert [_view(r) for r in ours] == [_view(r) for r in theirs], filter_string
    deleted = made["runs"][3]
    assert _view(fast.get_run(deleted)) == _view(mlflow_client.get_run(deleted))  # deleted runs: get_run only
    assert [(m.step, m.value) for m in fast.get_metric_history(made["runs"][2], "loss.d")] == \
        [(m.step, m.value) for m in mlflow_client.get_metric_history(made["runs"][2], "loss.d")] == [(1, 3.0), (2, 2.5)]


def test_an_unknown_filter_or_schema_goes_to_mlflow(workdir: Path, mlflow_client: Any) -> None:
    import sqlite3

    from ganlab.record.sqlite_reader import reader

    made = _store(mlflow_client)
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    asked: list[str] = []

    def fallback() -> Any:
        asked.append("mlflow")
        return mlflow_client

    fast = reader(uri, fallback)
    found = fast.search_runs([made["a"]], filter_string="params.seed = '2'")
    assert [r.info.run_name for r in found] == ["run-2"] and asked == ["mlflow"]
    db = sqlite3.connect(workdir / "mlruns" / "mlflow.db")
    db.execute("ALTER TABLE runs RENAME COLUMN artifact_uri TO artifact_location_v9")  # another schema
    db.commit()
    db.close()
    assert reader(uri, fallback) is mlflow_client


def test_runs_and_compare_list_from_the_reader_and_take_a_prefix_or_last(workdir: Path, mlflow_client: Any) -> None:
    made = _store(mlflow_client)
    listed = run_in_process(["runs", "--json"], workdir)
    assert listed.returncode == 0, listed.stderr
    import json

    rows = json.loads(listed.stdout)
    live = [r for i, r in enumerate(made["runs"]) if i != 3]
    assert sorted(r["run_id"] for r in rows) == sorted(live)
    assert rows[0]["name"] == "run-5"  # newest first
    from ganlab.record.store import get_run

    uri = "sqlite:///mlruns/mlflow.db"
    target = made["runs"][2]
    assert get_run(mlflow_client, target[:6], uri).info.run_id == target
    assert get_run(mlflow_client, "last", uri).info.run_id == made["runs"][5]
    from ganlab.errors import GanlabError

    with pytest.raises(GanlabError, match="no run 'ffffffffffff'"):
        get_run(mlflow_client, "ffffffffffff", uri)
    import sqlite3

    twin = target[:6] + ("0" * 26 if target[6:] != "0" * 26 else "1" * 26)  # a second run sharing the prefix
    db = sqlite3.connect(workdir / "mlruns" / "mlflow.db")
    columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    db.execute(f"INSERT INTO runs ({','.join(columns)}) SELECT {','.join('?' if c == 'run_uuid' else c for c in columns)} "
               "FROM runs WHERE run_uuid = ?", (twin, target))
    db.commit()
    db.close()
    with pytest.raises(GanlabError, match=f"run id prefix '{target[:6]}' is ambiguous"):
        get_run(mlflow_client, target[:6], uri)
    assert get_run(mlflow_client, target[:7] if target[6] != twin[6] else target, uri).info.run_id == target
    sampled = run_in_process(["sample", target[:8], "--n", "4", "--out", "x.npy"], workdir)
    assert f"run '{target}'" in sampled.stderr and sampled.returncode == 2  # found by its prefix: it has no generator
