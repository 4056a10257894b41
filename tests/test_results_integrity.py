"""Results that must not mislead (issue 30): one seed never counted twice, no NaN passed off as samples,
no samples from a deleted run.

- ``ganlab sweep`` started again reuses the variants that already FINISHED in the experiment (same
  settings and seed) instead of training them a second time; a KILLED or FAILED one is trained again.
- ``ganlab compare`` keeps one run of each set of runs with identical params and seed.
- A diverged run exports the networks of its last finite checkpoint, never NaN weights; ``ganlab
  sample`` refuses non-finite weights or samples, and a deleted run, in one line (exit 2).

Everything goes through the real CLI and a real SQLite store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY, TINY_RING8, TINY_SWEEP_BASE, run_in_process

NAN_PLUGIN = str(Path(__file__).parent / "plugins_for_tests" / "nan_at_step.py")

SWEEP = f'''experiment = "again"
{TINY_SWEEP_BASE}metrics = "none"
device = "cpu"
{TINY_RING8}
[grid]
"head.name" = ["sigmoid", "softmax"]
seed = [0, 1]
'''
#: A tiny run on ring8 (the sweep's variants, as `ganlab run` options).
RING8 = [*TINY, "--set", "metrics=none", "--device", "cpu", "--dataset", "ring8", "--arch", "mlp",
         "--set", "arch.hidden_scale=0.125"]


def one_error(stderr: str) -> str:
    """The error contract: the last stderr line is the only `ganlab: error:` line, and no traceback."""
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert [line for line in lines if line.startswith("ganlab: error:")] == lines[-1:], stderr
    return lines[-1]


def leaf_runs(client: Any, experiment: str) -> list[Any]:
    """Every run of the experiment but the sweeps' parent runs."""
    exp = client.get_experiment_by_name(experiment)
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("ganlab.sweep.role") != "parent"]


def compare_json(workdir: Path, *args: str) -> tuple[dict[str, Any], str]:
    done = run_in_process(["compare", *args, "--metrics", "loss.d", "--format", "json"], workdir)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def n_by_head(data: dict[str, Any]) -> dict[str, int]:
    return {g["group"]["head.name"]: g["metrics"]["loss.d"]["n"] for g in data["groups"]}


@pytest.mark.slow
def test_a_finished_run_recorded_before_an_option_existed_is_reused_by_its_sweep(workdir: Path,
                                                                                mlflow_client: Any) -> None:
    """A softmax run recorded before ``head.scores`` existed has no such param; it trained on two units,
    the option's default, so a sweep asking for the default reuses it instead of training it again."""
    import sqlite3

    (workdir / "sweep.toml").write_text(SWEEP.replace('["sigmoid", "softmax"]', '["softmax"]').replace(
        "seed = [0, 1]", "seed = [0]"))
    assert run_in_process(["sweep", "sweep.toml"], workdir).returncode == 0
    (run,) = leaf_runs(mlflow_client, "again")
    assert run.data.params["head.scores"] == "2"
    with sqlite3.connect(workdir / "mlruns" / "mlflow.db") as db:  # as an older ganlab recorded it
        db.execute("DELETE FROM params WHERE key = 'head.scores'")
    again = run_in_process(["sweep", "sweep.toml"], workdir)
    assert again.returncode == 0 and "1 of 1 variants already finished" in again.stderr, again.stderr
    assert len(leaf_runs(mlflow_client, "again")) == 1
    one_score = run_in_process(["sweep", "sweep.toml", "--set", "head.scores=1"], workdir)  # not the default
    assert one_score.returncode == 0 and "already finished" not in one_score.stderr, one_score.stderr
    assert len(leaf_runs(mlflow_client, "again")) == 2


# ---- 11a: a sweep started again ---------------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_started_again_trains_only_the_variants_that_did_not_finish(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "sweep.toml").write_text(SWEEP)
    first = run_in_process(["sweep", "sweep.toml"], workdir)
    assert first.returncode == 0, first.stderr
    by_name = {r.info.run_name: r for r in leaf_runs(mlflow_client, "again")}
    assert len(by_name) == 4
    # what Ctrl-C after two of four variants, and a crash, leave behind
    mlflow_client.set_terminated(by_name["softmax-seed=1"].info.run_id, status="KILLED")
    mlflow_client.set_terminated(by_name["sigmoid-seed=0"].info.run_id, status="FAILED")

    # started again, two jobs: the two FINISHED variants are reused, the other two trained again
    again = run_in_process(["sweep", "sweep.toml", "--jobs", "2"], workdir)
    assert again.returncode == 0, again.stderr
    notes = [line for line in again.stderr.splitlines() if line.startswith("ganlab: note:")]
    assert notes == ["ganlab: note: 2 of 4 variants already finished in experiment 'again'; running the other 2 "
                     "(--rerun trains them all again)"], again.stderr
    assert "4 variant(s), all finished (2 reused from earlier runs)" in again.stdout
    runs = leaf_runs(mlflow_client, "again")
    finished = sorted(r.info.run_name for r in runs if r.info.status == "FINISHED")
    assert finished == ["sigmoid-seed=0", "sigmoid-seed=1", "softmax-seed=0", "softmax-seed=1"], "one run each"
    assert len(runs) == 6, "the KILLED and FAILED runs stay, and nothing else was trained"

    # the new sweep's comparison holds every variant once: n = 2 seeds per head
    data, _ = compare_json(workdir, "--sweep", "last")
    assert n_by_head(data) == {"sigmoid": 2, "softmax": 2} and data["duplicates"] == 0

    # a third time, every variant (two of them trained by parallel jobs) is already finished
    third = run_in_process(["sweep", "sweep.toml"], workdir)
    assert third.returncode == 0, third.stderr
    assert ("ganlab: note: 4 of 4 variants already finished in experiment 'again'; running none "
            "(--rerun trains them all again)") in third.stderr
    assert len(leaf_runs(mlflow_client, "again")) == 6
    data, _ = compare_json(workdir, "--sweep", "last")
    assert n_by_head(data) == {"sigmoid": 2, "softmax": 2}

    # --rerun trains a finished variant again; compare still counts its seed once
    rerun = run_in_process(["sweep", "sweep.toml", "--rerun", "--grid", "head.name=sigmoid", "--grid", "seed=0"],
                           workdir)
    assert rerun.returncode == 0, rerun.stderr
    assert "already finished" not in rerun.stderr
    assert len(leaf_runs(mlflow_client, "again")) == 7
    data, err = compare_json(workdir, "--experiment", "again")
    assert n_by_head(data) == {"sigmoid": 2, "softmax": 2} and data["duplicates"] == 1
    assert "ganlab: note: 1 duplicate run left out" in err


# ---- 11b: compare counts a repeated run once ------------------------------------------------------
def test_compare_counts_runs_with_identical_params_and_seed_once(workdir: Path, mlflow_client: Any) -> None:
    for seed in ("0", "0", "1"):  # seed 0 trained twice with identical settings
        done = run_in_process(["run", *RING8, "--experiment", "dup", "--seed", seed], workdir)
        assert done.returncode == 0, done.stderr
    runs = sorted(leaf_runs(mlflow_client, "dup"), key=lambda r: r.info.start_time)
    data, err = compare_json(workdir, "--experiment", "dup")
    (group,) = data["groups"]
    assert group["runs"] == 2 and group["metrics"]["loss.d"]["n"] == 2 and data["duplicates"] == 1
    assert runs[0].info.run_id not in group["run_ids"], "the newest run of the duplicate pair is kept"
    notes = [line for line in err.splitlines() if line.startswith("ganlab: note:")]
    assert notes == ["ganlab: note: 1 duplicate run left out: same params and seed as another run, which trained "
                     "the same replica (the newest FINISHED run of each set is kept)"], err

    # with --all-runs, a FINISHED run is kept over a newer one that did not finish
    mlflow_client.set_terminated(runs[1].info.run_id, status="FAILED")
    data, _ = compare_json(workdir, "--experiment", "dup", "--all-runs")
    (group,) = data["groups"]
    assert runs[0].info.run_id in group["run_ids"] and runs[1].info.run_id not in group["run_ids"]
    assert group["metrics"]["loss.d"]["n"] == 2


# ---- 12: a diverged run exports no NaN, and sample refuses NaN ------------------------------------
DIVERGE = ["--batch-size", "16", "--latent-dim", "8", "--eval-every", "0", "--sample-every", "0",
           "--set", "metrics=none", "--set", "dataset.size=8", "--set", "arch.hidden_scale=0.05", "--device", "cpu",
           "--steps", "12", "--plugin", NAN_PLUGIN, "--loss", "nan-at-step", "--experiment", "nan"]


def artifacts_of(run: Any) -> Path:
    from ganlab.record.store import local_artifact_dir

    return local_artifact_dir(run.info.artifact_uri)


def test_a_diverged_run_exports_its_last_finite_networks(workdir: Path, mlflow_client: Any) -> None:
    import torch

    from ganlab.train import checkpoint

    # a generator weight becomes NaN after step 6; the step-3 checkpoint is the last good one
    done = run_in_process(["run", *DIVERGE, "--log-every", "3", "--checkpoint-every", "3",
                           "--set", "loss.step=6", "--set", "loss.target=generator"], workdir)
    assert done.returncode == 3, done.stderr
    assert one_error(done.stderr).startswith("ganlab: error: training diverged:")
    assert ("ganlab: note: the networks at step 6 are not finite; generator.pt and discriminator.pt hold those "
            "of the last finite checkpoint, step 3") in done.stderr.splitlines()
    (run,) = leaf_runs(mlflow_client, "nan")
    assert run.info.status == "FAILED" and run.data.tags["ganlab.export.step"] == "3"
    kept = checkpoint.load(artifacts_of(run) / "checkpoints" / "step-00000003.pt")
    for name, key in (("generator.pt", "generator"), ("discriminator.pt", "discriminator")):
        exported = torch.load(artifacts_of(run) / name, weights_only=True)
        assert exported.keys() == kept[key].keys()
        assert all(torch.equal(exported[k], kept[key][k]) for k in exported), name

    sampled = run_in_process(["sample", run.info.run_id, "--n", "8", "--out", "s.npy", "--plugin", NAN_PLUGIN],
                             workdir)
    assert sampled.returncode == 0, sampled.stderr
    assert np.isfinite(np.load(workdir / "s.npy")).all()
    assert (f"ganlab: note: sampling run '{run.info.run_id}' from step 3: the networks at step 6 are not finite"
            in sampled.stderr), sampled.stderr


def test_a_run_that_diverged_before_any_checkpoint_exports_no_networks(workdir: Path, mlflow_client: Any) -> None:
    done = run_in_process(["run", *DIVERGE, "--log-every", "1", "--checkpoint-every", "0", "--set", "loss.step=3"],
                          workdir)
    assert done.returncode == 3, done.stderr
    (run,) = leaf_runs(mlflow_client, "nan")
    assert not (artifacts_of(run) / "generator.pt").exists() and run.data.tags["ganlab.export.step"] == "none"
    sampled = run_in_process(["sample", run.info.run_id, "--out", "s.npy", "--plugin", NAN_PLUGIN], workdir)
    assert sampled.returncode == 2
    assert one_error(sampled.stderr) == (
        f"ganlab: error: run '{run.info.run_id}' (FAILED) has no generator to sample: the networks at step 3 are "
        f"not finite and no checkpoint holds finite ones; no generator.pt or discriminator.pt exported")
    assert not (workdir / "s.npy").exists()


@pytest.fixture
def ring8_run(workdir: Path, mlflow_client: Any) -> Any:
    done = run_in_process(["run", *RING8, "--experiment", "s"], workdir)
    assert done.returncode == 0, done.stderr
    (run,) = leaf_runs(mlflow_client, "s")
    return run


def leftovers(workdir: Path) -> list[str]:
    return sorted(p.name for p in workdir.iterdir() if p.name.endswith(".npy"))


def test_sample_refuses_non_finite_weights_and_samples(ring8_run: Any, workdir: Path) -> None:
    import torch

    weights = artifacts_of(ring8_run) / "generator.pt"
    good = torch.load(weights, weights_only=True)
    # NaN weights, as a diverged run exported them before
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in good.items()},
               weights)
    done = run_in_process(["sample", ring8_run.info.run_id, "--n", "8", "--out", "s.npy"], workdir)
    assert done.returncode == 2
    assert one_error(done.stderr) == (f"ganlab: error: generator.pt of run '{ring8_run.info.run_id}' (FINISHED) "
                                      f"holds non-finite weights (NaN or Inf); no samples written")
    assert leftovers(workdir) == []
    # finite weights so large that the samples overflow
    torch.save({k: torch.full_like(v, 1e30) if v.is_floating_point() else v for k, v in good.items()}, weights)
    done = run_in_process(["sample", ring8_run.info.run_id, "--n", "8", "--out", "s.npy"], workdir)
    assert done.returncode == 2
    assert one_error(done.stderr) == (f"ganlab: error: the generator of run '{ring8_run.info.run_id}' produced "
                                      f"non-finite samples (NaN or Inf) among samples 1 to 8; no samples written")
    assert leftovers(workdir) == []


# ---- 14: a deleted run ------------------------------------------------------------------------
def test_sample_refuses_a_deleted_run(ring8_run: Any, workdir: Path, mlflow_client: Any) -> None:
    run_id = ring8_run.info.run_id
    mlflow_client.delete_run(run_id)
    done = run_in_process(["sample", run_id, "--n", "8", "--out", "s.npy"], workdir)
    assert done.returncode == 2
    assert one_error(done.stderr) == f"ganlab: error: run '{run_id}' is deleted; restore it first (mlflow runs restore)"
    assert leftovers(workdir) == []
    mlflow_client.restore_run(run_id)
    assert run_in_process(["sample", run_id, "--n", "8", "--out", "s.npy"], workdir).returncode == 0
