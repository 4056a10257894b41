"""SIGHUP (a closed terminal, a dropped ssh session) stops a run as SIGTERM does: the step is
finished, a checkpoint written, the run marked KILLED (``ganlab.killed_by=SIGHUP``), exit 129,
and ``ganlab resume`` continues it. Before, the process died at once, with no checkpoint and its
run left RUNNING. Also: Ctrl-C twice, and a plugin thread that would keep ganlab alive.
(docs/reliability.md, "Signals".)"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_RING8, TINY_SWEEP_BASE
from test_resume import SLOW, TINY_RUN, artifacts, ganlab, history, the_run, wait_for

PLUGINS = Path(__file__).parent / "plugins_for_tests"
STEPS = 30
RUN = ["run", "--steps", str(STEPS), *TINY_RUN, "--checkpoint-every", "5", "--plugin", SLOW]
#: becomes the session leader of a new terminal, as a login shell's job is, then runs ganlab on it
ON_A_TERMINAL = ("import fcntl, os, sys, termios\n"
                 "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
                 "os.execv(sys.executable, [sys.executable, '-m', 'ganlab', *sys.argv[1:]])\n")


def long_sweep(experiment: str, steps: int, checkpoint_every: int, seeds: list[int], log_every: int = 1) -> str:
    """A sweep file of tiny ring8 runs that train long enough for a signal to find them training."""
    base = TINY_SWEEP_BASE.replace("steps = 4\n", f"steps = {steps}\n").replace("log_every = 2\n",
                                                                                 f"log_every = {log_every}\n")
    return (f'experiment = "{experiment}"\n{base}checkpoint_every = {checkpoint_every}\nmetrics = "none"\n'
            f'device = "cpu"\n{TINY_RING8}[grid]\nseed = {seeds}\n')


def _killed_by_hangup(run: Any, client: Any) -> int:
    assert run.info.status == "KILLED", run.info.status
    assert run.data.tags["ganlab.killed_by"] == "SIGHUP"
    stopped = int(run.data.tags["ganlab.killed_at_step"])
    newest = sorted((artifacts(run) / "checkpoints").glob("step-*.pt"))[-1]
    assert newest.name == f"step-{stopped:08d}.pt", "a checkpoint at exactly the stop step"
    assert [s for s, _ in history(client, run.info.run_id, "loss.d")] == list(range(1, stopped + 1))
    return stopped


@pytest.mark.slow
def test_closing_the_terminal_checkpoints_the_run_and_resume_finishes_it(workdir: Path, mlflow_client: Any) -> None:
    leader, follower = os.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANLAB_TEST_STEP_SLEEP": "0.1", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-c", ON_A_TERMINAL, *RUN], cwd=workdir, env=env,
                            stdin=follower, stdout=follower, stderr=follower, start_new_session=True)
    os.close(follower)
    seen: list[bytes] = []
    stop_reading = threading.Event()

    def drain() -> None:  # a full terminal buffer would block the run
        while not stop_reading.is_set():
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    seen.append(os.read(leader, 65536))
                except OSError:
                    return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not list(workdir.glob("mlruns/artifacts/ganlab/*/artifacts/checkpoints/step-00000005.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, b"".join(seen).decode(errors="replace")
            time.sleep(0.05)
    finally:
        stop_reading.set()
        reader.join()
        os.close(leader)  # the terminal hangs up: the kernel sends SIGHUP to its session
    assert proc.wait(timeout=240) == 129
    stopped = _killed_by_hangup(the_run(mlflow_client, "ganlab"), mlflow_client)
    assert 5 <= stopped < STEPS

    resumed = ganlab(["resume", the_run(mlflow_client, "ganlab").info.run_id, "--plugin", SLOW], workdir)
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    run = the_run(mlflow_client, "ganlab")
    assert run.info.status == "FINISHED"
    assert [s for s, _ in history(mlflow_client, run.info.run_id, "loss.d")] == list(range(1, STEPS + 1))


@pytest.mark.slow
def test_sighup_stops_a_population_like_sigterm(workdir: Path, mlflow_client: Any) -> None:
    proc = ganlab(["run", "--seeds", "0-1", *RUN[1:]], workdir, sleep=0.1)
    wait_for("mlruns/artifacts/ganlab/*/artifacts/checkpoints/step-00000005.pt", workdir, proc)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 129, err
    assert "Traceback" not in err and "a checkpoint for each of 2 replicas" in err
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    (parent,) = [r for r in runs if "ganlab.population" in r.data.tags]
    assert parent.info.status == "KILLED" and parent.data.tags["ganlab.killed_by"] == "SIGHUP"
    children = [r for r in runs if r is not parent]
    assert len(children) == 2
    for child in children:
        _killed_by_hangup(child, mlflow_client)


@pytest.mark.slow
def test_sighup_between_the_seeds_of_a_sequential_population_ends_its_parent_killed(
        workdir: Path, mlflow_client: Any) -> None:
    """Held-out variant (issue 30): a sequential population (an architecture that cannot be stacked) gets
    SIGHUP while its second seed loads its data. No step to finish there: exit 129 at once, the parent
    KILLED (before: the process died, its parent RUNNING for good), the finished seed kept, and
    `ganlab resume PARENT` trains the seeds that had not trained."""
    plugins = ["--plugin", str(PLUGINS / "unvectorised_mlp.py"), "--plugin", str(PLUGINS / "slow_load.py")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANLAB_TEST_LOAD_SLEEP": "1", "GANLAB_TEST_LOAD_MARKER": "loads"}
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "run", "--steps", "4", "--seeds", "0-2", *TINY_RUN,
                             "--arch", "unvectorised-mlp", "--dataset", "slow-digits", *plugins],
                            cwd=workdir, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    # loads: 1 the population's first build, 2 seed 0's run, 3 seed 1's run
    while not ((workdir / "loads").exists() and (workdir / "loads").read_text() == "3"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 129, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines[-1].startswith("ganlab: interrupted by SIGHUP between the seeds") and "1, 2 not trained" in lines[-1]
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    (parent,) = [r for r in runs if "ganlab.population" in r.data.tags]
    assert parent.info.status == "KILLED" and parent.data.tags["ganlab.killed_by"] == "SIGHUP"
    assert sorted(r.info.status for r in runs if r is not parent) == ["FINISHED"]

    env["GANLAB_TEST_LOAD_SLEEP"] = "0"
    resumed = subprocess.run([sys.executable, "-m", "ganlab", "resume", parent.info.run_id, *plugins], cwd=workdir,
                             env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    assert sorted(r.data.params["seed"] for r in runs if r.info.run_id != parent.info.run_id) == ["0", "1", "2"]


def test_a_signal_a_run_took_too_late_stops_the_runs_after_it() -> None:
    """A signal during a run's last step lets that run finish; between runs (a sequential population)
    it must still stop the command before the next run, not be forgotten."""
    from ganlab.train.signals import BetweenRuns, GracefulStop, Signalled

    before = signal.getsignal(signal.SIGTERM)
    with BetweenRuns() as between:
        between.check()
        with GracefulStop():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs: recorded, not raised
        with pytest.raises(Signalled) as raised:
            between.check()
        assert raised.value.signum == signal.SIGTERM
        with pytest.raises(Signalled) as raised:  # between runs: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        assert raised.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
def test_sigint_during_a_run_of_a_sweep_in_process_stops_the_sweep_and_blames_no_one(
        workdir: Path, mlflow_client: Any) -> None:
    """``ganlab sweep`` with one job trains its runs in its own process: a Ctrl-C that stops a run at a step
    boundary stops the sweep (exit 130, the run KILLED, the parent KILLED), and is not reported as a
    trial the worker could not record."""
    from optuna.trial import TrialState

    from ganlab.studies.study import REASON_ATTR, load_study

    (workdir / "int.toml").write_text(long_sweep("int", steps=400, checkpoint_every=5, seeds=[0, 1]))
    sweep = ganlab(["sweep", "int.toml", "--plugin", SLOW], workdir, sleep=0.1)
    deadline = time.monotonic() + 240
    while not list(workdir.glob("mlruns/artifacts/int/*/artifacts/checkpoints/step-*.pt")):
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 130 and "sweep interrupted" in err, err
    assert "could not record" not in err and "FAILED" not in err, err
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("int").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ganlab.sweep.role") == "parent"]
    (child,) = [r for r in runs if r is not parent]  # the second seed never started
    assert parent.info.status == "KILLED" and child.info.status == "KILLED"
    name = re.search(r"study '([^']+)'", err).group(1)
    study, _ = load_study(name, f"journal:{workdir / 'mlruns' / 'optuna.journal'}")
    reasons = [t.user_attrs.get(REASON_ATTR, "") for t in study.get_trials() if t.state == TrialState.FAIL]
    assert len(reasons) == 2 and all("interrupted" in r and "could not record" not in r for r in reasons), reasons


@pytest.mark.slow
def test_sighup_stops_a_parallel_sweep_and_its_jobs(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "hup.toml").write_text(long_sweep("hup", steps=400, checkpoint_every=5, seeds=[0, 1]))
    sweep = ganlab(["sweep", "hup.toml", "--jobs", "2", "--plugin", SLOW], workdir, sleep=0.1)
    deadline = time.monotonic() + 240
    # both jobs training (the workers start their runs seconds apart): each run has written a checkpoint
    while len({p.parts[-4] for p in workdir.glob("mlruns/artifacts/hup/*/artifacts/checkpoints/step-*.pt")}) < 2:
        assert sweep.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    sweep.send_signal(signal.SIGHUP)
    _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 129 and "sweep interrupted" in err, err
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("hup").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("ganlab.sweep.role") == "parent"]
    assert parent.info.status == "KILLED"
    jobs = [r for r in runs if r is not parent]
    assert len(jobs) == 2
    for job in jobs:
        _killed_by_hangup(job, mlflow_client)


@pytest.mark.slow
def test_ctrl_c_twice_aborts_at_once_says_so_and_tags_sigint(workdir: Path, mlflow_client: Any) -> None:
    proc = ganlab(RUN, workdir, sleep=0.3)
    wait_for("mlruns/artifacts/ganlab/*/artifacts/checkpoints/step-00000005.pt", workdir, proc)
    # into step 6's 0.3 s: a first SIGINT in the moment between two steps stops the run at once, and the
    # second would then find nothing left to abort
    time.sleep(0.12)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines[-1].startswith("ganlab: interrupted: a second SIGINT stopped training at once"), err
    run = the_run(mlflow_client, "ganlab")
    assert run.info.status == "KILLED"
    assert run.data.tags["ganlab.killed_by"] == "SIGINT"


@pytest.mark.slow
def test_a_plugin_thread_that_never_ends_does_not_hold_ganlab(workdir: Path, mlflow_client: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "ganlab", "run", "--steps", "4", *TINY_RUN,
                           "--plugin", str(PLUGINS / "endless_thread.py")],
                          cwd=workdir, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "still here" in done.stdout, "the thread ran"
    warning = [line for line in done.stderr.splitlines() if line.startswith("ganlab: warning: thread")]
    assert len(warning) == 1 and "'chatter'" in warning[0] and "endless_thread" in warning[0], done.stderr
    assert the_run(mlflow_client, "ganlab").info.status == "FINISHED"


@pytest.mark.slow
def test_sighup_stops_a_study_worker_and_its_trial(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "grid.toml").write_text(long_sweep("hupstudy", steps=20000, checkpoint_every=50, seeds=[0], log_every=50))
    created = subprocess.run([sys.executable, "-m", "ganlab", "sweep", "grid.toml", "--jobs", "0"], cwd=workdir,
                             capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip().splitlines()[-1]
    worker = ganlab(["sweep-worker", name, "--storage", f"journal:{workdir / 'mlruns' / 'optuna.journal'}"], workdir)
    wait_for("mlruns/artifacts/hupstudy/*/artifacts/checkpoints/step-00000050.pt", workdir, worker)
    worker.send_signal(signal.SIGHUP)
    _, err = worker.communicate(timeout=240)
    assert worker.returncode == 129, err
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("hupstudy").experiment_id])
    (trial_run,) = [r for r in runs if r.data.tags.get("ganlab.sweep.role") != "parent"]
    assert trial_run.info.status == "KILLED" and trial_run.data.tags["ganlab.killed_by"] == "SIGHUP"


@pytest.fixture
def stalling_server() -> Any:
    """A tracking server that answers its health check and then nothing: every API call hangs."""
    import http.server

    release = threading.Event()
    asked = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.startswith("/health"):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
                return
            asked.set()
            release.wait(300)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], asked
    finally:
        release.set()
        server.shutdown()


@pytest.mark.slow
def test_a_signal_while_the_record_opens_stops_at_once_promising_no_checkpoint(workdir: Path,
                                                                              stalling_server: Any) -> None:
    port, asked = stalling_server
    proc = ganlab(["run", "--steps", "4", *TINY_RUN, "--tracking-uri", f"http://127.0.0.1:{port}/"], workdir)
    assert asked.wait(timeout=120), "the run never asked the server"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert time.monotonic() - sent < 30, "not minutes of MLflow's retries"
    assert proc.returncode == 143, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and "writing a checkpoint" not in err, err
    assert lines[-1].startswith("ganlab: interrupted by SIGTERM before the first step"), err
    assert "no run was created" in lines[-1]
