"""``ganlab sweep``: a huge grid counted and refused before expansion, GPUs spread over parallel jobs, --verbose."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganlab.errors import GanlabError
from ganlab.studies.gpus import device_list, job_environment, visible_gpus
from ganlab.config.sweep import check_size, load_sweep
from test_sweep import BASE, write



def huge_grid(path: Path, per_axis: int = 1000) -> Path:
    values = ", ".join(str(i) for i in range(per_axis))
    return write(path, BASE + f"[grid]\nseed = [{values}]\n\"head.name\" = [\"sigmoid\", \"entmax\"]\n"
                              f"lr_d = [{values}]\nlr_g = [{values}]\n")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the variables under test, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("GANLAB_GPUS", "CUDA_VISIBLE_DEVICES", "GANLAB_VERBOSE")}
    return {**env, **extra}


def cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m ganlab ARGS`` in a real subprocess with exactly ``env`` (run_cli can only add variables)."""
    return subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ---- a grid too large is refused from its axis lengths ------------------------------------
def test_a_billion_variant_grid_is_refused_at_once(workdir):
    sweep = huge_grid(workdir / "huge.toml")
    # 1000 x 2 x 1000 x 1000: expanding it (even lazily, validating each) would take days
    result = cli(["sweep", str(sweep), "--dry-run"], cwd=workdir, env=clean_env(), timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: "), result.stderr[-2000:]
    assert "2000000000 variants" in lines[0] and "limit of 10000" in lines[0] and "--force" in lines[0]
    assert "1000 seed x 2 head.name x 1000 lr_d x 1000 lr_g" in lines[0]
    assert result.stdout == ""


def test_narrowing_the_grid_brings_it_under_the_limit(workdir, cli_inproc, capsys):
    sweep = huge_grid(workdir / "huge.toml")
    code = cli_inproc(["sweep", str(sweep), "--dry-run", "--grid", "seed=0,1", "--grid", "lr_d=1e-4",
                       "--grid", "lr_g=1e-4,2e-4"])
    assert code == 0
    assert "8 variant(s)" in capsys.readouterr().out


def test_check_size_counts_without_expanding_and_force_lets_it_through(workdir):
    spec = load_sweep(huge_grid(workdir / "huge.toml"))
    assert check_size(spec, 10**10) == 2 * 10**9  # counted from the axes: instant
    with pytest.raises(GanlabError, match="above the limit of 100"):
        check_size(spec, 100)
    assert check_size(spec, 100, force=True) == 2 * 10**9


def test_force_expands_a_grid_above_the_limit(workdir, cli_inproc, capsys, monkeypatch):
    """--force through the command: a grid just above a lowered limit is listed instead of refused."""
    from ganlab.cli import sweep as cmd_sweep

    monkeypatch.setattr(cmd_sweep, "MAX_VARIANTS", 3)  # the real limit would take 10001 variants to cross
    sweep = write(workdir / "four.toml", BASE + '[grid]\nseed = [0, 1]\n"head.name" = ["sigmoid", "entmax"]\n')
    assert cli_inproc(["sweep", str(sweep), "--dry-run"]) == 2
    assert "4 variants (2 seed x 2 head.name), above the limit of 3" in capsys.readouterr().err
    assert cli_inproc(["sweep", str(sweep), "--dry-run", "--force"]) == 0
    assert "4 variant(s)" in capsys.readouterr().out


# ---- GPUs handed out to parallel jobs --------------------------------------------------
@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_job_slots_get_the_gpus_in_turn(device):
    base = {"PATH": "/bin", "OMP_NUM_THREADS": "1"}
    given = [job_environment(base, device, slot, ["0", "1", "2"]) for slot in range(5)]
    assert [gpu for _, gpu in given] == ["0", "1", "2", "0", "1"]
    assert [env["CUDA_VISIBLE_DEVICES"] for env, _ in given] == ["0", "1", "2", "0", "1"]
    assert all(env["PATH"] == "/bin" and env["OMP_NUM_THREADS"] == "1" for env, _ in given)
    assert "CUDA_VISIBLE_DEVICES" not in base  # the parent's environment is not changed


def test_an_existing_cuda_visible_devices_list_is_respected():
    parent = {"CUDA_VISIBLE_DEVICES": "4,6"}
    gpus = visible_gpus(parent, count=lambda: 8)  # the list wins over the machine's count
    assert gpus == ["4", "6"]
    assert [job_environment(parent, "auto", slot, gpus)[0]["CUDA_VISIBLE_DEVICES"] for slot in range(3)] == \
        ["4", "6", "4"]
    uuids = visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-aa11, GPU-bb22"}, count=lambda: 0)
    assert job_environment({}, "cuda", 1, uuids)[0]["CUDA_VISIBLE_DEVICES"] == "GPU-bb22"


@pytest.mark.parametrize("device", ["cpu", "cuda:1", "cuda:0", "mps"])
def test_explicit_devices_are_left_alone(device):
    parent = {"CUDA_VISIBLE_DEVICES": "2,3", "X": "y"}
    env, gpu = job_environment(parent, device, 1, ["2", "3"])
    assert gpu is None and env == parent


def test_no_gpus_leaves_the_environment_unchanged():
    parent = {"X": "y"}
    assert job_environment(parent, "auto", 0, []) == (parent, None)
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=lambda: 4) == []  # hidden on purpose
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}, count=lambda: 4) == []
    assert visible_gpus({}, count=lambda: 0) == []


def test_where_the_gpus_come_from():
    assert visible_gpus({}, count=lambda: 3) == ["0", "1", "2"]  # nvidia-smi's count when nothing is set
    assert visible_gpus({"GANLAB_GPUS": "1,3", "CUDA_VISIBLE_DEVICES": "0"}, count=lambda: 4) == ["1", "3"]
    assert visible_gpus({"GANLAB_GPUS": "none"}, count=lambda: 4) == []
    assert device_list(" 0, 2 ,5,") == ["0", "2", "5"]
    assert device_list("0,-1,2") == ["0"]  # like CUDA: the list ends at an invalid entry
    if shutil.which("nvidia-smi") is None:  # the real count on a machine without the tool
        assert visible_gpus({}) == []


# A plugin that writes what each run's process saw: the GPU variables, --verbose, and where it trained.
SPY_PLUGIN = '''
import json, os
from pathlib import Path
from ganlab import hookimpl


@hookimpl
def on_run_start(ctx):
    import torch

    seen = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "GANLAB_VERBOSE")}
    seen["cuda_available"] = torch.cuda.is_available()
    Path(os.environ["GANLAB_TEST_SPY"], ctx.run_id + ".json").write_text(json.dumps(seen))
'''


@pytest.mark.slow
def test_parallel_jobs_receive_a_gpu_and_verbose(workdir, mlflow_client):
    """Two `auto` jobs at once get GPUs 0 and 1 (explicit devices are covered by the unit tests above)."""
    sweep = write(workdir / "gpus.toml", 'experiment = "gpus"\n' + BASE + '[grid]\nseed = [0, 1]\n')
    spy_dir = workdir / "spy"
    spy_dir.mkdir()
    spy = write(workdir / "spy.py", SPY_PLUGIN)
    # two GPUs forced through the override; on a machine without CUDA, device auto still trains on the CPU
    env = clean_env(GANLAB_GPUS="0,1", GANLAB_TEST_SPY=str(spy_dir))
    result = cli(["sweep", str(sweep), "--jobs", "2", "--plugin", str(spy), "--verbose"], cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    exp = mlflow_client.get_experiment_by_name("gpus")
    children = [r for r in mlflow_client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in children)
    assert all(r.data.params["device"] == "auto" for r in children)
    seen = {r.info.run_id: json.loads((spy_dir / f"{r.info.run_id}.json").read_text()) for r in children}
    # each job slot had its own GPU, and the run says which
    assert sorted(s["CUDA_VISIBLE_DEVICES"] for s in seen.values()) == ["0", "1"]
    for run in children:
        assert run.data.tags["ganlab.sweep.gpu"] == seen[run.info.run_id]["CUDA_VISIBLE_DEVICES"]
        assert run.data.tags["ganlab.sweep.slot"] == run.data.tags["ganlab.sweep.gpu"]  # GPUs 0,1 <-> slots 0,1
    # --verbose reaches every job's process
    assert all(s["GANLAB_VERBOSE"] == "1" for s in seen.values())
    assert result.stderr.count("(CUDA_VISIBLE_DEVICES=") == 2  # said once per job
