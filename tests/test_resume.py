"""``ganlab resume``: an interrupted run, resumed, ends bitwise where an uninterrupted one does.

The headline test interrupts a real ``ganlab run`` process with SIGINT once it
has written a checkpoint, resumes it with ``ganlab resume``, and compares the
final weights tensor by tensor with a run that was never interrupted, and
every logged value with that run's. Both runs evaluate and draw sample grids
every 5 steps, so a metric or a sample that moved an RNG would show.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process

PLUGINS = Path(__file__).parent / "plugins_for_tests"
SLOW = str(PLUGINS / "slow_steps.py")
STEPS = 30
DETERMINISTIC = ["--steps", str(STEPS), "--batch-size", "16", "--latent-dim", "8", "--log-every", "1",
                 "--eval-every", "5", "--sample-every", "5", "--checkpoint-every", "5", "--seed", "4",
                 "--set", "eval_samples=64", "--set", "metrics=diagnostics", "--set", "dataset.size=8",
                 "--set", "arch.hidden_scale=0.05", "--device", "cpu", "--deterministic", "--plugin", SLOW]
TINY_RUN = ["--batch-size", "16", "--latent-dim", "8", "--log-every", "1", "--eval-every", "0", "--sample-every", "0",
            "--set", "metrics=none", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05", "--device", "cpu"]


def ganlab(args: list[str], cwd: Path, sleep: float = 0.0) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANLAB_TEST_STEP_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(pattern: str, cwd: Path, proc: subprocess.Popen[str], timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(cwd.glob(pattern))
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before writing {pattern}:\n{proc.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"no {pattern} after {timeout}s")


def the_run(client: Any, experiment: str) -> Any:
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def artifacts(run: Any) -> Path:
    return Path(run.info.artifact_uri.replace("file://", ""))


def history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_interrupted_and_resumed_run_is_bitwise_equal_to_an_uninterrupted_one(workdir: Path, mlflow_client: Any) -> None:
    import torch

    interrupted = ganlab(["run", *DETERMINISTIC, "--experiment", "interrupted"], workdir, sleep=0.1)
    reference = ganlab(["run", *DETERMINISTIC, "--experiment", "reference"], workdir)
    wait_for("mlruns/artifacts/interrupted/*/artifacts/checkpoints/step-00000005.pt", workdir, interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=240)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "at a step boundary; checkpoint " in err

    run = the_run(mlflow_client, "interrupted")
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    stopped = int(run.data.tags["ganlab.killed_at_step"])
    assert 5 <= stopped < STEPS and run.data.tags["ganlab.killed_by"] == "SIGINT"
    assert (artifacts(run) / "checkpoints" / f"step-{stopped:08d}.pt").is_file(), "checkpoint at the stop step"
    assert [s for s, _ in history(mlflow_client, run_id, "loss.d")] == list(range(1, stopped + 1))

    resumed = ganlab(["resume", run_id, "--plugin", SLOW], workdir)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    _, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err

    run = mlflow_client.get_run(run_id)
    ref = the_run(mlflow_client, "reference")
    assert run.info.status == "FINISHED"
    assert run.data.tags["ganlab.resumed_at_step"] == str(stopped)
    assert "ganlab.killed_at_step" not in run.data.tags, "tags of the ended attempt are cleared"

    for name in ("generator.pt", "discriminator.pt"):
        mine = torch.load(artifacts(run) / name, weights_only=True)
        theirs = torch.load(artifacts(ref) / name, weights_only=True)
        assert mine.keys() == theirs.keys()
        for key in mine:
            assert torch.equal(mine[key], theirs[key]), f"{name}:{key} differs"

    # the same metrics at the same steps with the same values, each (key, step) once
    assert set(run.data.metrics) == set(ref.data.metrics)
    for key in ref.data.metrics:
        mine_h, theirs_h = history(mlflow_client, run_id, key), history(mlflow_client, ref.info.run_id, key)
        assert len({s for s, _ in mine_h}) == len(mine_h), f"duplicate steps in {key}"
        assert mine_h == theirs_h, key
    assert [s for s, _ in history(mlflow_client, run_id, "loss.g")] == list(range(1, STEPS + 1))
    from PIL import Image

    from ganlab.record.logged_images import logged_images

    images = Counter((image.key, image.step) for image in logged_images(mlflow_client, run))
    every_5 = list(range(5, STEPS + 1, 5))
    assert images == {(key, step): 1 for key in ("samples", "head_histograms") for step in every_5}, \
        "one sample grid per sampling step, one picture per evaluation"
    gif = mlflow_client.download_artifacts(run_id, "head_histograms/animation.gif", str(workdir))
    with Image.open(gif) as animation:
        assert animation.n_frames == len(every_5), "the animation holds the evaluations of both attempts"


def test_resume_with_more_steps_extends_a_finished_run(workdir: Path, mlflow_client: Any) -> None:
    assert cli_in_process(["run", *TINY_RUN, "--steps", "4", "--checkpoint-every", "2"]) == 0
    run = the_run(mlflow_client, "ganlab")
    assert cli_in_process(["resume", run.info.run_id, "--steps", "7"]) == 0
    run = mlflow_client.get_run(run.info.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["ganlab.resumed_at_step"] == "4"
    assert [s for s, _ in history(mlflow_client, run.info.run_id, "loss.d")] == list(range(1, 8))
    assert sorted(p.name for p in (artifacts(run) / "checkpoints").iterdir()) == ["step-00000006.pt",
                                                                                 "step-00000007.pt"]


def test_resume_refuses_a_run_whose_process_is_alive(workdir: Path, mlflow_client: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from ganlab.record.heartbeat import heartbeat_tags, process_tags

    experiment = mlflow_client.create_experiment("live")
    # a run being written by this very process (alive, same host, same start time)
    run = mlflow_client.create_run(experiment, tags={**process_tags(), **heartbeat_tags(3)})
    assert cli_in_process(["resume", run.info.run_id]) == 2
    err = capsys.readouterr().err
    assert f"is still running (pid {os.getpid()} is running on this host)" in err
    assert mlflow_client.get_run(run.info.run_id).info.status == "RUNNING", "left as it was"


def test_resume_names_the_plugin_a_run_needs(workdir: Path, mlflow_client: Any,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    nan_plugin = str(PLUGINS / "nan_at_step.py")
    assert cli_in_process(["run", *TINY_RUN, "--steps", "3", "--plugin", nan_plugin, "--loss", "nan-at-step",
                           "--set", "loss.step=50"]) == 0
    run = the_run(mlflow_client, "ganlab")
    capsys.readouterr()
    assert cli_in_process(["resume", run.info.run_id, "--steps", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown loss 'nan-at-step'" in err[0] and "plugin(s) nan_at_step, not loaded now" in err[0]
