"""NaN/Inf in a loss or a parameter: stop, keep the last good checkpoint, FAILED with reason and step, exit 3.

The fault is injected by a test plugin (tests/plugins_for_tests/nan_at_step.py)
selected like any objective: ``--loss nan-at-step --set loss.step=K``.
These runs go through ``ganlab.cli.app.main`` in-process: the exit code is main()'s
return value, which the console script passes to ``sys.exit`` unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process

from ganlab.train import checkpoint

NAN_PLUGIN = str(Path(__file__).parent / "plugins_for_tests" / "nan_at_step.py")
TINY_RUN = ["--batch-size", "16", "--latent-dim", "8", "--eval-every", "0", "--sample-every", "0",
            "--set", "metrics=none", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05", "--device", "cpu",
            "--steps", "12", "--plugin", NAN_PLUGIN, "--loss", "nan-at-step"]


def diverge(capsys: pytest.CaptureFixture[str], mlflow_client: Any, *args: str) -> tuple[int, Any, list[str]]:
    code = cli_in_process(["run", *TINY_RUN, *args])
    stderr = capsys.readouterr().err
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    errors = [line for line in stderr.splitlines() if line.startswith("ganlab: error:")]
    return code, run, errors


def checkpoint_steps(run: Any) -> list[int]:
    directory = Path(run.info.artifact_uri.replace("file://", "")) / "checkpoints"
    return [int(checkpoint.load(p)["step"]) for p in checkpoint.list_checkpoints(directory)]


def newest_is_finite(run: Any) -> bool:
    import torch

    directory = Path(run.info.artifact_uri.replace("file://", "")) / "checkpoints"
    state = checkpoint.load(checkpoint.list_checkpoints(directory)[-1])
    tensors = [*state["generator"].values(), *state["discriminator"].values()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_loss_fails_the_run_at_its_step(workdir: Path, mlflow_client: Any, capsys: Any, value: str) -> None:
    code, run, errors = diverge(capsys, mlflow_client, "--log-every", "1", "--checkpoint-every", "2",
                                "--set", "loss.step=7", "--set", f"loss.value={value}")
    assert code == 3
    kept = Path(run.info.artifact_uri.replace("file://", "")) / "checkpoints" / "step-00000006.pt"
    assert errors == [f"ganlab: error: training diverged: loss.d is not finite at step 7; "
                      f"the last good checkpoint, step 6, is kept: {kept}"]
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["ganlab.failed_step"] == "7"
    assert tags["ganlab.failure_reason"] == "non-finite loss.d"
    assert tags["ganlab.error_type"] == "Diverged"
    assert checkpoint_steps(run) == [4, 6], "the good checkpoints stay; none is written at or after step 7"
    assert newest_is_finite(run)
    history = mlflow_client.get_metric_history(run.info.run_id, "loss.d")
    assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6], "the non-finite value is not logged"
    assert all(math.isfinite(m.value) for m in history)


def test_non_finite_parameter_fails_the_run(workdir: Path, mlflow_client: Any, capsys: Any) -> None:
    # the plugin overwrites a generator weight with NaN after step 6, whose losses are finite:
    # only the parameter check before the step-6 checkpoint can see it
    code, run, errors = diverge(capsys, mlflow_client, "--log-every", "3", "--checkpoint-every", "3",
                                "--set", "loss.step=6", "--set", "loss.target=generator")
    assert code == 3
    assert len(errors) == 1 and "generator parameter 'main.0.weight' is not finite at step 6" in errors[0]
    assert run.info.status == "FAILED"
    assert run.data.tags["ganlab.failed_step"] == "6"
    assert run.data.tags["ganlab.failure_reason"] == "non-finite generator parameter 'main.0.weight'"
    assert checkpoint_steps(run) == [3], "the poisoned state was not written over the good one"
    assert newest_is_finite(run)


def test_divergence_between_log_steps_is_caught_before_the_next_checkpoint(workdir: Path, mlflow_client: Any,
                                                                           capsys: Any) -> None:
    # NaN at step 5; losses are only looked at every 10 steps, but the step-8 checkpoint checks first
    code, run, errors = diverge(capsys, mlflow_client, "--log-every", "10", "--checkpoint-every", "4",
                                "--set", "loss.step=5")
    assert code == 3 and len(errors) == 1
    assert run.info.status == "FAILED"
    assert run.data.tags["ganlab.failed_step"] == "8"
    assert checkpoint_steps(run) == [4]
    assert newest_is_finite(run)


def test_resuming_a_diverged_run_starts_from_its_last_good_checkpoint(workdir: Path, mlflow_client: Any,
                                                                     capsys: Any) -> None:
    code, run, _ = diverge(capsys, mlflow_client, "--log-every", "1", "--checkpoint-every", "2",
                           "--set", "loss.step=5")
    assert code == 3 and checkpoint_steps(run) == [2, 4]
    # deterministic fault injection: the resumed run diverges again at the same step, from step 4
    code = cli_in_process(["resume", run.info.run_id, "--plugin", NAN_PLUGIN])
    assert code == 3
    again = mlflow_client.get_run(run.info.run_id)
    assert again.info.status == "FAILED"
    assert again.data.tags["ganlab.resumed_at_step"] == "4" and again.data.tags["ganlab.failed_step"] == "5"
    history = mlflow_client.get_metric_history(run.info.run_id, "loss.d")
    assert sorted(m.step for m in history) == [1, 2, 3, 4], "no duplicates, nothing non-finite"
