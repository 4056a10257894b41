"""The process that writes the MLflow record: what it writes, and how its failures surface.

Real processes and a real SQLite store throughout; the record is read back
with MLflow's own client.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY

from ganlab.record.pictures import picture_of, tile
from ganlab.record.store_process import StoreProcess, TrackingError


@pytest.fixture
def store(workdir: Path, store_uri: str):
    from ganlab.record.store import tracking_uri

    handle = StoreProcess(tracking_uri(store_uri))
    yield handle
    handle.close()


@pytest.fixture(params=["process", "thread"])
def any_store(request: pytest.FixtureRequest, workdir: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch):
    """The writer as a process (the default) and as a thread of this process (GANLAB_RECORD_WRITER=thread,
    the test suite's in-process runs): the record must be the same."""
    from ganlab.record.store import tracking_uri
    from ganlab.record.store_process import WRITER_ENV

    monkeypatch.setenv(WRITER_ENV, request.param)
    handle = StoreProcess(tracking_uri(store_uri))
    assert isinstance(handle.process, subprocess.Popen) == (request.param == "process")
    yield handle
    handle.close()
    assert handle.process.poll() == 0, "the writer ended once its pipe closed"


def start(store: StoreProcess, params: dict[str, str] | None = None) -> str:
    run_id, artifact_uri = store.call("start_run", "store-tests", "a-run", {"ganlab.test": "yes"}, params or {})
    assert artifact_uri.startswith("file://")
    return run_id


@pytest.mark.slow
def test_a_whole_record_reads_back(any_store: StoreProcess, mlflow_client) -> None:
    store = any_store
    params = {f"p{i:03d}": str(i) for i in range(150)}  # more than MLflow takes in one batch
    run_id = start(store, params)
    metrics = [("loss.d", float(step) / 7, 1_700_000_000_000 + step, step) for step in range(2500)]
    store.send("log_batch", run_id, metrics, tags={"ganlab.step": "2499"})
    store.send("log_dict", run_id, {"size": 3}, "data_card/data_card.json")
    store.send("log_image", run_id, picture_of(torch.rand(5, 1, 6, 6) * 2 - 1), key="samples", step=10)
    store.send("log_image", run_id, picture_of(torch.randn(300, 2)), artifact_file="data_card/points.png")
    store.call("end_run", run_id, "FINISHED", {"ganlab.note": "done"})

    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == params
    assert run.data.tags["ganlab.step"] == "2499" and run.data.tags["ganlab.note"] == "done"
    history = mlflow_client.get_metric_history(run_id, "loss.d")
    assert sorted(m.step for m in history) == list(range(2500))
    assert {m.value for m in history if m.step == 700} == {100.0}
    card = [f.path for f in mlflow_client.list_artifacts(run_id, "data_card")]
    assert sorted(card) == ["data_card/data_card.json", "data_card/points.png"]
    images = [f.path for f in mlflow_client.list_artifacts(run_id, "images")]
    assert any(p.startswith("images/samples+step+10+") and p.endswith(".png") for p in images)
    local = Path(run.info.artifact_uri.removeprefix("file://"))
    assert json.loads((local / "data_card" / "data_card.json").read_text()) == {"size": 3}


@pytest.mark.slow
def test_a_failed_operation_is_raised_in_one_line_by_the_next_call(any_store: StoreProcess) -> None:
    store = any_store
    run_id = start(store)
    store.send("log_batch", "0" * 32, [("x", 1.0, 0, 0)])  # no such run: fails in the worker, later
    with pytest.raises(TrackingError) as caught:
        store.call("log_batch", run_id, [("x", 1.0, 0, 0)])
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert "0" * 32 in message and str(store.uri) in message
    store.call("end_run", run_id, "FINISHED", {})  # the record goes on after a refused operation


@pytest.mark.slow
def test_a_store_that_cannot_be_opened_is_refused(workdir: Path) -> None:
    bad = workdir / "not-a-database.db"
    bad.write_text("this is not SQLite\n" * 100)
    store = StoreProcess(f"sqlite:///{bad}")
    try:
        with pytest.raises(TrackingError, match="cannot open the tracking store"):
            store.wait()
        with pytest.raises(TrackingError, match="cannot open the tracking store"):
            store.call("start_run", "e", "r", {}, {})  # and so is everything after it
    finally:
        store.close()
    assert store.process.returncode == 0


@pytest.mark.slow
def test_a_worker_that_dies_is_reported_not_waited_for(store: StoreProcess) -> None:
    start(store)
    store.process.kill()
    store.process.wait()
    with pytest.raises(TrackingError, match=r"died \(killed by SIGKILL\)") as caught:
        store.call("end_run", "0" * 32, "FINISHED", {})
    assert caught.value.kind == "lost" and store.gone


@pytest.mark.slow
def test_the_worker_outlives_a_ctrl_c_and_ends_when_the_pipe_closes(store: StoreProcess, mlflow_client) -> None:
    run_id = start(store)
    os.kill(store.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to a process group
    time.sleep(0.3)
    assert store.process.poll() is None
    store.call("end_run", run_id, "KILLED", {"ganlab.killed_by": "SIGINT"})
    assert mlflow_client.get_run(run_id).info.status == "KILLED"
    store.close()
    assert store.process.returncode == 0


def test_tiles_match_torchvisions_make_grid() -> None:
    from torchvision.utils import make_grid

    for count, channels in [(64, 1), (13, 3), (2, 1), (9, 3)]:
        images = torch.rand(count, channels, 7, 5) * 2 - 1
        expected = make_grid(images, nrow=8, normalize=True, value_range=(-1, 1), pad_value=1.0)
        got = tile((images + 1) / 2)
        torch.testing.assert_close(got, expected[:channels], rtol=0, atol=0)


TRAINING_PROCESS_REPORT = r"""
import json, sys
from ganlab.cli.app import main
code = main(sys.argv[1:])
print("REPORT " + json.dumps({"code": code, "loaded": sorted(m for m in ("mlflow", "sqlalchemy") if m in sys.modules)}))
"""


@pytest.mark.slow
def test_a_recorded_run_leaves_mlflow_out_of_the_training_process(workdir: Path, mlflow_client) -> None:
    result = subprocess.run([sys.executable, "-c", TRAINING_PROCESS_REPORT, "run", *TINY, "--experiment", "lean"],
                            check=False, capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout.split("REPORT ", 1)[1])
    assert report == {"code": 0, "loaded": []}, result.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("lean").experiment_id])
    assert run.info.status == "FINISHED" and "loss.d" in run.data.metrics



@pytest.mark.slow
def test_the_request_pipe_holds_several_sample_grids(store: StoreProcess) -> None:
    # a send must not wait for a busy writer: a 32x32 grid of 64 samples is about 75 kB
    import fcntl

    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    size = fcntl.fcntl(store._requests.fileno(), fcntl.F_GETPIPE_SZ)
    assert size >= min(limit, 1 << 20) and size > 64 * 1024


WRITER_WARM_UP_REPORT = r"""
import json, sys
import sqlalchemy
from ganlab.record.store_worker import Session
session = Session()
session.open(sys.argv[1])
from mlflow.store.tracking.dbmodels.models import SqlParam
print(json.dumps({"pillow": "PIL.PngImagePlugin" in sys.modules,
                  "mappers configured": sqlalchemy.inspect(SqlParam).configured}))
"""


@pytest.mark.slow
def test_opening_the_store_pays_first_use_costs_before_training_starts(workdir: Path, store_uri: str) -> None:
    # in a fresh process: the test process may have configured MLflow's mappers already
    from ganlab.record.store import tracking_uri

    result = subprocess.run([sys.executable, "-c", WRITER_WARM_UP_REPORT, tracking_uri(store_uri)], check=False,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"pillow": True, "mappers configured": True}


# ---- one writer for the records a process makes one after another --------------------------
@pytest.mark.slow
def test_records_made_one_after_another_share_a_writer_and_it_ends_with_the_command(
        workdir: Path, store_uri: str, mlflow_client) -> None:
    from ganlab.record.store import tracking_uri
    from ganlab.record.store_process import reusable_writers

    uri = tracking_uri(store_uri)
    with reusable_writers():
        first = StoreProcess(uri)
        first_run = start(first)
        first.call("end_run", first_run, "FINISHED", {})
        first.close()
        assert first.process.poll() is None  # idle, kept for the next record
        parent = StoreProcess(uri)
        assert parent.process is first.process
        parent_run = start(parent)
        child = StoreProcess(uri)  # open while the parent's is: a writer of its own
        assert child.process is not parent.process
        child_run = start(child)
        child.call("end_run", child_run, "FINISHED", {})
        child.close()
        after = StoreProcess(uri)  # the next child reuses the idle one, not the parent's busy writer
        assert after.process is child.process
        after_run = start(after)
        after.call("end_run", after_run, "FINISHED", {})
        after.close()
        parent.call("end_run", parent_run, "FINISHED", {})
        parent.close()
        writers = [first.process, child.process]
        assert all(w.poll() is None for w in writers)
    assert [w.returncode for w in writers] == [0, 0]  # both closed and waited for on leaving
    for run_id in (first_run, parent_run, child_run, after_run):
        assert mlflow_client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_a_reused_writer_starts_clean_after_a_store_it_could_not_open(workdir: Path, store_uri: str,
                                                                       mlflow_client) -> None:
    from ganlab.record.store import tracking_uri
    from ganlab.record.store_process import reusable_writers

    bad = workdir / "not-a-database.db"
    bad.write_text("this is not SQLite\n" * 100)
    with reusable_writers():
        refused = StoreProcess(f"sqlite:///{bad}")
        with pytest.raises(TrackingError, match="cannot open the tracking store"):
            refused.wait()
        refused.close()
        good = StoreProcess(tracking_uri(store_uri))
        assert good.process is refused.process
        run_id = start(good)  # not the earlier store's refusal
        good.call("end_run", run_id, "FINISHED", {})
        good.close()
        good.process.kill()  # an idle writer that died is not handed out again
        good.process.wait()
        fresh = StoreProcess(tracking_uri(store_uri))
        assert fresh.process is not good.process
        fresh.call("end_run", run_id, "KILLED", {})
        fresh.close()
    assert mlflow_client.get_run(run_id).info.status == "KILLED"


@pytest.mark.slow
def test_a_sweep_in_one_process_starts_one_writer_for_all_its_runs(workdir: Path, mlflow_client,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import TINY_RING8, TINY_SWEEP_BASE, cli_in_process

    from ganlab.record.store_process import WRITER_ENV

    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def counting_popen(args, *rest, **options):  # the real Popen, counted
        if "ganlab.record.store_worker" in args:
            started.append(args)
        return real_popen(args, *rest, **options)

    monkeypatch.setattr(subprocess, "Popen", counting_popen)
    monkeypatch.setenv(WRITER_ENV, "process")
    (workdir / "three.toml").write_text('experiment = "three"\n' + TINY_SWEEP_BASE + TINY_RING8
                                        + '[grid]\nseed = [0, 1, 2]\n')
    assert cli_in_process(["sweep", "three.toml"]) == 0
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("three").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4  # the sweep's parent and its three runs
    assert len(started) == 1, started
