"""``ganlab compare`` never averages unlike runs (issue 17), on real runs through the real CLI.

The store holds real TINY ring8 runs, made once for the module by two commands: a
``ganlab sweep`` over steps 4 and 6 with seeds 0 and 1 (children of a sweep parent), and a
population ``ganlab run --seeds 2-3`` with 4 steps (a parent run and one child run per
seed). The four 4-step runs are replicates of one variant and must be one group of n = 4;
the 6-step runs must never be averaged into it, however the user groups.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest

from conftest import TINY, TINY_SWEEP_BASE, run_in_process


EXPERIMENT = "unlike"
BASE = ["--experiment", EXPERIMENT, "--dataset", "ring8", "--arch", "mlp", "--head", "sigmoid", *TINY]
SWEEP = 'experiment = "unlike"' + TINY_SWEEP_BASE + """\
[base.dataset]
name = "ring8"
[base.arch]
name = "mlp"
[base.head]
name = "sigmoid"
[grid]
steps = [4, 6]
seed = [0, 1]
"""


def _ok(done) -> None:
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory, template_store: Path) -> Path:
    """A project directory whose store holds the runs described in the module docstring."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("compare-unlike")
    (root / "mlruns").mkdir()
    shutil.copy(template_store, root / "mlruns" / "mlflow.db")
    (root / "seeds.toml").write_text(SWEEP, encoding="utf-8")
    _ok(run_in_process(["sweep", "seeds.toml"], root))
    _ok(run_in_process(["run", *BASE, "--seeds", "2-3"], root))
    return root


def compare(root: Path, *args: str):
    # in this process: compare's behaviour does not depend on it
    return run_in_process(["compare", "--experiment", EXPERIMENT, "--metrics", "loss.d", *args], root)


def final_loss_by_steps(root: Path) -> dict[str, list[float]]:
    """loss.d of every seed run (no parent runs), read straight from the store, by steps."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    parents = {run.data.tags.get("mlflow.parentRunId") for run in runs}
    out: dict[str, list[float]] = {}
    for run in runs:
        if run.info.run_id not in parents:
            out.setdefault(run.data.params["steps"], []).append(run.data.metrics["loss.d"])
    return out


def groups_by_steps(csv_text: str) -> dict[str, dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    return {row["steps"]: row for row in rows}


def test_runs_with_different_steps_are_never_averaged(real_store):
    """The regression: head.name alone used to put the 6-step runs among the 4-step seeds."""
    values = final_loss_by_steps(real_store)
    assert sorted((k, len(v)) for k, v in values.items()) == [("4", 4), ("6", 2)]
    done = compare(real_store, "--format", "csv")
    _ok(done)
    assert done.stderr == ""  # the default grouping splits by itself, no note needed
    assert next(csv.reader(io.StringIO(done.stdout)))[:2] == ["head.name", "steps"]
    got = groups_by_steps(done.stdout)
    assert set(got) == {"4", "6"}
    # seeds 0-3 (sweep children, population children) are one group; no parent run is in it
    assert (got["4"]["runs"], got["4"]["n"]) == ("4", "4")
    assert float(got["4"]["mean"]) == pytest.approx(statistics.fmean(values["4"]), rel=1e-12)
    assert float(got["4"]["stderr"]) == pytest.approx(statistics.stdev(values["4"]) / 2, rel=1e-12)
    assert (got["6"]["runs"], got["6"]["n"]) == ("2", "2")
    assert float(got["6"]["mean"]) == pytest.approx(statistics.fmean(values["6"]), rel=1e-12)


def test_markdown_shows_n_per_group(real_store):
    done = compare(real_store, "--format", "markdown")
    _ok(done)
    lines = done.stdout.splitlines()
    assert lines[0] == "| head.name | steps | n | loss.d |"
    assert [line.split(" | ")[:3] for line in lines[2:4]] == [["| sigmoid", "4", "4"], ["| sigmoid", "6", "2"]]
    assert "6 runs grouped by head.name, steps;" in done.stdout


def test_group_by_that_would_mix_unlike_runs_is_split_with_a_note(real_store):
    done = compare(real_store, "--group-by", "head.name", "--format", "json")
    _ok(done)
    note = done.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("ganlab: note: runs with the same head.name differ in steps")
    assert "--pool steps" in note[0]
    data = json.loads(done.stdout)
    assert data["group_by"] == ["head.name", "steps"] and data["pooled"] == []
    assert sorted((g["group"]["steps"], g["runs"]) for g in data["groups"]) == [("4", 4), ("6", 2)]
    # a grouping that already separates them needs no note
    done = compare(real_store, "--group-by", "steps", "--format", "json")
    _ok(done)
    assert done.stderr == ""
    assert json.loads(done.stdout)["group_by"] == ["steps"]


def test_pool_averages_over_a_differing_param_only_when_asked_and_says_so(real_store):
    values = final_loss_by_steps(real_store)
    done = compare(real_store, "--group-by", "head.name", "--pool", "steps", "--format", "markdown")
    _ok(done)
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "| head.name | n | loss.d |"
    every = values["4"] + values["6"]
    mean, se = statistics.fmean(every), statistics.stdev(every) / 6 ** 0.5
    assert lines[2] == f"| sigmoid | 6 | {mean:.4g} ± {se:.2g} |"
    assert "(averaged over differing steps: --pool)" in done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--pool", "step"], "--pool 'step' is not a param of any run in experiment 'unlike'; did you mean 'steps'?"),
    (["--group-by", "steps", "--pool", "steps"], "steps cannot be both grouped by (--group-by) and averaged over"),
])
def test_bad_pool_is_one_line(real_store, args, message):
    done = compare(real_store, *args)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: ") and message in lines[0]


def test_sweep_groups_by_its_axes(real_store):
    done = run_in_process(["compare", "--sweep", "last", "--metrics", "loss.d", "--format", "json"], real_store)
    _ok(done)
    data = json.loads(done.stdout)
    assert data["group_by"] == ["steps"]
    assert sorted((g["group"]["steps"], g["runs"]) for g in data["groups"]) == [("4", 2), ("6", 2)]


def test_test_flag_compares_the_groups_that_differ_in_one_param(real_store):
    """--test: the 4-step group against the 6-step group, the p-value the permutation test gives on
    the final values read back from the store by this test itself."""
    from mlflow import MlflowClient

    from ganlab.compare.significance import permutation_p

    done = compare(real_store, "--format", "json", "--test")
    _ok(done)
    (test,) = json.loads(done.stdout)["tests"]
    assert (test["metric"], test["first"], test["second"]) == ("loss.d", "sigmoid steps=4", "sigmoid steps=6")
    client = MlflowClient(tracking_uri=f"sqlite:///{real_store / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    finals: dict[str, list[float]] = {"4": [], "6": []}
    for run in client.search_runs([experiment]):
        if "loss.d" in run.data.metrics and run.info.status == "FINISHED":
            finals[run.data.params["steps"]].append(run.data.metrics["loss.d"])
    assert len(finals["4"]) == 4 and len(finals["6"]) == 2
    assert test["p"] == pytest.approx(permutation_p(finals["4"], finals["6"])[0])
    assert test["difference"] == pytest.approx(statistics.fmean(finals["4"]) - statistics.fmean(finals["6"]))
    assert test["p_holm"] == test["p"], "one test: Holm changes nothing"
    markdown = compare(real_store, "--format", "markdown", "--test")
    assert "| loss.d | sigmoid steps=4 | sigmoid steps=6 |" in markdown.stdout and "permutation test" in markdown.stdout
    refused = compare(real_store, "--format", "csv", "--test")
    assert refused.returncode == 2 and "--test" in refused.stderr
