"""`ganlab run` end to end: a real process (in this one where the process is not the point), a real
SQLite MLflow store, read back with MlflowClient."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY, run_cli, run_in_process

HERE = Path(__file__).parent / "plugins_for_tests"


def only_run(client, experiment: str = "ganlab"):
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


@pytest.mark.slow
def test_run_records_everything_in_mlflow(workdir, mlflow_client):
    record = workdir / "events.jsonl"
    out = run_cli(
        ["run", "--steps", "6", "--batch-size", "16", "--latent-dim", "8", "--log-every", "2",
         "--sample-every", "3", "--eval-every", "6", "--seed", "5", "--set", "eval_samples=200",
         "--plugin", str(HERE / "lifecycle_recorder.py")],
        cwd=workdir, env={"GANLAB_TEST_RECORD": str(record)},
    )
    assert out.returncode == 0, out.stderr
    run = only_run(mlflow_client)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "mlp-sigmoid-nonsaturating-digits"
    params = run.data.params
    assert params["steps"] == "6" and params["seed"] == "5" and params["head.name"] == "sigmoid"
    assert params["lr_g"] == "0.0002" and params["beta1"] == "0.5" and params["dataset.size"] == "32"
    assert params["data.size"] and json.loads(params["data.shape"]) == [1, 32, 32]
    tags = run.data.tags
    assert tags["ganlab.head"] == "sigmoid" and tags["ganlab.head.plugin"] == "heads"
    assert tags["ganlab.arch.plugin"] == "architectures" and tags["ganlab.version"]

    history = mlflow_client.get_metric_history(run.info.run_id, "loss.d")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [2, 4, 6]
    assert all(abs(m.value) < 1e3 for m in history)
    assert {"diag.p_real_real", "diag.p_real_fake"} <= set(run.data.metrics)

    artifacts = Path(run.info.artifact_uri.replace("file://", ""))
    assert (artifacts / "generator.pt").stat().st_size > 0
    assert (artifacts / "discriminator.pt").stat().st_size > 0
    assert "[head]" in (artifacts / "config.toml").read_text()
    images = list((artifacts / "images").glob("samples*"))
    assert len(images) >= 2, "sample grids at steps 3 and 6"
    assert (artifacts / "data_card" / "data_card.json").is_file()
    assert list((artifacts / "checkpoints").glob("step-*.pt"))

    events = [json.loads(line) for line in record.read_text().splitlines()]
    assert events[0]["event"] == "start" and events[0]["run_id"] == run.info.run_id
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert events[-1] == {"event": "end", "status": "FINISHED", "step": 6}


@pytest.mark.slow
def test_same_seed_same_losses_on_cpu(workdir, mlflow_client):
    args = ["run", *TINY, "--log-every", "1", "--seed", "11", "--device", "cpu"]
    # one in a process of its own, one in this process: the losses depend on the seed alone
    assert run_cli(args + ["--run-name", "a"], cwd=workdir).returncode == 0
    assert run_in_process(args + ["--run-name", "b"], workdir).returncode == 0
    runs = {r.info.run_name: r for r in mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("ganlab").experiment_id])}
    histories = [
        [m.value for m in sorted(mlflow_client.get_metric_history(runs[n].info.run_id, "loss.g"), key=lambda m: m.step)]
        for n in ("a", "b")
    ]
    assert len(histories[0]) == 4 and histories[0] == histories[1]


@pytest.mark.slow
def test_ctrl_c_marks_the_run_killed(workdir, mlflow_client):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganlab", "run", "--steps", "100000", "--batch-size", "16", "--latent-dim", "8",
         "--log-every", "1", "--eval-every", "0", "--sample-every", "0"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
        if runs and runs[0].data.metrics.get("loss.d") is not None:
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the run never logged a loss")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    run = only_run(mlflow_client)
    assert run.info.status == "KILLED"


def test_unknown_head_is_one_line_and_creates_no_run(workdir, mlflow_client):
    out = run_in_process(["run", "--head", "sparsemx"], workdir)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "ganlab: error: unknown head 'sparsemx'; did you mean 'sparsemax'? (valid: entmax, sigmoid, softmax, sparsemax)"
    ]
    assert mlflow_client.get_experiment_by_name("ganlab") is None or not only_runs(mlflow_client)


def only_runs(client):
    return client.search_runs([e.experiment_id for e in client.search_experiments()])
