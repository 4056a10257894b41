"""Signals: SIGTERM stops a run cleanly (checkpoint, KILLED, exit 143); SIGKILL leaves it RUNNING,
``ganlab runs`` calls it stale, ``ganlab resume`` finishes it. (SIGINT, exit 130: test_resume.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process
from test_resume import SLOW, artifacts, ganlab, history, the_run, wait_for

from ganlab.record.heartbeat import (
    TAG_HEARTBEAT,
    TAG_HOST,
    TAG_PID,
    TAG_PID_START,
    liveness,
    process_tags,
)
from ganlab.train.signals import GracefulStop

STEPS = 25


def slow_run(checkpoint_every: int, eval_every: int = 0) -> list[str]:
    """A tiny run slowed down by the slow_steps plugin, so that a signal finds it training."""
    return ["run", "--steps", str(STEPS), "--batch-size", "16", "--latent-dim", "8", "--log-every", "1",
            "--eval-every", str(eval_every), "--sample-every", "0", "--checkpoint-every", str(checkpoint_every),
            "--set", "metrics=none", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05",
            "--device", "cpu", "--plugin", SLOW]


def checkpoint_file(step: int) -> str:
    return f"mlruns/artifacts/ganlab/*/artifacts/checkpoints/step-{step:08d}.pt"


@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_and_exits_143(workdir: Path, mlflow_client: Any) -> None:
    proc = ganlab(slow_run(checkpoint_every=5), workdir, sleep=0.1)
    wait_for(checkpoint_file(5), workdir, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "SIGTERM received" in err
    run = the_run(mlflow_client, "ganlab")
    assert run.info.status == "KILLED" and run.info.end_time
    assert run.data.tags["ganlab.killed_by"] == "SIGTERM"
    stopped = int(run.data.tags["ganlab.killed_at_step"])
    assert 5 <= stopped < STEPS
    newest = sorted((artifacts(run) / "checkpoints").glob("step-*.pt"))[-1]
    assert newest.name == f"step-{stopped:08d}.pt"
    assert not list((artifacts(run) / "checkpoints").glob(".*")), "no temporary file left behind"
    assert [s for s, _ in history(mlflow_client, run.info.run_id, "loss.d")] == list(range(1, stopped + 1))


@pytest.mark.slow
def test_sigkill_leaves_a_stale_run_that_resume_finishes(workdir: Path, mlflow_client: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # evaluating every step flushes the losses every step, so the store gets ahead of the
    # newest checkpoint (10): resume restarts from it and must not log steps 11.. twice
    proc = ganlab(slow_run(checkpoint_every=10, eval_every=1), workdir, sleep=0.1)
    wait_for(checkpoint_file(10), workdir, proc)
    run = the_run(mlflow_client, "ganlab")
    deadline = time.monotonic() + 60
    while max((s for s, _ in history(mlflow_client, run.info.run_id, "loss.d")), default=0) < 12:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.kill()
    logged_before_kill = max(s for s, _ in history(mlflow_client, run.info.run_id, "loss.d"))
    run = mlflow_client.get_run(run.info.run_id)
    assert run.info.status == "RUNNING"
    deadline = time.monotonic() + 30  # SIGKILL is delivered asynchronously
    while not liveness(run).stale and time.monotonic() < deadline:
        time.sleep(0.05)
    assert liveness(run).stale, "an unreaped (zombie) process is dead too"
    proc.communicate(timeout=60)

    assert cli_in_process(["runs", "--stale", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in rows] == [run.info.run_id]
    (row,) = rows
    assert row["status"] == "STALE" and row["mlflow_status"] == "RUNNING"
    assert row["checkpoint_step"] >= 5 and f"pid {proc.pid} is gone on this host" in row["writer"]
    assert cli_in_process(["runs", "--status", "running", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [], "a stale run is not listed as RUNNING"

    resumed = ganlab(["resume", run.info.run_id, "--plugin", SLOW], workdir)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    run = mlflow_client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED"
    assert int(run.data.tags["ganlab.resumed_at_step"]) == row["checkpoint_step"] == 10
    assert logged_before_kill > 10, "the store was ahead of the checkpoint"
    for key in ("loss.d", "loss.g"):
        assert [s for s, _ in history(mlflow_client, run.info.run_id, key)] == list(range(1, STEPS + 1))
    assert cli_in_process(["runs", "--stale", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


# ---- GracefulStop in this process ------------------------------------------------------
def test_first_signal_is_recorded_second_sigint_aborts() -> None:
    before = signal.getsignal(signal.SIGINT)
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # repeated SIGTERM: ignored
        assert stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before, "handlers restored"


# ---- liveness from tags -----------------------------------------------------------------
def _run_with(mlflow_client: Any, tags: dict[str, str]) -> Any:
    experiment = mlflow_client.get_experiment_by_name("liveness")
    eid = experiment.experiment_id if experiment else mlflow_client.create_experiment("liveness")
    return mlflow_client.get_run(mlflow_client.create_run(eid, tags=tags).info.run_id)


@pytest.mark.slow
def test_liveness_from_host_pid_and_heartbeat(workdir: Path, mlflow_client: Any) -> None:
    here = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    cases = {
        "this process": ({**process_tags()}, False),
        "exited pid": ({TAG_HOST: here, TAG_PID: str(gone.pid)}, True),
        "pid reused by another process": ({TAG_HOST: here, TAG_PID: str(os.getpid()), TAG_PID_START: "1"}, True),
        "other host, fresh heartbeat": ({TAG_HOST: "elsewhere", TAG_PID: "1", TAG_HEARTBEAT: f"{now - 60:.0f}"}, False),
        "other host, old heartbeat": ({TAG_HOST: "elsewhere", TAG_PID: "1", TAG_HEARTBEAT: f"{now - 3600:.0f}"}, True),
    }
    for label, (tags, stale) in cases.items():
        run = _run_with(mlflow_client, tags)
        assert liveness(run, stale_after=900).stale is stale, label
    finished = _run_with(mlflow_client, {TAG_HOST: here, TAG_PID: str(gone.pid)})
    mlflow_client.set_terminated(finished.info.run_id, "FINISHED")
    assert not liveness(mlflow_client.get_run(finished.info.run_id)).stale, "only RUNNING runs can be stale"
