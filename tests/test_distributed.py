"""Distributed training: two gloo processes on CPU through `ganlab run --nproc 2`, plus the pieces in-process.

The end-to-end tests start real torchrun jobs. A probe plugin (written to a
temporary file here, so nothing test-only lives in ganlab) runs on every rank:
at the end it writes a digest of that rank's networks, and on request it
raises on one rank at one step.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from ganlab.data import ResidentBatches, StreamingData, TensorData
from ganlab.dist import (
    AgreedStop,
    ShardedBatches,
    ShardedStreamingBatches,
    check_resume,
    rank_seed,
    without_nproc,
)
from ganlab.errors import ConfigError

#: a run that takes a second or two per process on a loaded 2-core machine
SMALL = ["--dataset", "ring8", "--set", "dataset.samples=512", "--set", "arch.hidden_scale=0.05",
         "--batch-size", "16", "--latent-dim", "8", "--log-every", "2", "--eval-every", "0",
         "--sample-every", "0", "--set", "eval_samples=200", "--device", "cpu"]
#: BatchNorm in both networks: its running statistics must stay equal across ranks too
DCGAN = ["--arch", "dcgan", "--set", "arch.ngf=8", "--set", "arch.ndf=8", "--batch-size", "16", "--latent-dim", "8",
         "--log-every", "2", "--eval-every", "0", "--sample-every", "3", "--set", "eval_samples=200", "--device", "cpu"]
PER_RANK_BATCH, WORLD = 16, 2

PROBE = '''
import hashlib, json, os
from pathlib import Path
from ganlab import hookimpl
from ganlab.dist import rank

def digest(state):
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

@hookimpl
def on_step_end(ctx, step):
    if os.environ.get("PROBE_FAIL_RANK") == str(rank()) and step == int(os.environ["PROBE_FAIL_STEP"]):
        raise RuntimeError(f"injected failure on rank {rank()} at step {step}")

@hookimpl
def on_run_end(ctx, status):
    record = {"generator": digest(ctx.generator.state_dict()), "discriminator": digest(ctx.discriminator.state_dict()),
              "status": status, "step": ctx.step}
    (Path(os.environ["PROBE_DIR"]) / f"rank{rank()}.json").write_text(json.dumps(record))
'''


def digest(state: dict) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.fixture
def probe(tmp_path: Path) -> tuple[Path, Path]:
    """(the probe plugin file, the directory where each rank writes rankN.json)"""
    plugin = tmp_path / "rank_probe.py"
    plugin.write_text(PROBE)
    out = tmp_path / "ranks"
    out.mkdir()
    return plugin, out


def read_ranks(directory: Path) -> list[dict]:
    return [json.loads((directory / f"rank{r}.json").read_text()) for r in range(WORLD)]


def all_runs(client) -> list:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


# ---- end to end: real torchrun jobs --------------------------------------------------

@pytest.mark.slow
def test_two_ranks_stay_identical_record_one_run_and_resume_exactly(workdir, mlflow_client, probe, cli_inproc, capsys):
    plugin, ranks = probe
    env = {"PROBE_DIR": str(ranks)}
    out = run_cli(["run", "--nproc", "2", *DCGAN, "--steps", "6", "--checkpoint-every", "4", "--plugin", str(plugin)],
                  cwd=workdir, env=env)
    assert out.returncode == 0, out.stderr

    (run,) = all_runs(mlflow_client)  # one job, one MLflow run: rank 1 logged nothing
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (params["world_size"], params["backend"]) == ("2", "gloo")
    assert params["batch_size"] == str(PER_RANK_BATCH) and params["global_batch_size"] == str(PER_RANK_BATCH * WORLD)
    # every logged step, every rank drew one per-rank batch: samples seen grow by the global batch per step
    assert history(mlflow_client, run_id, "data.samples_seen") == [
        (step, float(step * PER_RANK_BATCH * WORLD)) for step in (2, 4, 6)
    ]

    first = read_ranks(ranks)
    assert [r["status"] for r in first] == ["FINISHED", "FINISHED"]
    assert first[0]["generator"] == first[1]["generator"]
    assert first[0]["discriminator"] == first[1]["discriminator"]
    artifacts = Path(run.info.artifact_uri.replace("file://", ""))
    assert digest(torch.load(artifacts / "generator.pt", weights_only=True)) == first[0]["generator"]

    checkpoint = torch.load(artifacts / "checkpoints" / "step-00000004.pt", weights_only=True)
    assert checkpoint["world_size"] == WORLD and len(checkpoint["rank_rng"]) == WORLD
    assert not torch.equal(checkpoint["rank_rng"][0]["torch"], checkpoint["rank_rng"][1]["torch"])

    # resume from the step-4 checkpoint (below: it must land exactly where the uninterrupted job did)
    (artifacts / "checkpoints" / "step-00000006.pt").unlink()
    # refused before anything starts: another number of processes than the run had
    assert cli_inproc(["resume", run_id, "--steps", "6", "--nproc", "3"]) == 2
    assert "trained by 2 process(es)" in capsys.readouterr().err
    assert cli_inproc(["resume", run_id, "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert "written by 2 process(es)" in err and "--nproc 2" in err
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"

    # from the step-4 checkpoint, two more steps land on exactly the weights the uninterrupted job reached
    for stale in ranks.iterdir():
        stale.unlink()
    out = run_cli(["resume", run_id, "--steps", "6", "--nproc", "2", "--plugin", str(plugin)], cwd=workdir, env=env)
    assert out.returncode == 0, out.stderr
    resumed = read_ranks(ranks)
    assert [(r["generator"], r["discriminator"]) for r in resumed] == [
        (first[0]["generator"], first[0]["discriminator"])
    ] * WORLD
    assert [r.info.run_id for r in all_runs(mlflow_client)] == [run_id]
    assert mlflow_client.get_run(run_id).info.status == "FINISHED"
    assert history(mlflow_client, run_id, "data.samples_seen")[-1] == (6, float(6 * PER_RANK_BATCH * WORLD))


@pytest.mark.slow
def test_a_failure_on_one_rank_ends_every_rank_and_fails_the_run(workdir, mlflow_client, probe):
    plugin, ranks = probe
    env = {"PROBE_DIR": str(ranks), "PROBE_FAIL_RANK": "1", "PROBE_FAIL_STEP": "3", "GANLAB_STRICT_PLUGINS": "1"}
    # a rank 0 left waiting for the dead rank would hang until run_cli's timeout ends the test
    out = run_cli(["run", "--nproc", "2", *SMALL, "--steps", "400", "--plugin", str(plugin)], cwd=workdir, env=env)
    assert out.returncode != 0
    assert "injected failure on rank 1 at step 3" in out.stderr
    assert "rank 0 of 2: a collective with the other ranks failed" in out.stderr, out.stderr  # rank 0 says why, in one line

    (run,) = all_runs(mlflow_client)
    assert run.info.status == "FAILED"
    # rank 0 did not train on alone: both ranks ended where rank 1 failed, not at step 400
    assert [(r["status"], r["step"]) for r in read_ranks(ranks)] == [("FAILED", 3), ("FAILED", 3)]


# ---- in-process: the pieces --------------------------------------------------------------

def tensor_data(n: int = 40) -> TensorData:
    return TensorData(torch.arange(n, dtype=torch.float32).unsqueeze(1), torch.arange(n))


def test_rank_shards_partition_every_global_batch():
    data = tensor_data(40)
    ranks = [ShardedBatches(data, 4, seed=3, rank=r, world_size=3) for r in range(3)]
    seen = []
    for _ in range(3):  # 3 global batches of 12 fit in one epoch of 40
        shards = [b.next()[0].flatten().tolist() for b in ranks]
        assert all(len(s) == 4 for s in shards)
        glued = [x for shard in shards for x in shard]
        assert len(set(glued)) == 12  # no sample twice in one global batch
        seen += glued
    assert len(set(seen)) == 36  # nor within the epoch
    assert all(b.drawn == 12 for b in ranks)
    for b in ranks:  # the 4th global batch does not fit: all ranks start the same new epoch
        b.next()
    assert len({b._pos for b in ranks}) == 1


def test_one_rank_draws_what_one_process_draws():
    data = tensor_data(50)
    sharded, plain = ShardedBatches(data, 8, seed=5, rank=0, world_size=1), ResidentBatches(data, 8, seed=5)
    for _ in range(14):  # across two epoch boundaries
        assert torch.equal(sharded.next()[0], plain.next()[0])


def test_shard_state_resumes_the_same_order():
    data = tensor_data(40)
    first = ShardedBatches(data, 4, seed=1, rank=1, world_size=2)
    for _ in range(7):
        first.next()
    second = ShardedBatches(data, 4, seed=99, rank=1, world_size=2)
    second.load_state_dict(first.state_dict())
    assert second.drawn == 28
    for _ in range(6):
        assert torch.equal(first.next()[0], second.next()[0])


def test_a_global_batch_larger_than_the_dataset_is_refused():
    with pytest.raises(ConfigError, match="batch_size 16 × 4 processes = 64.*30 samples"):
        ShardedBatches(tensor_data(30), 16, seed=0, rank=0, world_size=4)


def test_streamed_data_is_sharded_without_overlap():
    dataset = torch.utils.data.TensorDataset(torch.arange(24, dtype=torch.float32).unsqueeze(1), torch.zeros(24))
    data = StreamingData(dataset, shape=(1,), num_workers=0)
    ranks = [ShardedStreamingBatches(data, 3, seed=0, rank=r, world_size=2, device="cpu") for r in range(2)]
    epoch = [[x for _ in range(4) for x in b.next()[0].flatten().tolist()] for b in ranks]
    assert len(set(epoch[0]) | set(epoch[1])) == 24
    ranks[0].next()  # the next epoch reshuffles
    assert ranks[0].epoch == 1 and ranks[0].drawn == 15


def test_rank_seeds_keep_rank_zero_and_separate_the_others():
    assert rank_seed(7, 0) == 7
    seeds = {rank_seed(7, r) for r in range(1, 9)}
    assert len(seeds) == 8 and 7 not in seeds
    assert rank_seed(0, 1) != rank_seed(1, 0)  # not seed + rank


def test_resume_with_another_world_size_is_refused():
    state = {"step": 4, "world_size": 2}
    refused = r"written by 2 process\(es\) and this job has 1.*ganlab resume abc --nproc 2"
    with pytest.raises(ConfigError, match=refused):
        check_resume(state, None, "abc")
    check_resume({"step": 4}, None, "abc")  # a one-process checkpoint in one process


def test_nproc_is_removed_from_the_relaunched_command_line():
    assert without_nproc(["run", "--nproc", "2", "--steps", "3", "--nproc=4", "-s", "seed=1"]) == [
        "run", "--steps", "3", "-s", "seed=1"]


@pytest.mark.parametrize("args, message", [
    (["--set", "sync_batchnorm=true"], "sync_batchnorm needs CUDA"),
    (["--set", "device=cuda:0"], "would put every process on one GPU"),
])
def test_bad_distributed_requests_are_refused_before_launching(workdir, mlflow_client, cli_inproc, capsys, args,
                                                                message):
    assert cli_inproc(["run", "--nproc", "2", "--dataset", "ring8", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ganlab: error: ") and message in err[0]
    assert all_runs(mlflow_client) == []


def test_nproc_must_be_positive(workdir, cli_inproc, capsys):
    assert cli_inproc(["run", "--nproc", "0"]) == 2
    assert capsys.readouterr().err.strip() == "ganlab: error: --nproc must be at least 1, not 0"


def test_a_signal_waits_for_every_rank_to_agree(capsys):
    with AgreedStop() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs between bytecodes
        assert stop.requested == signal.SIGTERM
        assert stop.signum is None  # the engine stops only once RankSync has agreed with the other ranks
