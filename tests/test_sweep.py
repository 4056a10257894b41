"""``ganlab sweep``: validation before anything trains, nested MLflow runs, failures isolated, --jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_SWEEP_BASE, run_cli

REPO = Path(__file__).resolve().parents[1]

# A loss that fails on purpose: at D step `at_step`, or (at_step = 0) while the run is being built,
# before its MLflow run exists. Written in terms of the head's proper losses like the real ones.
EXPLODING_PLUGIN = '''
from ganlab import Option, hookimpl


class Exploding:
    def __init__(self, at_step):
        self.at_step, self.calls = at_step, 0

    def check(self, head_name, head, data):
        if self.at_step == 0:
            raise RuntimeError("exploding loss refuses to start")

    def discriminator_loss(self, step):
        self.calls += 1
        if self.calls >= self.at_step:
            raise RuntimeError(f"exploding loss blew up at D step {self.calls}")
        return step.head.real_loss(step.scores(step.real)).mean() + step.head.fake_loss(step.scores(step.fake)).mean()

    def generator_loss(self, step):
        return step.head.real_loss(step.scores(step.fake)).mean()


@hookimpl
def register_losses(register):
    register("exploding", Exploding, summary="test loss that raises at D step at_step (0: before training)",
             options={"at_step": Option(int, 2, "D step to fail at", min=0)})
'''

BASE = TINY_SWEEP_BASE + 'metrics = "diagnostics"\n'


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def exploding(workdir: Path) -> Path:
    return write(workdir / "exploding.py", EXPLODING_PLUGIN)


def runs_of(client, experiment: str) -> tuple[object, list[object]]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("ganlab.sweep.role") == "parent"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) + 1 == len(runs)
    return parents[0], children


def test_failing_variants_are_recorded_and_do_not_stop_the_others(workdir, exploding, mlflow_client, cli_inproc,
                                                                   capsys):
    sweep = write(workdir / "fail.toml", 'experiment = "failing"\n' + BASE + '''
[grid]
loss = ["nonsaturating", { name = "exploding", at_step = 2 }, { name = "exploding", at_step = 0 }]
''')
    code = cli_inproc(["sweep", str(sweep), "--plugin", str(exploding)])
    out = capsys.readouterr()
    assert code == 1, out.err
    assert "2 of 3 failed" in out.out

    parent, children = runs_of(mlflow_client, "failing")
    assert parent.info.status == "FAILED"
    assert parent.data.metrics["sweep.finished"] == 1 and parent.data.metrics["sweep.failed"] == 2
    assert json.loads(parent.data.params["sweep.grid"])["loss"][1] == {"name": "exploding", "at_step": 2}
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {"nonsaturating", "exploding-at_step=2", "exploding-at_step=0"}

    good = by_name["nonsaturating"]
    assert good.info.status == "FINISHED"
    assert good.data.params["loss.name"] == "nonsaturating" and good.data.params["parent_run_id"] == parent.info.run_id
    assert "diag.p_real_real" in good.data.metrics

    mid_run = by_name["exploding-at_step=2"]  # failed while training: the tracker closed its own run
    assert mid_run.info.status == "FAILED"
    assert "blew up at D step 2" in mid_run.data.tags["ganlab.error"]
    assert mid_run.data.params["loss.at_step"] == "2"
    artifacts = {f.path for f in mlflow_client.list_artifacts(mid_run.info.run_id, "sweep")}
    assert "sweep/traceback.txt" in artifacts

    early = by_name["exploding-at_step=0"]  # failed before its run existed: the sweep records it
    assert early.info.status == "FAILED"
    assert "refuses to start" in early.data.tags["ganlab.error"]
    assert early.data.params["loss.at_step"] == "0" and early.data.params["steps"] == "4"
    assert "FAILED: exploding-at_step=2" in out.out and "FAILED: exploding-at_step=0" in out.out


@pytest.mark.slow
def test_all_variants_finish_with_set_and_grid_overrides(workdir, mlflow_client, cli_inproc, capsys):
    sweep = write(workdir / "ok.toml", 'experiment = "fine"\nname = "two-heads"\n' + BASE + '''
[base.head]
name = "entmax"
alpha = 1.25
[grid]
"head.name" = ["sigmoid", "entmax", "sparsemax"]
seed = [0, 1]
''')
    # --grid narrows the file's axes, --set overrides the base of every variant
    code = cli_inproc(["sweep", str(sweep), "--grid", "head.name=sigmoid,entmax", "--grid", "seed=7",
                       "--set", "steps=3"])
    out = capsys.readouterr()
    assert code == 0, out.err
    parent, children = runs_of(mlflow_client, "fine")
    assert parent.info.status == "FINISHED" and parent.info.run_name == "two-heads"
    assert parent.data.params["sweep.set"] == "steps=3"
    assert sorted(r.info.run_name for r in children) == ["entmax-seed=7", "sigmoid-seed=7"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.params["steps"] == "3" and run.data.params["seed"] == "7"
    params = {r.data.params["head.name"]: r.data.params for r in children}
    # the base's entmax option stays with entmax and is dropped for the head that has no such option
    assert params["entmax"]["head.alpha"] == "1.25"
    assert "head.alpha" not in params["sigmoid"]
    assert f"ganlab compare --sweep {parent.info.run_id}" in out.out


RENDEZVOUS = '''
import os, time
from pathlib import Path
from ganlab import hookimpl


@hookimpl
def on_run_start(ctx):
    meeting = Path(os.environ["GANLAB_TEST_MEETING"])
    (meeting / f"{ctx.run_id}.here").touch()
    deadline = time.monotonic() + 120
    while len(list(meeting.glob("*.here"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    (meeting / f"{ctx.run_id}.seen").write_text(str(len(list(meeting.glob("*.here")))))
'''


@pytest.mark.slow
def test_parallel_jobs_in_subprocesses(workdir, exploding, mlflow_client):
    sweep = write(workdir / "jobs.toml", 'experiment = "parallel"\n' + BASE + '''
[grid]
loss = ["nonsaturating", { name = "exploding", at_step = 3 }]
''')
    # each variant waits at run start until the other has started too: only parallel jobs both see 2
    meeting = workdir / "meeting"
    meeting.mkdir()
    rendezvous = write(workdir / "rendezvous.py", RENDEZVOUS)
    result = run_cli(["sweep", str(sweep), "--jobs", "2", "--plugin", str(exploding), "--plugin", str(rendezvous)],
                     cwd=workdir, env={"GANLAB_TEST_MEETING": str(meeting)})
    assert result.returncode == 1, result.stderr
    parent, children = runs_of(mlflow_client, "parallel")
    assert parent.info.status == "FAILED" and parent.data.params["sweep.jobs"] == "2"
    status = {r.info.run_name: r.info.status for r in children}
    assert status == {"nonsaturating": "FINISHED", "exploding-at_step=3": "FAILED"}
    failed = next(r for r in children if r.info.status == "FAILED")
    assert "blew up at D step 3" in failed.data.tags["ganlab.error"]
    # each variant's own output is kept with its run
    for run in children:
        logs = [f.path for f in mlflow_client.list_artifacts(run.info.run_id, "sweep")]
        assert len(logs) == 1 and logs[0].endswith(".log")
    # both variants were in flight at once
    seen = sorted(p.read_text() for p in meeting.glob("*.seen"))
    assert seen == ["2", "2"]


def test_one_bad_variant_refuses_the_whole_sweep(workdir, mlflow_client, cli_inproc, capsys):
    sweep = write(workdir / "bad.toml", 'experiment = "never"\n' + BASE + '''
[grid]
"head.name" = ["sigmoid", "sparsemaks"]
seed = [0, 1]
''')
    code = cli_inproc(["sweep", str(sweep)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("ganlab: error:")]
    assert len(lines) == 1
    assert "variant 3/4 (head.name=sparsemaks, seed=0)" in lines[0] and "did you mean 'sparsemax'" in lines[0]
    assert mlflow_client.get_experiment_by_name("never") is None
    assert mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()]) == []


@pytest.mark.parametrize(("args", "expected"), [
    (["--set", "seed=3"], "--set seed would be overridden by the grid axis 'seed'"),
    (["--grid", "sed=1,2"], "did you mean 'seed'"),
    (["--set", "head.alpah=2"], "unknown option 'head.alpah'"),
    (["--set", "experiment=x"], "the sweep sets 'experiment'"),
])
def test_bad_overrides_are_refused(workdir, cli_inproc, capsys, args, expected):
    sweep = write(workdir / "s.toml", BASE + '''
[grid]
"head.name" = ["entmax"]
seed = [0]
''')
    assert cli_inproc(["sweep", str(sweep), *args]) == 2
    assert expected in capsys.readouterr().err


def test_bad_sweep_files_are_refused(workdir, cli_inproc, capsys):
    cases = {
        "unknown top-level key": ('experiment = "x"\nstep = 3\n[grid]\nseed = [0]\n', "unknown key 'step'"),
        "empty axis": ('[grid]\nseed = []\n', "non-empty list"),
        "table on a non-component key": ('[grid]\nseed = [{ a = 1 }]\n', "only a component key"),
        "reserved axis": ('[grid]\ntracking_uri = ["a"]\n', "cannot be a grid axis"),
    }
    for name, (text, expected) in cases.items():
        path = write(workdir / "f.toml", text)
        assert cli_inproc(["sweep", str(path), "--dry-run"]) == 2, name
        assert expected in capsys.readouterr().err, name


@pytest.mark.parametrize(("name", "variants"), [("seed-mlp", 1), ("heads", 18), ("modes", 12)])  # modes: 12 populations
def test_experiment_files_are_valid(workdir, cli_inproc, capsys, name, variants):
    code = cli_inproc(["sweep", str(REPO / "experiments" / f"{name}.toml"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{variants} variant(s)" in out
    assert out.count("\n") == variants + 1
    assert not (workdir / "mlruns" / "artifacts").exists()


def test_exclude_leaves_out_the_combinations_it_names(tmp_path: Path) -> None:
    from ganlab.config.sweep import ConfigError, expand, load_sweep

    path = tmp_path / "s.toml"
    path.write_text('exclude = [{ "loss.name" = "hinge", "head.name" = "softmax" }, { seed = 1 }]\n'
                    '[base]\nsteps = 2\n[grid]\n"loss.name" = ["nonsaturating", "hinge"]\n'
                    '"head.name" = ["sigmoid", "softmax"]\nseed = [0, 1]\n')
    combos = expand(load_sweep(path))
    assert {(c["loss.name"], c["head.name"]) for c in combos} == {
        ("nonsaturating", "sigmoid"), ("nonsaturating", "softmax"), ("hinge", "sigmoid")}
    assert {c["seed"] for c in combos} == {0}
    path.write_text('exclude = [{ "loss" = "hinge" }]\n[base]\nsteps = 2\n[grid]\n"loss.name" = ["hinge"]\n')
    with pytest.raises(ConfigError, match="'loss', which is not a grid axis; did you mean 'loss.name'"):
        load_sweep(path)
    path.write_text('exclude = [{ "loss.name" = "hnge" }]\n[base]\nsteps = 2\n[grid]\n"loss.name" = ["hinge"]\n')
    with pytest.raises(ConfigError, match="which the axis does not hold"):
        load_sweep(path)


def test_the_digits_objectives_experiment_is_valid(workdir: Path) -> None:
    """The same grid as objectives.toml (which trains below) on dcgan and digits: every variant validated."""
    from conftest import run_in_process

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    result = run_in_process(["sweep", str(experiments / "objectives-digits.toml"), "--dry-run"], workdir)
    assert result.returncode == 0, result.stderr
    assert "11 variant(s)" in result.stdout and "29 excluded" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["objectives", "stabilisers", "conditional"])
def test_the_objective_stabiliser_and_conditional_experiments_run_end_to_end_at_a_tiny_size(name: str, workdir: Path,
                                                                                  mlflow_client: Any) -> None:
    from conftest import run_in_process

    tiny = ["--set", "steps=2", "--set", "batch_size=8", "--set", "eval_every=0", "--set", "sample_every=0",
            "--set", "metrics=none", "--grid", "seed=0,1"]
    if name != "objectives":
        tiny += ["--set", "arch.ngf=8", "--set", "arch.ndf=8", "--set", "latent_dim=8"]
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    result = run_in_process(["sweep", str(experiments / f"{name}.toml"), *tiny], workdir)
    assert result.returncode == 0, result.stderr[-2000:]
    experiment = mlflow_client.get_experiment_by_name(name)
    runs = mlflow_client.search_runs([experiment.experiment_id], max_results=500)
    children = [r for r in runs if r.data.params.get("seed") is not None and "mlflow.parentRunId" in r.data.tags
                and r.data.params.get("seeds", "") == ""]
    expected = {"stabilisers": 16, "objectives": 11, "conditional": 7}[name]
    assert len(children) == 2 * expected and all(r.info.status == "FINISHED" for r in children)
    if name == "objectives":
        assert {r.data.params["reg"] for r in children if r.data.params["loss.name"] == "wasserstein"} == {"gp"}
    elif name == "stabilisers":
        assert {r.data.params["augment"] for r in children} == {"none", "diffaugment"}
    else:  # AC-GAN's D is never given the class, the projection cGAN's always
        pairs = {(r.data.params["loss.name"], r.data.params["arch.projection"]) for r in children}
        assert pairs == {("nonsaturating", "True"), ("acgan", "False")}
        assert {r.data.params["head.name"] for r in children if r.data.params["loss.name"] == "acgan"} == \
            {"softmax", "sparsemax", "entmax"}
