"""``ganlab export`` / ``ganlab import``: an experiment's records carried to another store, run for run.

The runs are real (a tracked population trained here, in process); the target is a second SQLite store
read through MLflow's own client and through ``ganlab compare``. Bad files are in the bad-input
catalogue (tests/test_bad_input.py, "runs files").
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run_in_process

TINY_POPULATION = ["run", "--dataset", "ring8", "--steps", "4", "--batch-size", "16", "--latent-dim", "4",
                   "--set", "arch.hidden_scale=0.0625", "--eval-every", "2", "--sample-every", "0", "--log-every", "1",
                   "--set", "metrics=modes", "--set", "eval_samples=200", "--set", "pictures=false", "--device", "cpu",
                   "--seeds", "0-1"]


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str = "ganlab") -> list[Any]:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def _history(uri: str, run: Any) -> dict[str, list[tuple[int, int, float]]]:
    client = _client(uri)
    return {key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics}


@pytest.fixture(scope="module")
def population_store(tmp_path_factory: pytest.TempPathFactory, template_store: Path) -> Path:
    """A store holding a two-seed population (a parent run and two child runs), trained once."""
    root = tmp_path_factory.mktemp("population")
    (root / "mlruns").mkdir()
    shutil.copy(template_store, root / "mlruns" / "mlflow.db")
    done = run_in_process(TINY_POPULATION, root)
    assert done.returncode == 0, done.stderr
    return root / "mlruns" / "mlflow.db"


@pytest.fixture
def empty_store(workdir: Path, template_store: Path) -> Any:
    """``empty_store(name)``: the URI of a new, already migrated store in ``workdir/name``."""
    def make(name: str) -> str:
        (workdir / name).mkdir()
        shutil.copy(template_store, workdir / name / "mlflow.db")
        return f"sqlite:///{workdir / name / 'mlflow.db'}"

    return make


@pytest.fixture
def trained(workdir: Path, population_store: Path) -> str:
    """This test's copy of the population's store, as the project's store."""
    shutil.copy(population_store, workdir / "mlruns" / "mlflow.db")
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"


def test_imported_runs_are_the_exported_runs_with_their_parent_links(trained: str, workdir: Path, empty_store: Any) -> None:
    target = empty_store("elsewhere")
    exported = run_in_process(["export", "-e", "ganlab", "runs.json.gz"], workdir)
    assert exported.returncode == 0, exported.stderr
    assert "3 run(s) of experiment 'ganlab' written to runs.json.gz" in exported.stderr
    imported = run_in_process(["import", "runs.json.gz", "--tracking-uri", target], workdir)
    assert imported.returncode == 0, imported.stderr
    assert "3 run(s) imported into experiment 'ganlab'" in imported.stderr

    source = {r.info.run_id: r for r in _runs(trained)}
    copies = {r.data.tags["ganlab.imported_from"]: r for r in _runs(target)}
    assert set(copies) == set(source)
    new_id = {old: copy.info.run_id for old, copy in copies.items()}
    parents = [r for r in source.values() if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    for old, run in source.items():
        copy = copies[old]
        assert copy.info.run_id != old
        assert copy.data.params == run.data.params
        assert (copy.info.status, copy.info.start_time, copy.info.end_time, copy.info.run_name) == \
               (run.info.status, run.info.start_time, run.info.end_time, run.info.run_name)
        expected_tags = {**run.data.tags, "ganlab.imported_from": old}
        if "mlflow.parentRunId" in run.data.tags:
            expected_tags["mlflow.parentRunId"] = new_id[run.data.tags["mlflow.parentRunId"]]
        assert copy.data.tags == expected_tags
        assert _history(target, copy) == _history(trained, run)
    for child in (r for r in source.values() if r not in parents):
        assert [p[0] for p in _history(trained, child)["modes.captured"]] == [2, 4]

    again = run_in_process(["import", "runs.json.gz", "--tracking-uri", target], workdir)
    assert again.returncode == 0 and "0 run(s) imported" in again.stderr and "3 already there" in again.stderr
    assert len(_runs(target)) == 3

    # the target's own export, taken after a run was added there, imported over the first file elsewhere
    extra = _client(target).create_run(copies[parents[0].info.run_id].info.experiment_id, run_name="added-later")
    _client(target).set_terminated(extra.info.run_id)
    assert run_in_process(["export", "-e", "ganlab", "--tracking-uri", target, "later.json"], workdir).returncode == 0
    third = empty_store("third")
    assert run_in_process(["import", "runs.json.gz", "--tracking-uri", third], workdir).returncode == 0
    later = run_in_process(["import", "later.json", "--tracking-uri", third], workdir)
    assert later.returncode == 0 and "1 run(s) imported" in later.stderr and "3 already there" in later.stderr
    assert sorted(r.data.tags["ganlab.imported_from"] for r in _runs(third)) == sorted([*source, extra.info.run_id])


def test_compare_reads_the_imported_runs_as_the_trained_ones(trained: str, workdir: Path, empty_store: Any) -> None:
    target = empty_store("elsewhere")
    assert run_in_process(["export", "-e", "ganlab", "runs.json"], workdir).returncode == 0
    assert run_in_process(["import", "runs.json", "-e", "copied", "--tracking-uri", target], workdir).returncode == 0
    args = ["compare", "--metrics", "modes.*,loss.*", "--format", "json"]
    here = run_in_process([*args, "-e", "ganlab", "--tracking-uri", trained], workdir)
    there = run_in_process([*args, "-e", "copied", "--tracking-uri", target], workdir)
    assert here.returncode == 0 and there.returncode == 0, there.stderr
    copy_of = {r.info.run_id: r.data.tags["ganlab.imported_from"] for r in _runs(target, "copied")}

    def groups(output: str, copies: bool = False) -> list[dict[str, Any]]:
        found = json.loads(output)["groups"]
        for group in found:
            group["run_ids"] = sorted(copy_of[i] if copies else i for i in group["run_ids"])
        return found

    assert groups(here.stdout) and groups(here.stdout) == groups(there.stdout, copies=True)
    at_two = ["compare", "--metrics", "loss.*", "--at-step", "2", "--format", "json"]
    here = run_in_process([*at_two, "-e", "ganlab", "--tracking-uri", trained], workdir)
    there = run_in_process([*at_two, "-e", "copied", "--tracking-uri", target], workdir)
    assert groups(here.stdout) == groups(there.stdout, copies=True)


def test_export_keeps_the_metrics_asked_for_and_leaves_unended_runs_out(trained: str, workdir: Path, empty_store: Any) -> None:
    client = _client(trained)
    experiment_id = client.get_experiment_by_name("ganlab").experiment_id
    ended = client.create_run(experiment_id, run_name="odd-values")
    for step, value in enumerate((math.nan, math.inf, -math.inf, 0.25)):
        client.log_metric(ended.info.run_id, "loss.odd", value, step=step)
    client.set_terminated(ended.info.run_id, "FAILED")
    client.create_run(experiment_id, run_name="still-running")

    done = run_in_process(["export", "-e", "ganlab", "--metrics", "loss.*", "runs.json.gz"], workdir)
    assert done.returncode == 0, done.stderr
    assert "ganlab: note: 1 run(s) not ended (RUNNING or SCHEDULED) left out" in done.stderr
    document = json.loads(gzip.decompress((workdir / "runs.json.gz").read_bytes()))
    assert [r["run_name"] for r in document["runs"]].count("still-running") == 0
    assert len(document["runs"]) == 4
    keys = {key for run in document["runs"] for key in run["metrics"]}
    assert keys and all(key.startswith("loss.") for key in keys)

    target = empty_store("elsewhere")
    assert run_in_process(["import", "runs.json.gz", "--tracking-uri", target], workdir).returncode == 0
    (odd,) = [r for r in _runs(target) if r.info.run_name == "odd-values"]
    (original,) = [r for r in _runs(trained) if r.info.run_name == "odd-values"]
    copied, kept = _history(target, odd)["loss.odd"], _history(trained, original)["loss.odd"]
    assert [p[:2] for p in copied] == [p[:2] for p in kept] and len(kept) == 4
    assert math.isnan(copied[0][2]) and math.isnan(kept[0][2]) and copied[1:] == kept[1:]
    assert copied[3][2] == 0.25 and copied[1][2] > 1e300 > -1e300 > copied[2][2]  # MLflow's SQL store clips ±inf
    assert odd.info.status == "FAILED"


def test_sampling_or_resuming_an_imported_run_says_where_its_artifacts_are(trained: str, workdir: Path, empty_store: Any) -> None:
    target = empty_store("elsewhere")
    assert run_in_process(["export", "-e", "ganlab", "runs.json"], workdir).returncode == 0
    assert run_in_process(["import", "runs.json", "--tracking-uri", target], workdir).returncode == 0
    child = next(r for r in _runs(target) if "mlflow.parentRunId" in r.data.tags)
    origin = child.data.tags["ganlab.imported_from"]
    for args in (["sample", child.info.run_id, "--out", "s.png"], ["resume", child.info.run_id, "--steps", "8"]):
        done = run_in_process([*args, "--tracking-uri", target], workdir)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"imported (`ganlab import`) from run '{origin}' of another store" in done.stderr
    assert all(r.info.status == "FINISHED" for r in _runs(target))


def test_the_records_committed_with_the_results_are_runs_files_of_this_format() -> None:
    """experiments/runs/*.json.gz back docs/results.md: a change of format must carry them along."""
    from ganlab.record.archive import read_archive

    files = sorted((Path(__file__).resolve().parents[1] / "experiments" / "runs").glob("*.json.gz"))
    assert files
    for path in files:
        document = read_archive(path)
        seeds = [r for r in document["runs"] if "seed" in r["params"] and not r["params"].get("seeds")]
        assert seeds and all(r["status"] == "FINISHED" and r["metrics"] for r in seeds), path


def test_a_run_the_store_refuses_is_one_line_and_leaves_no_run_behind(workdir: Path, empty_store: Any) -> None:
    """A metric name MLflow refuses: the run it was for is ended and deleted, the runs before it stay."""
    target = empty_store("elsewhere")
    fine = {"run_id": "a" * 32, "run_name": "fine", "status": "FINISHED", "start_time": 1, "end_time": 2,
            "params": {"seed": "0"}, "tags": {}, "metrics": {"loss.d": [[1, 1, 0.5]]}}
    refused = {**fine, "run_id": "b" * 32, "run_name": "refused", "metrics": {"a$b": [[1, 1, 0.5]]}}
    (workdir / "runs.json").write_text(json.dumps({"format": "ganlab-runs/1", "experiment": "x",
                                                   "runs": [fine, refused]}))
    done = run_in_process(["import", "runs.json", "--tracking-uri", target], workdir)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"the store refused run '{'b' * 32}' (refused)" in done.stderr and "1 run(s) imported before it" in done.stderr
    assert [r.info.run_name for r in _runs(target, "x")] == ["fine"]
    with sqlite3.connect(workdir / "elsewhere" / "mlflow.db") as db:
        assert db.execute("select count(*) from runs where status = 'RUNNING'").fetchone() == (0,)
