"""Failures inside training, each through the real CLI (in a real process where the process is part of
it: a file size limit, a terminal; in this one otherwise).

A checkpoint the file system refuses, a batch that cannot fit in memory (refused
up front, or out of memory mid-run), non-finite settings, the divergence message,
experiment and run names MLflow cannot keep, a plugin component whose method
raises, and progress lines when stderr is not a terminal. Each ends the way
docs/reliability.md promises: one ``ganlab: error:`` line, exit 2 (3 for a
divergence), no traceback, no run left RUNNING.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_in_process, run_in_process

PLUGINS = Path(__file__).parent / "plugins_for_tests"
ERROR = "ganlab: error:"
#: a small, fast run on the CPU, whatever the architecture and objective
BASE = ["--batch-size", "16", "--latent-dim", "8", "--eval-every", "0", "--sample-every", "0",
        "--set", "metrics=none", "--device", "cpu"]
#: a dataset that costs nothing to make (digits would import scikit-learn)
RING = ["--dataset", "ring8", "--set", "dataset.samples=256"]
#: ... with the default mlp, shrunk
QUICK = [*BASE, *RING, "--set", "arch.hidden_scale=0.05"]


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line, checked to be the last line of stderr, with no traceback before it."""
    where = f"\n--- stderr ---\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, where
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert all(line.startswith("ganlab: ") for line in lines), where
    errors = [line for line in lines if line.startswith(ERROR)]
    assert len(errors) == 1 and lines[-1] == errors[0], where
    return errors[0]


def all_runs(client: Any) -> list[Any]:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def checkpoint_dir(run: Any) -> Path:
    return Path(run.info.artifact_uri.replace("file://", "")) / "checkpoints"


# ---- a checkpoint the file system refuses ------------------------------------------------
#: ring8 with the article's MLP: a checkpoint of about 16 MB, while everything else the run
#: writes (the store, the weights, the dataset cache, images) stays under 3 MB
BIG_CHECKPOINT = ["--dataset", "ring8", "--set", "dataset.samples=2000", "--batch-size", "16", "--log-every", "2",
                  "--eval-every", "0", "--sample-every", "0", "--set", "metrics=none", "--device", "cpu",
                  "--checkpoint-every", "2"]
#: ``ulimit -f`` in KiB: larger than any other file, smaller than a checkpoint
FILE_LIMIT_KIB = 8000


def run_with_file_limit(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ganlab ARGS`` under ``ulimit -f``: a write past the limit fails with EFBIG, like a full disk."""
    return subprocess.run(["bash", "-c", f'ulimit -f {FILE_LIMIT_KIB} && exec "$@"', "bash",
                           sys.executable, "-m", "ganlab", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=240, env={**os.environ})


@pytest.mark.slow  # a process under `ulimit -f`, 16 MB checkpoints
def test_checkpoint_that_cannot_be_written_keeps_the_previous_one(workdir: Path, mlflow_client: Any) -> None:
    assert cli_in_process(["run", *BIG_CHECKPOINT, "--steps", "2"]) == 0
    (run,) = all_runs(mlflow_client)
    directory = checkpoint_dir(run)
    previous = (directory / "step-00000002.pt").read_bytes()
    assert len(previous) > FILE_LIMIT_KIB * 1024, "the test needs a checkpoint larger than the file size limit"

    proc = run_with_file_limit(["resume", run.info.run_id, "--steps", "4"], workdir)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert f"cannot write checkpoint {directory / 'step-00000004.pt'}: File too large" in line
    assert "the previous checkpoint step-00000002.pt (step 2) is kept" in line
    assert f"ganlab resume {run.info.run_id}" in line
    assert sorted(p.name for p in directory.iterdir()) == ["step-00000002.pt"], "kept, and no temporary file left"
    assert (directory / "step-00000002.pt").read_bytes() == previous
    failed = mlflow_client.get_run(run.info.run_id)
    assert failed.info.status == "FAILED"
    assert "cannot write checkpoint" in failed.data.tags["ganlab.error"]

    # with room again, the advice in the message works: the run continues from step 2
    assert cli_in_process(["resume", run.info.run_id, "--steps", "4"]) == 0
    assert mlflow_client.get_run(run.info.run_id).info.status == "FINISHED"


@pytest.mark.slow  # a process under `ulimit -f`, 16 MB checkpoints
def test_first_checkpoint_that_cannot_be_written_fails_the_run(workdir: Path, mlflow_client: Any) -> None:
    proc = run_with_file_limit(["run", *BIG_CHECKPOINT, "--steps", "4"], workdir)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert re.search(r"cannot write checkpoint \S+/checkpoints/step-00000002\.pt: File too large; "
                     r"no earlier checkpoint exists", line), line
    (run,) = all_runs(mlflow_client)
    assert run.info.status == "FAILED"
    assert list(checkpoint_dir(run).iterdir()) == [], "the temporary file is removed"


# ---- memory ------------------------------------------------------------------------------
def test_batch_that_cannot_fit_is_refused_before_a_run_exists(workdir: Path, mlflow_client: Any) -> None:
    proc = run_in_process(["run", "--steps", "2", "--batch-size", "100000000", "--device", "cpu"], workdir)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert "batch size 100000000 does not fit in memory" in line
    assert "--batch-size" in line and "is available on cpu" in line
    assert all_runs(mlflow_client) == []


def test_running_out_of_memory_in_training_fails_the_run_in_one_line(workdir: Path, mlflow_client: Any) -> None:
    # the plugin's generator asks the real allocator for 2**60 bytes at step 3
    proc = run_in_process(["run", *BASE, *RING, "--steps", "5", "--log-every", "1",
                    "--plugin", str(PLUGINS / "oom_at_step.py"),
                    "--arch", "oom-at-step", "--set", "arch.step=3"], workdir)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert line.startswith(f"{ERROR} out of memory on cpu after 2 of 5 steps with batch size 16: "), line
    assert "use a smaller --batch-size" in line
    (run,) = all_runs(mlflow_client)
    assert run.info.status == "FAILED"
    assert run.data.tags["ganlab.error_type"] == "OutOfMemory"
    assert "batch size 16" in run.data.tags["ganlab.error"]


# ---- settings and names ------------------------------------------------------------------
def dry_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_in_process(["run", *args, "--dry-run"], cwd)


@pytest.mark.parametrize("args, expect", [
    (["--set", "lr_d=inf"], "lr_d must be a finite number, not inf"),
    (["--lr-g", "-inf"], "lr_g must be a finite number, not -inf"),
    (["--set", "beta1=nan"], "beta1 must be a finite number, not nan"),
    (["--head", "entmax", "--set", "head.alpha=inf"], "head.alpha must be a finite number, not inf"),
    (["--set", "arch.hidden_scale=nan"], "arch.hidden_scale must be a finite number, not nan"),
    (["--config", "inf.toml"], "lr_g must be a finite number, not inf"),
], ids=["set-inf", "flag-minus-inf", "set-nan", "component-option-inf", "component-option-nan", "toml-inf"])
def test_non_finite_settings_are_refused(workdir: Path, args: list[str], expect: str) -> None:
    (workdir / "inf.toml").write_text("lr_g = inf\n")
    proc = dry_run(args, workdir)
    assert proc.returncode == 2, proc.stderr
    assert expect in error_line(proc)


@pytest.mark.parametrize("args, expect", [
    (["--experiment", "x" * 5000], "an MLflow experiment name has at most 255 characters; this one has 5000"),
    (["--experiment", "é" * 200], "at most 255 bytes in UTF-8"),
    (["--experiment", ""], "an MLflow experiment name cannot be empty"),
    (["--experiment", "two\nlines"], "cannot contain control characters (found '\\n' at position 3)"),
    (["--run-name", "r" * 251], "an MLflow run name has at most 250 characters; this one has 251"),
    (["--run-name", "bell\x07"], "an MLflow run name cannot contain control characters"),
], ids=["experiment-5000", "experiment-bytes", "experiment-empty", "experiment-newline", "run-251", "run-control"])
def test_names_mlflow_cannot_keep_are_refused_with_the_reason(workdir: Path, args: list[str], expect: str) -> None:
    proc = dry_run(args, workdir)
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc)
    assert expect in line
    assert len(line) < 400, "the refused name is quoted short"


def test_names_at_the_limits_are_accepted(workdir: Path) -> None:
    proc = dry_run(["--experiment", "e" * 255, "--run-name", "r" * 250], workdir)
    assert proc.returncode == 0, proc.stderr


# ---- divergence --------------------------------------------------------------------------
NAN = ["--plugin", str(PLUGINS / "nan_at_step.py"), "--loss", "nan-at-step", "--set", "loss.step=5",
       "--log-every", "1", "--steps", "8"]


def test_divergence_names_the_checkpoint_it_keeps(workdir: Path, mlflow_client: Any) -> None:
    proc = run_in_process(["run", *QUICK, *NAN, "--checkpoint-every", "2"], workdir)
    assert proc.returncode == 3, proc.stderr
    (run,) = all_runs(mlflow_client)
    kept = checkpoint_dir(run) / "step-00000004.pt"
    assert error_line(proc) == (f"{ERROR} training diverged: loss.d is not finite at step 5; "
                                f"the last good checkpoint, step 4, is kept: {kept}")
    assert kept.is_file()


def test_divergence_without_a_checkpoint_says_there_is_none(workdir: Path) -> None:
    proc = run_in_process(["run", *QUICK, *NAN], workdir)
    assert proc.returncode == 3, proc.stderr
    line = error_line(proc)
    assert line.startswith(f"{ERROR} training diverged: loss.d is not finite at step 5; "
                           "no checkpoint was written before it"), line
    assert "--checkpoint-every" in line and "is kept" not in line


# ---- a plugin component's method raises -------------------------------------------------
@pytest.mark.parametrize("args, expect", [
    ([*RING, "--arch", "build-raises"], "architecture 'build-raises' (plugin 'component_method_raises') failed in build(): "
                                 "ValueError: no generator fits data of shape"),
    ([*RING, "--loss", "check-raises"], "loss 'check-raises' (plugin 'component_method_raises') failed in check(): "
                                 "KeyError: 'labels'"),
    (["--dataset", "load-exits"], "dataset 'load-exits' (plugin 'component_method_raises') failed to load: "
                                  "SystemExit: 0"),
], ids=["arch-build", "loss-check", "dataset-load-sys-exit"])
def test_plugin_component_method_that_raises_is_one_line(workdir: Path, mlflow_client: Any, args: list[str],
                                                         expect: str) -> None:
    proc = run_in_process(["run", *BASE, "--steps", "2", "--plugin", str(PLUGINS / "component_method_raises.py"), *args], workdir)
    assert proc.returncode == 2, proc.stderr
    assert expect in error_line(proc)
    assert all_runs(mlflow_client) == [], "refused while building: no run"


# ---- progress ----------------------------------------------------------------------------
PROGRESS_LINE = re.compile(r"^ganlab: step (\d+)/40 loss\.d=-?\d+\.\d{4} loss\.g=-?\d+\.\d{4} "
                           r"\d+\.\d steps/s ETA (\d+h\d\dm|\d+m\d\ds|\d+s)$")


def test_progress_lines_when_stderr_is_not_a_terminal(workdir: Path) -> None:
    proc = run_in_process(["run", *QUICK, "--steps", "40", "--log-every", "2", "--no-tracking"], workdir)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ganlab: step ")]
    assert lines and all(PROGRESS_LINE.match(line) for line in lines), proc.stderr
    steps = [int(PROGRESS_LINE.match(line).group(1)) for line in lines]
    assert all(step % 2 == 0 for step in steps), "only at logging steps"
    # one line per tenth of the run at least (more only if 30 s pass between two)
    assert {4, 8, 12, 16, 20, 24, 28, 32, 36, 40} <= set(steps), steps
    assert steps == sorted(set(steps))


@pytest.mark.slow
def test_the_last_lines_read_s_per_step_when_slow_and_the_headline_metrics_first(capsys) -> None:
    from types import SimpleNamespace

    from ganlab.train.progress import ProgressBar

    bar = ProgressBar(plain=True)
    ctx = SimpleNamespace(config=SimpleNamespace(steps=1000), run_id="", step=2, extras={})
    bar.first_step, bar.started = 0, 0.0
    assert bar.speed(ctx, 2, now=72.0) == "36 s/step ETA 9h58m"  # 0.03 steps/s would read "0.0 steps/s"
    assert bar.speed(ctx, 20, now=10.0) == "2.0 steps/s ETA 8m10s"
    bar.evaluated = (2, {})
    bar.on_run_end(ctx, "FINISHED", None)
    assert "metrics at step" not in capsys.readouterr().err
    # the metrics' declared headline first, then the other results, then the head diagnostics
    ctx.extras["headline"] = ["images.fld", "images.kid", "inception.fid"]
    bar.evaluated = (2, {"diag.entropy": 0.5, "images.class_kl": 0.25, "images.kid": 0.125, "images.fld": 1.5})
    bar.on_run_end(ctx, "FINISHED", None)
    assert "metrics at step 2: images.fld=1.5 images.kid=0.125 images.class_kl=0.25 diag.entropy=0.5\n" in \
        capsys.readouterr().err


def test_progress_bar_on_a_terminal_labels_the_eta(workdir: Path) -> None:
    """stderr on a pseudo-terminal: the rich bar, with the rate and a labelled ETA."""
    leader, follower = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "run", *QUICK, "--steps", "4", "--log-every", "2",
                             "--no-tracking"], cwd=workdir, stdout=subprocess.DEVNULL, stderr=follower,
                            env={**os.environ, "COLUMNS": "200"})
    os.close(follower)
    output = b""
    try:
        while True:  # read as it comes: a full pty buffer would block the child
            ready, _, _ = select.select([leader], [], [], 120)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
        proc.wait(timeout=120)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert proc.returncode == 0, text
    # rate and ETA measured from the first steps, not rich's estimate (blank for minutes on a slow run)
    assert re.search(r"\d+\.\d steps/s ETA (\d+h\d\dm|\d+m\d\ds|\d+s)", text), text
    assert re.search(r"ganlab: finished at step 4/4 in \d+s\n", text.replace("\r", "")), text
    assert "ganlab: step " not in text, "no plain lines on a terminal"
