"""One process trains a run at a time (ganlab.record.ownership; docs/reliability.md, "Ownership").

Two ``ganlab resume`` of one KILLED run started together used to both train it to the end: the
record held every metric step twice and both wrote checkpoints into one folder. Now the loser
exits 2 in one line naming the owner's pid and host, and nothing it did reaches the record.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from test_resume import SLOW, TINY_RUN, ganlab, history, wait_for

from ganlab.errors import GanlabError
from ganlab.record.heartbeat import hostname
from ganlab.record.ownership import RunOwned, directory_lock, own, owned, release, run_lock

STEPS = 30


# ---- the lock itself -------------------------------------------------------------------
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ganlab.record.ownership import own
    own(Path(sys.argv[1]), "run 'x'")
    print("held", flush=True)
    time.sleep(600)
""")


def _holder(path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_another_process_holds_is_refused_naming_it_and_freed_when_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "run" / "owner.lock"
    holder = _holder(path)
    try:
        with pytest.raises(RunOwned) as refused:
            own(path, "run 'x'")
        message = str(refused.value)
        assert f"run 'x' is being trained by pid {holder.pid} on host {hostname()}" in message
        assert f"kill -TERM {holder.pid}" in message
        assert isinstance(refused.value, GanlabError) and refused.value.exit_code == 2
    finally:
        holder.send_signal(signal.SIGKILL)  # no chance to unlock: the kernel must drop it
        holder.wait()
    with owned(path, "run 'x'"):
        pass


def test_this_process_takes_its_own_lock_again_and_the_last_release_frees_it(tmp_path: Path) -> None:
    path = tmp_path / "owner.lock"
    own(path, "run 'x'")
    own(path, "run 'x'")  # resume, then the run's tracker: no deadlock on our own lock
    release(path)
    probe = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(600)", ""), str(path)],
                           capture_output=True, text=True)
    assert probe.returncode == 1 and "is being trained by pid" in probe.stderr, "still held after one release"
    release(path)
    probe = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(600)", ""), str(path)],
                           capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr


def test_lock_files_lie_outside_the_artifacts(tmp_path: Path) -> None:
    artifacts = tmp_path / "ganlab" / "abc" / "artifacts"
    assert run_lock("abc", artifacts) == tmp_path / "ganlab" / "abc" / "owner.lock"
    assert run_lock("abc", None) == Path("mlruns") / "uploads" / "abc.owner.lock"
    assert directory_lock(tmp_path) == tmp_path / "owner.lock"


# ---- through the CLI -------------------------------------------------------------------
def _killed_run(workdir: Path, mlflow_client: Any, args: list[str], experiment: str) -> Any:
    proc = ganlab([*args, "--experiment", experiment], workdir, sleep=0.1)
    wait_for(f"mlruns/artifacts/{experiment}/*/artifacts/checkpoints/step-00000005.pt", workdir, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    return [r for r in mlflow_client.search_runs([mlflow_client.get_experiment_by_name(experiment).experiment_id])
            if "mlflow.parentRunId" not in r.data.tags][0]


def _winner_and_loser(first: Any, second: Any) -> tuple[Any, str]:
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first.stderr_text, second.stderr_text)
    winner, loser = (first, second) if first.returncode == 0 else (second, first)
    lines = [line for line in loser.stderr_text.splitlines() if line.strip()]
    assert "Traceback" not in loser.stderr_text and len(lines) == 1, loser.stderr_text
    assert lines[0].startswith("ganlab: error: ") and f"is being trained by pid {winner.pid} on host {hostname()}" in lines[0]
    return winner, lines[0]


def _communicate(proc: subprocess.Popen[str]) -> None:
    _, proc.stderr_text = proc.communicate(timeout=240)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_two_resumes_of_one_run_at_once_train_it_once(workdir: Path, mlflow_client: Any) -> None:
    run = _killed_run(workdir, mlflow_client, ["run", "--steps", str(STEPS), *TINY_RUN, "--checkpoint-every", "5",
                                               "--plugin", SLOW], "twice")
    run_id = run.info.run_id
    first = ganlab(["resume", run_id, "--plugin", SLOW], workdir, sleep=0.05)
    time.sleep(0.3)
    second = ganlab(["resume", run_id, "--plugin", SLOW], workdir, sleep=0.05)
    for proc in (first, second):
        _communicate(proc)
    _winner_and_loser(first, second)
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("loss.d", "loss.g"):
        assert [s for s, _ in history(mlflow_client, run_id, key)] == list(range(1, STEPS + 1)), "each step once"


@pytest.mark.slow
def test_two_resumes_of_one_population_at_once_train_it_once(workdir: Path, mlflow_client: Any) -> None:
    args = ["run", "--seeds", "0-1", "--steps", "24", *TINY_RUN, "--checkpoint-every", "5",
            "--plugin", SLOW]
    proc = ganlab([*args, "--experiment", "pop"], workdir, sleep=0.1)
    wait_for("mlruns/artifacts/pop/*/artifacts/checkpoints/step-00000005.pt", workdir, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("pop").experiment_id])
    (parent,) = [r for r in runs if "ganlab.population" in r.data.tags]
    children = [r for r in runs if r is not parent]
    first = ganlab(["resume", parent.info.run_id, "--plugin", SLOW], workdir, sleep=0.05)
    time.sleep(0.3)
    second = ganlab(["resume", parent.info.run_id, "--plugin", SLOW], workdir, sleep=0.05)
    for p in (first, second):
        _communicate(p)
    _, line = _winner_and_loser(first, second)
    assert f"population '{parent.info.run_id}'" in line
    assert mlflow_client.get_run(parent.info.run_id).info.status == "FINISHED"
    for child in children:
        steps = [m.step for m in mlflow_client.get_metric_history(child.info.run_id, "loss.d")]
        assert steps == sorted(set(steps)) and steps[-1] == 24, "every logged step once"


@pytest.mark.slow
def test_an_untracked_run_directory_is_owned_too(workdir: Path) -> None:
    args = ["run", "--steps", str(STEPS), *TINY_RUN, "--checkpoint-every", "5", "--no-tracking", "--run-dir", "mine",
            "--plugin", SLOW]
    proc = ganlab(args, workdir, sleep=0.1)
    wait_for("mine/checkpoints/step-00000005.pt", workdir, proc)
    resumed = ganlab(["resume", "mine", "--plugin", SLOW], workdir)
    _communicate(resumed)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=240)
    assert resumed.returncode == 2, resumed.stderr_text  # type: ignore[attr-defined]
    assert f"the run in mine is being trained by pid {proc.pid}" in resumed.stderr_text  # type: ignore[attr-defined]
