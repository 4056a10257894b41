"""Several ``ganlab run`` processes sharing one SQLite store: every run finishes, every value lands."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ganlab.record.store import RetryingClient

RUNS = 4
STEPS = 20
CROWD = ["run", "--steps", str(STEPS), "--batch-size", "16", "--latent-dim", "8", "--log-every", "1",
         "--eval-every", "5", "--sample-every", "10", "--checkpoint-every", "5", "--set", "metrics=diagnostics",
         "--set", "eval_samples=64", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05",
         "--device", "cpu", "--experiment", "crowd"]


@pytest.mark.slow
def test_four_runs_at_once_on_one_sqlite_store(workdir: Path, mlflow_client: Any) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # all four race to create the experiment, then interleave their writes
    procs = [subprocess.Popen([sys.executable, "-m", "ganlab", *CROWD, "--seed", str(i), "--run-name", f"r{i}"],
                              cwd=workdir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(RUNS)]
    results = [(p, *p.communicate(timeout=400)) for p in procs]
    for proc, _, err in results:
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "locked" not in err, err

    (experiment,) = [e for e in mlflow_client.search_experiments() if e.name == "crowd"]
    runs = mlflow_client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"r{i}" for i in range(RUNS)]
    for run in runs:
        assert run.info.status == "FINISHED"
        for key in ("loss.d", "loss.g"):
            points = mlflow_client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in points) == list(range(1, STEPS + 1)), (run.info.run_name, key)
        evaluated = mlflow_client.get_metric_history(run.info.run_id, "diag.p_real_real")
        assert sorted(m.step for m in evaluated) == [5, 10, 15, 20]
        images = [f.path for f in mlflow_client.list_artifacts(run.info.run_id, "images") if f.path.endswith(".png")]
        assert len([p for p in images if p.startswith("images/samples+")]) == 2  # steps 10 and 20
        assert len([p for p in images if p.startswith("images/head_histograms+")]) == 4  # each evaluation
    losses = {tuple(m.value for m in sorted(mlflow_client.get_metric_history(r.info.run_id, "loss.g"),
                                            key=lambda m: m.step)) for r in runs}
    assert len(losses) == RUNS, "each process logged its own values (different seeds)"


class _Writer:
    """A real SQLite writer that does not wait for locks (timeout 0): 'database is locked' at once."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.calls = 0

    def insert(self, value: int) -> None:
        self.calls += 1
        con = sqlite3.connect(self.db, timeout=0)
        try:
            with con:
                con.execute("INSERT INTO t VALUES (?)", (value,))
        finally:
            con.close()

    def fail(self) -> None:
        self.calls += 1
        raise ValueError("not a lock problem")


def test_retrying_client_waits_out_a_locked_store(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (v INTEGER)")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # another process's long write, as far as SQLite can tell
    threading.Timer(0.6, lambda: holder.execute("COMMIT")).start()
    writer = _Writer(db)
    RetryingClient(writer).insert(7)
    assert writer.calls > 1, "the first attempt met the lock"
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT v FROM t").fetchall() == [(7,)], "written exactly once"
    holder.close()

    before = writer.calls
    with pytest.raises(ValueError):
        RetryingClient(writer).fail()
    assert writer.calls == before + 1, "other errors are not retried"
