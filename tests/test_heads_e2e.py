"""`ganlab run` for every head × objective (and the semi-supervised K+1 mode), read back from MLflow.

All runs share one store, made once for the module, and run in this process
(torch and mlflow are imported once) on one torch thread.
"""

from __future__ import annotations

import math
import shutil

import pytest

from conftest import cli_in_process


HEADS = [("sigmoid", []), ("softmax", []), ("sparsemax", []), ("entmax", []),
         ("entmax-1.25", ["--set", "head.alpha=1.25"])]
OBJECTIVES = ["nonsaturating", "minimax"]
DIAG = ["diag.p_real_real", "diag.p_real_fake", "diag.frac_exact_0", "diag.frac_exact_1", "diag.entropy",
        "diag.g_grad_norm", "diag.g_grad_zero"]
TINY_RUN = ["--steps", "6", "--batch-size", "16", "--latent-dim", "8", "--eval-every", "3", "--log-every", "3",
            "--sample-every", "0", "--device", "cpu", "--set", "eval_samples=64", "--set", "arch.hidden_scale=0.05"]
# (run name, extra arguments): the K+1 discriminator on labelled digits, and bf16 autocast
EXTRA_RUNS = [
    ("ssl-softmax", ["--dataset", "digits", "--set", "dataset.size=8", "--head", "softmax",
                     "--set", "loss.labeled=40", "--set", "metrics=diagnostics,ssl"]),
    ("ssl-entmax-minimax", ["--dataset", "digits", "--set", "dataset.size=8", "--head", "entmax",
                            "--loss", "minimax", "--set", "loss.labeled=40", "--set", "metrics=diagnostics,ssl"]),
    ("bf16-entmax-1.25", ["--dataset", "ring8", "--set", "dataset.samples=512", "--head", "entmax",
                          "--set", "head.alpha=1.25", "--precision", "bf16", "--set", "metrics=diagnostics"]),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, template_store):
    """Train every run once; return {run name: mlflow Run} and the client."""
    import torch
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("heads-e2e")
    (root / "mlruns").mkdir()
    shutil.copy(template_store, root / "mlruns" / "mlflow.db")
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    common = [*TINY_RUN, "--tracking-uri", uri, "--experiment", "heads-e2e"]
    plans = [
        (f"{head}-{loss}", ["--dataset", "ring8", "--set", "dataset.samples=512", "--head", head.split("-")[0],
                            *extra, "--loss", loss, "--set", "metrics=diagnostics"])
        for head, extra in HEADS for loss in OBJECTIVES
    ] + EXTRA_RUNS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread beats threads fighting over 2 cores
    try:
        for name, args in plans:
            code = cli_in_process(["run", "--arch", "mlp", *args, *common, "--run-name", name])
            assert code == 0, f"run {name} exited {code}"
    finally:
        torch.set_num_threads(threads)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("heads-e2e")
    found = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    return found, client


def _history(client, run, key):
    return sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)


def _check_run(runs, name):
    found, client = runs
    run = found[name]
    assert run.info.status == "FINISHED"
    for key in ("loss.d", "loss.g"):
        history = _history(client, run, key)
        assert [m.step for m in history] == [3, 6], key
        assert all(math.isfinite(m.value) for m in history), (key, history)
    for key in DIAG:
        history = _history(client, run, key)
        assert [m.step for m in history] == [3, 6], key
        assert all(math.isfinite(m.value) for m in history), (key, history)
    metrics = run.data.metrics
    for key in ("diag.p_real_real", "diag.p_real_fake", "diag.frac_exact_0", "diag.frac_exact_1", "diag.g_grad_zero"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["diag.entropy"] >= 0 and metrics["diag.g_grad_norm"] >= 0
    return run


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("head", [h for h, _ in HEADS])
def test_every_head_and_objective_trains_and_logs_diagnostics(runs, head, objective):
    run = _check_run(runs, f"{head}-{objective}")
    assert run.data.params["head.name"] == head.split("-")[0]
    assert run.data.params["loss.name"] == objective
    if head == "entmax-1.25":
        assert run.data.params["head.alpha"] == "1.25"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ssl-softmax", "ssl-entmax-minimax"])
def test_semi_supervised_run_logs_test_accuracy(runs, name):
    run = _check_run(runs, name)
    assert run.data.params["loss.labeled"] == "40"
    found, client = runs
    accuracy = _history(client, run, "ssl.test_accuracy")
    assert [m.step for m in accuracy] == [3, 6]
    assert all(0.0 <= m.value <= 1.0 for m in accuracy)


@pytest.mark.slow
def test_bf16_autocast_run_with_bisection_entmax(runs):
    run = _check_run(runs, "bf16-entmax-1.25")
    assert run.data.params["precision"] == "bf16"


@pytest.mark.slow
def test_sigmoid_with_labels_is_refused_before_training(workdir, mlflow_client, capsys):
    code = cli_in_process(["run", "--head", "sigmoid", "--dataset", "digits", "--set", "loss.labeled=40",
                           "--steps", "2", "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "head 'sigmoid'" in err and "loss 'nonsaturating'" in err and "softmax" in err
    assert "Traceback" not in err
    experiment = mlflow_client.get_experiment_by_name("ganlab")
    assert experiment is None or not mlflow_client.search_runs([experiment.experiment_id])
