"""Sweeps as Optuna studies (ganlab.studies): workers pulling trials from one storage.

The multi-worker tests use real processes throughout: ``ganlab sweep`` creating the study,
``ganlab sweep-worker`` processes, each trial a ``ganlab run`` process; the distributed one
also a real PostgreSQL server and a real ``mlflow server`` backed by it (tests/servers.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_RING8, run_cli, run_in_process

import servers

#: 12 variants of a tiny ring8 run; 400 steps keep a trial alive for a few seconds to be killed in
GRID_12 = """
experiment = "study"
[base]
steps = 400
batch_size = 16
latent_dim = 8
log_every = 100
eval_every = 0
sample_every = 0
metrics = "diagnostics"
""" + TINY_RING8 + """[grid]
"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]
seed = [0, 1, 2]
"""

SEARCH = """
experiment = "search"
[base]
steps = 60
batch_size = 16
latent_dim = 8
log_every = 20
eval_every = 30
sample_every = 0
metrics = "modes"
""" + TINY_RING8 + """[search]
n_trials = 3
objective = "modes.kl_uniform"
direction = "minimize"
lr_g = { log_uniform = [1e-4, 1e-2] }
"head.name" = { choices = ["sigmoid", "entmax"] }
"""

ENV = {"OMP_NUM_THREADS": "1"}


def _study(name: str, storage: str):
    import optuna

    from ganlab.studies.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _study_name(stdout: str) -> str:
    """The study a finished ``ganlab sweep`` ran, from its last line (``status: ganlab sweep status NAME``)."""
    return stdout.split("status: ganlab sweep status ")[1].split()[0]


def _base_name(run_name: str) -> str:
    return run_name.removesuffix(" (retry)")


def _check_every_variant_finished_once(study, client, experiment: str, variants: int) -> None:
    """The study: one COMPLETE trial per variant; MLflow: one FINISHED child per variant, none RUNNING."""
    from optuna.trial import TrialState

    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == variants
    assert len({_base_name(t.user_attrs["ganlab.name"]) for t in complete}) == variants
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    parent_id = study.user_attrs["ganlab.sweep"]["parent_run_id"]
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    finished = [r for r in children if r.info.status == "FINISHED"]
    assert len(finished) == variants
    assert len({_base_name(r.info.run_name) for r in finished}) == variants
    assert client.get_run(parent_id).info.status == "FINISHED"
    return trials, children


@pytest.mark.slow
def test_local_worker_processes_share_the_default_journal_study(workdir: Path, mlflow_client) -> None:
    (workdir / "grid.toml").write_text(GRID_12.replace("steps = 400", "steps = 20").replace(
        'seed = [0, 1, 2]', 'seed = [0]'))
    done = run_cli(["sweep", "grid.toml", "--jobs", "2"], cwd=workdir, env=ENV)
    assert done.returncode == 0, done.stderr
    name = _study_name(done.stdout)
    assert "sweep 'study': 4 variant(s), all finished;" in done.stdout
    storage = f"journal:{workdir / 'mlruns' / 'optuna.journal'}"
    trials, _ = _check_every_variant_finished_once(_study(name, storage), mlflow_client, "study", 4)
    assert len({t.user_attrs["ganlab.worker"] for t in trials}) == 2  # the work was shared
    status = run_in_process(["sweep", "status", name], workdir)
    assert status.returncode == 0 and "4 done, 0 running, 0 failed, 0 left" in status.stdout


@pytest.mark.slow
def test_a_search_samples_its_distributions_and_records_the_objective(workdir: Path, mlflow_client) -> None:
    from optuna.trial import TrialState

    # with the median pruner: each run reports its evaluations to its trial (a run that trails is stopped)
    (workdir / "search.toml").write_text(SEARCH.replace('direction = "minimize"',
                                                        'direction = "minimize"\npruner = "median"'))
    done = run_in_process(["sweep", "search.toml"], workdir)  # the pruner stops a run trained in process too
    assert done.returncode == 0, done.stderr  # a pruned trial is not a failure
    name = _study_name(done.stdout)
    study = _study(name, f"journal:{workdir / 'mlruns' / 'optuna.journal'}")
    trials = study.get_trials()
    assert len(trials) == 3 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for trial in trials:
        assert 1e-4 <= trial.params["lr_g"] <= 1e-2 and trial.params["head.name"] in ("sigmoid", "entmax")
        [run] = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("search").experiment_id],
                                          filter_string=f"attributes.run_name = '{trial.user_attrs['ganlab.name']}'")
        assert float(run.data.params["lr_g"]) == pytest.approx(trial.params["lr_g"])
        assert run.data.params["head.name"] == trial.params["head.name"]
        history = {m.step: m.value for m in mlflow_client.get_metric_history(run.info.run_id, "modes.kl_uniform")}
        assert trial.intermediate_values == pytest.approx(history)  # reported from inside the run
        if trial.state == TrialState.COMPLETE:
            assert trial.value == pytest.approx(run.data.metrics["modes.kl_uniform"]) and set(history) == {30, 60}
        else:
            assert run.info.status == "KILLED" and trial.user_attrs["ganlab.pruned_at"] == 30
    status = run_in_process(["sweep", "status", name], workdir)
    best = min(t.value for t in trials if t.state == TrialState.COMPLETE)
    assert f"best modes.kl_uniform = {best:g}" in status.stdout


@pytest.mark.slow
def test_workers_pinned_to_the_gpus_given(workdir: Path, mlflow_client) -> None:
    # the assignment only: on this CPU machine a run told CUDA_VISIBLE_DEVICES=5 still trains on the CPU
    (workdir / "grid.toml").write_text(GRID_12.replace("steps = 400", "steps = 10").replace(
        '"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]', '"head.name" = ["sigmoid"]'))
    done = run_cli(["sweep", "grid.toml", "--jobs", "2", "--gpus", "5,7"], cwd=workdir, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "worker 0: CUDA_VISIBLE_DEVICES=5" in done.stderr and "worker 1: CUDA_VISIBLE_DEVICES=7" in done.stderr
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("study").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3 and {r.data.tags["ganlab.sweep.gpu"] for r in children} <= {"5", "7"}
    assert all(r.data.tags["ganlab.sweep.gpu"] == "57"[int(r.data.tags["ganlab.sweep.slot"])] for r in children)


def _kill_one_worker_mid_trial(study_name: str, storage: str, client, experiment: str,
                               workers: list[subprocess.Popen]) -> subprocess.Popen:
    """SIGKILL the first worker seen running a trial whose MLflow run has started."""
    from optuna.trial import TrialState

    study = _study(study_name, storage)
    pids = {str(w.pid): w for w in workers}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for trial in study.get_trials(states=(TrialState.RUNNING,)):
            pid = trial.user_attrs.get("ganlab.worker", ":").rsplit(":", 1)[1]
            if pid not in pids:
                continue
            exp = client.get_experiment_by_name(experiment)
            name = trial.user_attrs["ganlab.name"].replace("'", "\\'")
            running = exp and client.search_runs([exp.experiment_id], filter_string=(
                f"attributes.run_name = '{name}' and attributes.status = 'RUNNING'"))
            if running:
                pids[pid].send_signal(signal.SIGKILL)
                return pids[pid]
        time.sleep(0.2)
    raise AssertionError("no worker was seen running a trial")


@pytest.mark.slow
def test_three_workers_on_postgresql_and_an_mlflow_server_survive_a_killed_worker(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from optuna.trial import TrialState

    try:
        pg_context = servers.postgres(("optuna", "mlflow"))
        server = pg_context.__enter__()
        pg = server.url
    except servers.Unavailable as why:
        pytest.skip(f"PostgreSQL cannot be started here: {why}")
    try:
        (tmp_path / "artifacts").mkdir()
        with servers.mlflow_server(f"{pg}/mlflow", tmp_path / "artifacts") as uri:
            # six variants: three workers, one killed mid-trial, its trial retried by another
            (tmp_path / "grid.toml").write_text(GRID_12.replace('"softmax", "sparsemax", ', ""))
            storage = f"{pg}/optuna"
            created = run_cli(["sweep", "grid.toml", "--storage", storage, "--tracking-uri", uri, "--jobs", "0",
                               "--heartbeat", "0.5", "--grace", "5"], cwd=tmp_path, env=ENV)
            assert created.returncode == 0, created.stderr
            name = created.stdout.strip().splitlines()[-1]
            workers = [subprocess.Popen([sys.executable, "-m", "ganlab", "sweep-worker", name, "--storage", storage],
                                        cwd=tmp_path, env={**os.environ, **ENV}, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
                       for _ in range(3)]
            client = MlflowClient(tracking_uri=uri)
            try:
                victim = _kill_one_worker_mid_trial(name, storage, client, "study", workers)
                for worker in workers:
                    worker.wait(timeout=300)
            finally:
                for worker in workers:
                    if worker.poll() is None:
                        worker.kill()
            assert victim.returncode == -signal.SIGKILL
            assert all(w.returncode == 0 for w in workers if w is not victim), [
                w.stdout.read().decode()[-2000:] for w in workers if w is not victim]
            study = _study(name, storage)
            trials, children = _check_every_variant_finished_once(study, client, "study", 6)
            [dead] = [t for t in trials if t.state == TrialState.FAIL]
            [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
            assert retry.state == TrialState.COMPLETE
            [killed_run] = [r for r in children if r.info.status == "FAILED"]
            assert killed_run.info.run_name == dead.user_attrs["ganlab.name"]
            assert "stopped sending heartbeats" in killed_run.data.tags["ganlab.failure"]
            status = run_cli(["sweep", "status", name, "--storage", storage], cwd=tmp_path)
            assert "6 done, 0 running, 0 failed, 0 left (1 retried after their worker died)" in status.stdout

            # the storage server dies under a running trial: the worker stops the run and says so in one line
            # (the run records to a store of its own here: this MLflow server's database dies with the storage);
            # a grace of 1.2 s leaves the trial 0.3 s to close its run, too little on a busy machine: the worker ends it
            local = f"sqlite:///{tmp_path / 'local' / 'mlflow.db'}"
            (tmp_path / "local").mkdir()
            client = MlflowClient(tracking_uri=local)
            (tmp_path / "long.toml").write_text(GRID_12.replace("steps = 400", "steps = 100000").replace(
                '"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]', '"head.name" = ["sigmoid"]').replace(
                "seed = [0, 1, 2]", "seed = [0]").replace('experiment = "study"', 'experiment = "long"'))
            created = run_cli(["sweep", "long.toml", "--storage", storage, "--tracking-uri", local, "--jobs", "0",
                               "--heartbeat", "0.5", "--grace", "1.2"], cwd=tmp_path, env=ENV)
            long_name = created.stdout.strip().splitlines()[-1]
            worker = subprocess.Popen([sys.executable, "-m", "ganlab", "sweep-worker", long_name, "--storage",
                                       storage], cwd=tmp_path, env={**os.environ, **ENV}, stderr=subprocess.PIPE,
                                      text=True)
            try:
                deadline = time.monotonic() + 120
                while not client.search_runs([client.get_experiment_by_name("long").experiment_id],
                                             filter_string="attributes.run_name = 'sigmoid-seed=0' and "
                                                           "attributes.status = 'RUNNING'"):
                    assert time.monotonic() < deadline and worker.poll() is None
                    time.sleep(0.3)
                server.stop()
                _, err = worker.communicate(timeout=120)
            finally:
                if worker.poll() is None:
                    worker.kill()
            lines = [line for line in err.splitlines() if line.strip()]
            assert worker.returncode == 1 and "Traceback" not in err, err
            assert lines[-1].startswith("ganlab: error: the study's storage stopped answering"), err
            [run] = client.search_runs([client.get_experiment_by_name("long").experiment_id],
                                       filter_string="attributes.run_name = 'sigmoid-seed=0'")
            assert run.info.status == "KILLED"
    finally:
        pg_context.__exit__(None, None, None)


@pytest.mark.slow
def test_a_dead_workers_trial_is_retried_once_then_stays_failed_with_its_reason(workdir: Path) -> None:
    """Optuna's heartbeat on the journal file: a claimed trial that stops beating is failed after the
    grace period by whichever worker looks (fail_stale_trials), retried once, and a dead retry stays FAILED."""
    from optuna.trial import TrialState

    from ganlab.studies.study import status_counts
    from ganlab.studies.worker import Worker

    (workdir / "grid.toml").write_text(GRID_12.replace('"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]',
                                                       '"head.name" = ["sigmoid"]').replace("seed = [0, 1, 2]",
                                                                                              "seed = [0]"))
    created = run_cli(["sweep", "grid.toml", "--jobs", "0", "--grace", "1", "--heartbeat", "0.2"], cwd=workdir)
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip().splitlines()[-1]
    storage = f"journal:{workdir / 'mlruns' / 'optuna.journal'}"
    reaper, silent = (Worker(name, storage, say=lambda text: None) for _ in range(2))
    state = lambda trial_id: reaper.storage.get_trial(trial_id).state  # noqa: E731

    first = silent.claim()  # the claim writes one heartbeat; then its worker is silent
    time.sleep(0.6)
    silent.storage.record_heartbeat(first)  # ...but for one more beat
    time.sleep(0.6)
    reaper.fail_stale()
    assert state(first) == TrialState.RUNNING, "a trial that beat within the grace period is alive"
    time.sleep(1.2)
    reaper.fail_stale()
    assert state(first) == TrialState.FAIL
    [retry] = reaper.study.get_trials(states=(TrialState.WAITING,))
    assert retry.system_attrs["failed_trial"] == 0 and retry.user_attrs["ganlab.name"] == "sigmoid-seed=0"
    second = silent.claim()
    assert second == retry._trial_id
    assert silent.trial_config(None, silent.storage.get_trial(second)).run_name == "sigmoid-seed=0 (retry)"
    time.sleep(1.2)
    reaper.fail_stale()
    assert state(second) == TrialState.FAIL
    assert not reaper.study.get_trials(states=(TrialState.WAITING,)), "a retry that died is not retried again"
    counts = status_counts(reaper.study)
    assert (counts["failed"], counts["retried"], counts["left"]) == (1, 1, 0)
    [(number, _, reason, _)] = counts["failures"]
    assert number == 1 and "stopped sending heartbeats" in reason


def test_pruning_reports_the_objective_and_stops_a_trailing_run(tmp_path: Path, monkeypatch) -> None:
    import optuna
    from optuna.trial import TrialState

    from ganlab.studies import pruning
    from ganlab.studies.storage import open_storage
    from ganlab.studies.worker import PRUNED_ATTR

    storage_url = f"journal:{tmp_path / 'study.journal'}"
    study = optuna.create_study(study_name="p", storage=open_storage(storage_url), direction="minimize")
    study.set_user_attr("ganlab.sweep", {"search": {"objective": "modes.kl_uniform"}})
    for value in (0.1, 0.2):  # two finished trials, evaluated at steps 10 and 20 (median 0.15, then 0.015)
        trial = study.ask()
        trial.report(value, 10)
        trial.report(value / 10, 20)
        study.tell(trial, value / 10)
    study.enqueue_trial({})
    [waiting] = study.get_trials(states=(TrialState.WAITING,))
    assert study._storage.set_trial_state_values(waiting._trial_id, TrialState.RUNNING)
    monkeypatch.setenv(pruning_env(), f"{storage_url}|p|{waiting._trial_id}")
    monkeypatch.setattr(pruning, "_trial", {})
    signals: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
    try:
        pruning.on_evaluate(None, 10, {"images.fld": 9.0})  # not the objective: nothing reported
        pruning.on_evaluate(None, 10, {"modes.kl_uniform": 0.15})  # at the median: carries on
        assert not signals
        # the median pruner judges a trial by its best value so far: 0.15, far behind step 20's median
        pruning.on_evaluate(None, 20, {"modes.kl_uniform": 5.0})
        assert signals == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
    frozen = study._storage.get_trial(waiting._trial_id)
    assert frozen.user_attrs[PRUNED_ATTR] == 20 and frozen.intermediate_values == {10: 0.15, 20: 5.0}


def pruning_env() -> str:
    from ganlab.studies.worker import PRUNING_ENV

    return PRUNING_ENV


@pytest.mark.slow
def test_a_population_file_runs_each_variant_as_one_population_trial(workdir: Path, mlflow_client) -> None:
    (workdir / "pop.toml").write_text(GRID_12.replace('experiment = "study"', 'experiment = "pop"\npopulation = true')
                                      .replace("steps = 400", "steps = 10").replace(
        '"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]', '"head.name" = ["sigmoid", "entmax"]'))
    done = run_in_process(["sweep", "pop.toml"], workdir)
    assert done.returncode == 0, done.stderr
    assert "sweep 'pop': 2 variant(s), all finished;" in done.stdout
    parent_id = done.stdout.split("compare: ganlab compare --sweep ")[1].split()[0]
    runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("pop").experiment_id])
    populations = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(r.info.run_name for r in populations) == ["entmax", "sigmoid"]
    for population in populations:  # each trial's run is a population: one child run per seed
        seeds = sorted(r.data.params["seed"] for r in runs
                       if r.data.tags.get("mlflow.parentRunId") == population.info.run_id)
        assert seeds == ["0", "1", "2"]
    compared = run_cli(["compare", "--sweep", parent_id, "-m", "loss.d", "-f", "csv"], cwd=workdir)
    assert compared.returncode == 0, compared.stderr
    rows = [line.split(",") for line in compared.stdout.splitlines()[1:]]
    assert sorted((row[0], row[1], row[3]) for row in rows) == [("entmax", "3", "3"), ("sigmoid", "3", "3")]


@pytest.mark.slow
def test_a_search_study_uses_its_sampler_and_a_retry_reruns_the_same_values(workdir: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from ganlab.studies.worker import Worker

    (workdir / "search.toml").write_text(SEARCH.replace('direction = "minimize"', 'sampler = "random"'))
    created = run_cli(["sweep", "search.toml", "--jobs", "0", "--grace", "1", "--heartbeat", "0.2"], cwd=workdir)
    assert created.returncode == 0, created.stderr
    name = created.stdout.strip().splitlines()[-1]
    worker = Worker(name, f"journal:{workdir / 'mlruns' / 'optuna.journal'}", say=lambda text: None)
    study, storage = worker.study, worker.storage
    assert isinstance(study.sampler, optuna.samplers.RandomSampler)
    first = worker.claim()
    first_name = worker.trial_config(optuna.trial.Trial(study, first), storage.get_trial(first)).run_name
    sampled = storage.get_trial(first).params
    assert set(sampled) == {"lr_g", "head.name"} and first_name.startswith("trial-0 lr_g=")
    time.sleep(1.2)  # its worker went silent
    worker.fail_stale()
    assert storage.get_trial(first).state == TrialState.FAIL
    [retry] = [t for t in study.get_trials(states=(TrialState.WAITING,)) if "failed_trial" in t.system_attrs]
    while (claimed := worker.claim()) != retry._trial_id:  # the other waiting trials come first
        assert claimed is not None
        storage.set_trial_state_values(claimed, TrialState.FAIL)
    retry_name = worker.trial_config(optuna.trial.Trial(study, claimed), storage.get_trial(claimed)).run_name
    assert storage.get_trial(claimed).params == sampled  # the same values, recorded for the sampler
    assert retry_name.endswith("(retry)")


@pytest.mark.slow
def test_a_dead_trial_whose_run_had_finished_is_completed_from_it_not_retried(workdir: Path, mlflow_client) -> None:
    """Its worker died between the run's end and telling the study: the run stands, nothing is trained twice."""
    from optuna.trial import TrialState

    from ganlab.studies.study import status_counts
    from ganlab.studies.worker import Worker

    (workdir / "grid.toml").write_text(GRID_12.replace('"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]',
                                                       '"head.name" = ["sigmoid"]').replace("seed = [0, 1, 2]",
                                                                                              "seed = [0]"))
    created = run_in_process(["sweep", "grid.toml", "--jobs", "0", "--grace", "1", "--heartbeat", "0.2"], workdir)
    assert created.returncode == 0, created.stderr
    worker = Worker(created.stdout.strip().splitlines()[-1], f"journal:{workdir / 'mlruns' / 'optuna.journal'}",
                    say=lambda text: None)
    dead = worker.claim()
    run = mlflow_client.create_run(worker.experiment_id, run_name="sigmoid-seed=0",
                                   tags={"mlflow.parentRunId": worker.parent_id})
    mlflow_client.set_terminated(run.info.run_id, status="FINISHED")
    time.sleep(1.2)
    worker.fail_stale()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["ganlab.run_id"] == run.info.run_id and trials[1].system_attrs["failed_trial"] == 0
    counts = status_counts(worker.study)
    assert (counts["done"], counts["failed"], counts["retried"], counts["left"]) == (1, 0, 1, 0)
    assert worker.storage.get_trial(dead).state == TrialState.FAIL
    worker.close_parent_if_done()
    assert mlflow_client.get_run(worker.parent_id).info.status == "FINISHED"


def test_a_trial_killed_for_a_lost_storage_has_its_run_ended_killed_by_its_worker(workdir: Path, mlflow_client,
                                                                                   monkeypatch) -> None:
    """The trial had grace / 4 seconds to close its run and did not (killed mid-checkpoint): the worker
    ends the run KILLED; a run the trial did close is left as it ended; an unreachable store is no error."""
    from mlflow import MlflowClient

    from ganlab.studies.worker import Worker

    (workdir / "grid.toml").write_text(GRID_12.replace('"head.name" = ["sigmoid", "softmax", "sparsemax", "entmax"]',
                                                       '"head.name" = ["sigmoid"]').replace("seed = [0, 1, 2]",
                                                                                              "seed = [0, 1]"))
    created = run_in_process(["sweep", "grid.toml", "--jobs", "0"], workdir)
    assert created.returncode == 0, created.stderr
    worker = Worker(created.stdout.strip().splitlines()[-1], f"journal:{workdir / 'mlruns' / 'optuna.journal'}",
                    say=lambda text: None)
    left_running = mlflow_client.create_run(worker.experiment_id, run_name="sigmoid-seed=0",
                                            tags={"mlflow.parentRunId": worker.parent_id}).info.run_id
    closed = mlflow_client.create_run(worker.experiment_id, run_name="sigmoid-seed=1",
                                      tags={"mlflow.parentRunId": worker.parent_id}).info.run_id
    mlflow_client.set_terminated(closed, status="KILLED")

    worker.end_stopped_run("sigmoid-seed=0")
    worker.end_stopped_run("sigmoid-seed=1")

    ended = mlflow_client.get_run(left_running)
    assert ended.info.status == "KILLED" and ended.data.tags["ganlab.killed_by"] == "SIGKILL"
    untouched = mlflow_client.get_run(closed)
    assert untouched.info.status == "KILLED" and "ganlab.killed_by" not in untouched.data.tags

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    worker.client = MlflowClient(tracking_uri="http://127.0.0.1:9")  # the store went with the storage
    worker.end_stopped_run("sigmoid-seed=0")
