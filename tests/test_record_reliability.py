"""The MLflow record when things around it go wrong, through the real CLI (in real processes where the
processes are the point: the writer, concurrent first runs, a store deleted under a running run).

Each test provokes the failure for real: first runs racing to create one store,
a record writer killed with SIGKILL, the store's database deleted under a
running run, names that point out of the store, a record that cannot be
completed. No mocks: real SQLite stores read back with MLflow's own client.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli, run_in_process

#: a run that takes a second or two: no metric plugins, no evaluation or samples before the end
FAST = ["--arch", "mlp", "--dataset", "ring8", "--batch-size", "16", "--latent-dim", "8", "--eval-every", "0",
        "--sample-every", "0", "--set", "metrics=none", "--set", "eval_samples=200"]
SLOW_STEPS = str(Path(__file__).parent / "plugins_for_tests" / "slow_steps.py")
ERROR = "ganlab: error: "


def client(directory: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{directory / 'mlruns' / 'mlflow.db'}")


def all_runs(mlflow_client) -> list:
    return mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])


def lines_of(stderr: str) -> list[str]:
    """stderr's lines, each checked to be ganlab's own: no traceback, no MLflow log line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert all(line.startswith("ganlab: ") for line in lines), f"a line that is not ganlab's own:\n{stderr}"
    return lines


def the_error(stderr: str) -> str:
    lines = lines_of(stderr)
    errors = [line for line in lines if line.startswith(ERROR)]
    assert len(errors) == 1 and lines[-1] == errors[0], f"exactly one error line, the last:\n{stderr}"
    return errors[0]


def fresh_project(path: Path) -> Path:
    """A directory with no store at all: the first run creates it."""
    path.mkdir(parents=True)
    return path


def start_line(stderr: str) -> str:
    found = [line for line in stderr.splitlines() if re.match(r"ganlab: (run|resuming run) [0-9a-f]{32} ", line)]
    assert len(found) == 1, stderr
    return found[0]


# ---- 1. first runs on a store that does not exist yet ------------------------------------------
@pytest.mark.slow
def test_first_runs_started_together_on_a_new_store_all_finish(tmp_path: Path) -> None:
    project = fresh_project(tmp_path / "new-project")
    procs = [subprocess.Popen([sys.executable, "-m", "ganlab", "run", *FAST, "--steps", "3", "--seed", str(seed)],
                              cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(4)]
    outcomes = [(proc.returncode, out, err) for proc in procs for out, err in [proc.communicate(timeout=300)]]
    for code, _, stderr in outcomes:
        assert code == 0, stderr  # before the lock: "duplicate column name: step" and the like, exit 2
        lines_of(stderr)  # and no "INFO mlflow.store.db.utils: Creating initial MLflow database tables..."
    runs = all_runs(client(project))
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    # each run said where it went, with its own id
    said = {start_line(stderr).split()[2] for _, _, stderr in outcomes}
    assert said == {r.info.run_id for r in runs}
    for _, _, stderr in outcomes:
        run_id = start_line(stderr).split()[2]
        assert start_line(stderr) == (f"ganlab: run {run_id} in mlruns/mlflow.db; watch: ganlab ui; "
                                      f"samples: ganlab sample {run_id}")


@pytest.mark.slow
def test_a_run_names_another_store_in_its_hints_and_verbose_lets_mlflow_speak(
        workdir: Path, cli_inproc, capfd, monkeypatch) -> None:
    # A fresh store, with GANLAB_VERBOSE=1: MLflow's own first-run messages come through (from the
    # record writer, a child process: hence capfd), so the quiet first runs above are quiet by design.
    monkeypatch.setenv("GANLAB_VERBOSE", "1")
    monkeypatch.setenv("GANLAB_RECORD_WRITER", "process")  # what is tested: the writer process's own messages
    assert cli_inproc(["run", *FAST, "--steps", "2", "--tracking-uri", "sqlite:///other/runs.db"]) == 0
    err = capfd.readouterr().err
    assert "Creating initial MLflow database tables" in err
    line = start_line(err)
    run_id = line.split()[2]
    uri = f"sqlite:///{workdir / 'other' / 'runs.db'}"
    assert line == (f"ganlab: run {run_id} in other/runs.db; watch: ganlab ui --tracking-uri {uri}; "
                    f"samples: ganlab sample {run_id} --tracking-uri {uri}")


# ---- 2. the record writer killed, and 4. the store deleted, in the middle of a run ---------------
def newest_checkpoint(project: Path) -> int | None:
    found = sorted(project.glob("mlruns/artifacts/*/*/artifacts/checkpoints/step-*.pt"))
    return int(found[-1].name[len("step-"):-len(".pt")]) if found else None


def writer_of(pid: int) -> int:
    """The record writer: the trainer's child process running ganlab.record.store_worker."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in map(int, children):
        try:
            if b"ganlab.record.store_worker" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    raise AssertionError(f"no record writer among the children {children} of {pid}")


def slow_run(project: Path, steps: int) -> subprocess.Popen:
    """A run slowed to 0.1 s a step, checkpointing every 10 steps and logging every 5."""
    return subprocess.Popen(
        [sys.executable, "-m", "ganlab", "run", *FAST, "--steps", str(steps), "--checkpoint-every", "10",
         "--log-every", "5", "--plugin", SLOW_STEPS],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "GANLAB_TEST_STEP_SLEEP": "0.1"})


def when_checkpoint(project: Path, proc: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + 240
    while (newest_checkpoint(project) or 0) < step:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run never wrote its checkpoint"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_writer_fails_the_run_and_resume_fills_every_step(workdir: Path, mlflow_client) -> None:
    steps = 60
    proc = slow_run(workdir, steps)
    when_checkpoint(workdir, proc, 20)
    os.kill(writer_of(proc.pid), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=240)

    assert proc.returncode == 2, stderr
    error = the_error(stderr)
    assert "died (killed by SIGKILL)" in error and "the run is marked FAILED" in error, error
    (run,) = all_runs(mlflow_client)
    run_id = run.info.run_id
    assert run.info.status == "FAILED"  # not left RUNNING by a writer that is gone
    assert "killed by SIGKILL" in run.data.tags["ganlab.error"]
    kept = newest_checkpoint(workdir)
    assert kept is not None and 20 <= kept < steps
    assert f"the checkpoint of step {kept} is kept" in error and f"ganlab resume {run_id}" in error

    resumed = run_in_process(["resume", run_id], workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert start_line(resumed.stderr).startswith(f"ganlab: resuming run {run_id} at step {kept} in mlruns/mlflow.db")
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("loss.d", "loss.g"):  # no gap where the writer died, no step twice
        logged = sorted(m.step for m in mlflow_client.get_metric_history(run_id, key))
        assert logged == list(range(5, steps + 1, 5)), (key, logged)


@pytest.mark.slow
def test_a_store_deleted_mid_run_is_one_line_naming_what_happened(workdir: Path) -> None:
    steps = 60
    proc = slow_run(workdir, steps)
    when_checkpoint(workdir, proc, 20)
    (workdir / "mlruns" / "mlflow.db").unlink()
    _, stderr = proc.communicate(timeout=240)

    assert proc.returncode == 2, stderr
    error = the_error(stderr)  # before: about 270 lines of MLflow and SQLAlchemy tracebacks
    assert error.startswith(f"{ERROR}the tracking store mlruns/mlflow.db was deleted"), error
    assert "readonly" not in error and "read-only" not in error
    kept = newest_checkpoint(workdir)
    assert kept is not None and kept < steps
    assert f"the checkpoint of step {kept} is kept in mlruns/artifacts/" in error, error
    assert "restore mlruns/mlflow.db, then `ganlab resume " in error


@pytest.mark.slow
def test_a_store_folder_deleted_mid_run_says_its_checkpoints_went_with_it(workdir: Path) -> None:
    """``rm -rf mlruns``: the checkpoints lived in it too, so they were written but are gone."""
    steps = 60
    proc = slow_run(workdir, steps)
    when_checkpoint(workdir, proc, 20)
    written = newest_checkpoint(workdir)
    shutil.rmtree(workdir / "mlruns")
    _, stderr = proc.communicate(timeout=240)

    assert proc.returncode == 2, stderr
    error = the_error(stderr)
    assert error.startswith(f"{ERROR}the tracking store mlruns/mlflow.db was deleted"), error
    assert "no checkpoint was written" not in error, error  # one was: it went with the folder
    last = int(re.search(r"checkpoints up to step (\d+) had been written under mlruns/artifacts/", error)[1])
    assert written is not None and written <= last < steps, error
    assert "deleted with the store; nothing is left to resume from" in error, error
    assert "ganlab resume" not in error  # there is nothing to resume
    assert not list(workdir.glob("mlruns/artifacts/*/*/artifacts/checkpoints/step-*.pt"))


# ---- 3. names that point out of the store --------------------------------------------------------
def nested_project(tmp_path: Path, template_store: Path) -> Path:
    project = tmp_path / "a" / "b" / "c"
    (project / "mlruns").mkdir(parents=True)
    shutil.copy(template_store, project / "mlruns" / "mlflow.db")
    return project


def files_outside_the_store(tmp_path: Path, project: Path) -> list[Path]:
    store = project / "mlruns"
    return [p for p in tmp_path.rglob("*") if p.is_file() and store not in p.parents and p.parent != project]


@pytest.mark.slow
def test_experiment_names_cannot_put_artifacts_outside_the_store(tmp_path: Path, template_store: Path,
                                                                  cli_inproc, monkeypatch) -> None:
    project = nested_project(tmp_path, template_store)
    monkeypatch.chdir(project)
    (project / "exp.toml").write_text('experiment = "../x"\n')
    runs = {  # experiment name -> how it is given
        "../../../escaped_exp": ["--experiment", "../../../escaped_exp", "--run-name", "../../../escaped_run"],
        "../x": ["--config", "exp.toml"],
        "%2e%2e": ["--experiment", "%2e%2e"],  # '..' once decoded, where the name went into a URI as it is
    }
    for name, args in runs.items():
        assert cli_inproc(["run", *FAST, "--steps", "2", *args]) == 0, name

    assert files_outside_the_store(tmp_path, project) == []
    assert not (tmp_path / "escaped_exp").exists() and not (project / "mlruns" / "x").exists()
    from ganlab.record.store import local_artifact_dir

    store = client(project)
    for name in runs:
        (run,) = store.search_runs([store.get_experiment_by_name(name).experiment_id])
        artifacts = local_artifact_dir(run.info.artifact_uri).resolve()
        assert (project / "mlruns" / "artifacts") in artifacts.parents, name
        assert artifacts.parent.parent.parent == project / "mlruns" / "artifacts", name  # <experiment>/<run>/artifacts
        # MLflow's own artifacts and ganlab's files (checkpoints, weights) are in the same place
        assert {"config.toml", "generator.pt", "checkpoints", "data_card"} <= {p.name for p in artifacts.iterdir()}


def test_an_experiment_name_too_long_to_store_is_refused_before_training(workdir: Path, mlflow_client) -> None:
    result = run_in_process(["run", *FAST, "--steps", "2", "--experiment", "/" * 100], workdir)
    assert result.returncode == 2
    error = the_error(result.stderr)
    assert "cannot name a directory in the store" in error and "300 bytes" in error, error
    assert all_runs(mlflow_client) == []


# ---- 5. FINISHED only with a complete record ------------------------------------------------------
SPOIL_OUTPUTS = '''
import sys
from pathlib import Path
from ganlab import hookimpl

@hookimpl
def on_step_end(ctx, step, losses):
    if step == ctx.config.steps:  # just before the record is completed
        if "{how}" == "directory":
            (Path(ctx.workdir) / "generator.pt").mkdir()  # the weights cannot be written there
        else:
            sys.modules["tomli_w"] = None  # as if the module were not installed
'''


@pytest.mark.slow
@pytest.mark.parametrize("how", ["directory", "module"])
def test_a_record_that_cannot_be_completed_fails_the_run(workdir: Path, mlflow_client, how: str) -> None:
    plugin = workdir / "spoil_outputs.py"
    plugin.write_text(SPOIL_OUTPUTS.replace("{how}", how))
    args = ["run", *FAST, "--steps", "4", "--checkpoint-every", "2", "--plugin", str(plugin)]
    # a plugin that hides a module from the interpreter spoils the process it runs in: its own
    result = run_cli(args, cwd=workdir) if how == "module" else run_in_process(args, workdir)

    assert result.returncode == 2, result.stderr  # before: FINISHED, then a traceback and exit 1
    error = the_error(result.stderr)
    assert "could not be completed at step 4" in error, error
    assert ("Is a directory" in error) if how == "directory" else ("tomli_w" in error), error
    (run,) = all_runs(mlflow_client)
    assert run.info.status == "FAILED"
    assert run.data.tags["ganlab.failure_reason"] == "the record could not be completed"
    # the last checkpoint waits for a complete record: the one before stays the newest, and resume finishes
    assert newest_checkpoint(workdir) == 2
    assert f"the checkpoint of step 2 is kept: `ganlab resume {run.info.run_id}` continues from it" in error
    if how == "directory":
        artifacts = Path(workdir / "mlruns" / "artifacts" / "ganlab" / run.info.run_id / "artifacts")
        (artifacts / "generator.pt").rmdir()
        resumed = run_in_process(["resume", run.info.run_id], workdir)
        assert resumed.returncode == 0, resumed.stderr
        assert mlflow_client.get_run(run.info.run_id).info.status == "FINISHED"
        assert (artifacts / "generator.pt").is_file() and (artifacts / "config.toml").is_file()


# ---- 7. what the MLflow UI opens on -----------------------------------------------------------
SWEEP = '''
experiment = "../sweep-kind"
name = "kindsweep"
[base]
steps = 2
batch_size = 16
latent_dim = 8
eval_every = 0
sample_every = 0
metrics = "none"
[grid]
seed = [1]
'''


@pytest.mark.slow
def test_ganlab_experiments_are_marked_for_the_runs_view(workdir: Path, cli_inproc, mlflow_client) -> None:
    from ganlab.cli.ui import landing_page
    from ganlab.record.store import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    existing = mlflow_client.create_experiment("made-elsewhere")  # no kind yet: ganlab marks it when it runs there
    (workdir / "kind.toml").write_text(SWEEP)
    assert cli_inproc(["sweep", "kind.toml"]) == 0
    assert cli_inproc(["run", *FAST, "--steps", "2", "--dataset", "ring8", "--experiment", "made-elsewhere"]) == 0
    assert cli_inproc(["run", *FAST, "--steps", "2", "--experiment", "kinds"]) == 0
    for name in ("../sweep-kind", "made-elsewhere", "kinds"):
        assert mlflow_client.get_experiment_by_name(name).tags.get(EXPERIMENT_KIND_TAG) == EXPERIMENT_KIND, name
    sweep = mlflow_client.get_experiment_by_name("../sweep-kind")
    assert "/mlruns/artifacts/" in sweep.artifact_location and existing != sweep.experiment_id
    # `ganlab ui` opens the runs of the newest run's experiment in the machine-learning view
    newest = mlflow_client.get_experiment_by_name("kinds").experiment_id
    assert landing_page("sqlite:///mlruns/mlflow.db") == f"/#/experiments/{newest}/runs?workflowType=machine_learning"
