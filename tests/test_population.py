"""Population runs (``--seeds``): N seeds trained as one vectorised model.

The headline tests train a population and, separately, each of its seeds as
a single run, and compare the weights after 50 steps: replica i must follow
the single run with seed i. The rest go through the CLI (in this process, but for SIGINT): the record (a
parent run, one ordinary child run per seed), one replica diverging, SIGINT
and ``ganlab resume`` of the parent, the sequential fallback, and refusals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import process_state_restored, run_in_process
from test_resume import wait_for

PLUGINS = Path(__file__).parent / "plugins_for_tests"
HEADS = ("sigmoid", "softmax", "sparsemax", "entmax")
SMALL = ["--batch-size", "16", "--latent-dim", "8", "--log-every", "2", "--eval-every", "0",
         "--sample-every", "0", "--set", "metrics=none", "--device", "cpu"]


def _config(**settings: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins

    plugins = load_plugins([str(PLUGINS / "float64_dcgan.py")])
    base = {"steps": 50, "batch_size": 16, "latent_dim": 8, "tracking": False, "metrics": "none",
            "eval_every": 0, "sample_every": 0, "device": "cpu"}
    return ConfigBuilder().add_mapping({**base, **settings}, "test").build(plugins.registry), plugins


def _weights(ctx: Any) -> Any:
    import torch

    return torch.cat([t.detach().flatten().double() for net in (ctx.generator, ctx.discriminator)
                      for t in net.state_dict().values() if t.is_floating_point()])


def _population_and_singles(seeds: str, **settings: Any) -> tuple[list[Any], list[Any]]:
    from ganlab.train.population.launch import run_population
    from ganlab.train.runner import run

    config, plugins = _config(seeds=seeds, **settings)
    population = run_population(config, plugins, progress=False)
    singles = []
    for ctx in population:
        single_config, single_plugins = _config(seed=ctx.config.seed, **settings)
        singles.append(run(single_config, single_plugins, progress=False))
    return population, singles


@pytest.mark.parametrize("head", HEADS)
def test_each_replica_follows_its_single_run_mlp_ring8(head: str) -> None:
    """The article's mlp (with its Dropout in D: masks replayed per replica) on ring8, whose data
    differ by seed: after 50 steps every weight matches the single run to float32 rounding."""
    population, singles = _population_and_singles(
        "0-2", head={"name": head}, dataset={"name": "ring8"}, arch={"name": "mlp", "hidden_scale": 0.125})
    for replica, single in zip(population, singles):
        assert replica.step == single.step == 50
        difference = float((_weights(replica) - _weights(single)).abs().max())
        assert difference < 1e-5, f"seed {replica.config.seed}: {difference}"
    assert float((_weights(population[0]) - _weights(population[1])).abs().max()) > 1e-2, "seeds differ"


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_each_replica_follows_its_single_run_dcgan_digits(head: str) -> None:
    """dcgan on digits: convolutions and BatchNorm with per-replica statistics, on data shared by the
    replicas. In float32 the vectorised convolution (one grouped convolution) rounds differently
    from N separate ones, and a GAN's trajectory amplifies rounding within tens of steps; so the
    50-step check runs dcgan's own networks in float64 (tests/plugins_for_tests/float64_dcgan.py),
    where the replica must match its single run to float32 precision (relative 1e-6)."""
    population, singles = _population_and_singles(
        "0-1", head={"name": head}, dataset={"name": "digits"}, arch={"name": "dcgan64"})
    for replica, single in zip(population, singles):
        reference = _weights(single)
        gap = float((_weights(replica) - reference).norm() / reference.norm())
        assert gap < 1e-6, f"seed {replica.config.seed}: relative difference {gap}"
    assert float((_weights(population[0]) - _weights(population[1])).norm()) > 1e-2, "seeds differ"


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_float32_dcgan_replicas_start_on_their_single_runs(head: str) -> None:
    """The float32 dcgan itself, over the first steps (before rounding has been amplified)."""
    population, singles = _population_and_singles(
        "0-1", head={"name": head}, dataset={"name": "digits"}, arch={"name": "dcgan", "ngf": 8, "ndf": 8}, steps=3)
    for replica, single in zip(population, singles):
        reference = _weights(single)
        assert float((_weights(replica) - reference).norm() / reference.norm()) < 1e-5


@pytest.mark.parametrize("settings", [
    {"loss": "minimax"}, {"loss": "relativistic", "head": {"name": "entmax"}}, {"loss": "hinge"},
    {"loss": "least-squares"}, {"loss": "wasserstein", "reg": "gp"}, {"d_steps": 2, "ema": 0.9}, {"pack": 2},
], ids=lambda s: "-".join(str(v if not isinstance(v, dict) else v["name"]) for v in s.values()))
def test_every_objective_trains_the_single_runs_step_per_replica(settings: dict[str, Any]) -> None:
    """A population is the single run's step on stacked networks: every built-in objective (written on the
    step object, reduced with step.mean), a relativistic G that scores the real batch again, several D
    updates and the generator's average follow the single runs (over a few steps: a relativistic game in
    float32 amplifies the vectorised rounding past 1e-5 within about ten, as it did before the step was shared)."""
    population, singles = _population_and_singles(
        "0-1", steps=4, dataset={"name": "ring8"}, arch={"name": "mlp", "hidden_scale": 0.125}, **settings)
    for replica, single in zip(population, singles):
        difference = float((_weights(replica) - _weights(single)).abs().max())
        assert difference < 1e-5, f"seed {replica.config.seed}: {difference}"


def test_an_acgan_population_follows_its_single_runs() -> None:
    """AC-GAN's class losses on every replica's rows, with each replica's requested classes."""
    population, singles = _population_and_singles(
        "0-1", steps=10, loss="acgan", head={"name": "softmax"}, dataset={"name": "digits"},
        arch={"name": "mlp", "conditional": True, "projection": False, "hidden_scale": 0.05})
    for replica, single in zip(population, singles):
        difference = float((_weights(replica) - _weights(single)).abs().max())
        assert difference < 1e-5, f"seed {replica.config.seed}: {difference}"


def test_channels_last_replicas_stack_contiguous_and_compute_as_before() -> None:
    """A CUDA build keeps convolutions channels_last; stacked as they are, every slice of the stacked
    weights is channels_last, and inside vmap CUDA's BatchNorm asks a layout question functorch
    does not implement (NYI, seen on an H100). The stack is contiguous, and the vectorised forward
    still equals each replica's own."""
    import torch
    from ganlab.train.population.stacked import ReplicaRandomness, StackedNetwork
    from ganlab_plugins.architectures.dcgan import DCGANArchitecture

    replicas = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        _, discriminator = DCGANArchitecture(ngf=8, ndf=8).build((1, 32, 32), 8, 1)
        replicas.append(discriminator.to(memory_format=torch.channels_last).eval())
    x = torch.randn(2, 5, 1, 32, 32)
    alone = [replica(x[i]) for i, replica in enumerate(replicas)]
    stacked = StackedNetwork(replicas, ReplicaRandomness([torch.Generator().manual_seed(s) for s in (0, 1)]))
    stacked.train(False)
    assert all(p.is_contiguous() for p in stacked.params.values())
    together = stacked(x.flatten(0, 1)).unflatten(0, (2, -1))  # rows: replica 0's, then replica 1's
    for i in (0, 1):
        torch.testing.assert_close(together[i], alone[i], rtol=1e-5, atol=1e-6)


def test_replica_views_and_checkpoints_hold_one_replica(tmp_path: Path) -> None:
    """A replica's module reads the stacked weights live; its state_dict is a copy of its own slice."""
    import torch

    from ganlab.train.build import build
    from ganlab.train.population.setup import replica_config
    from ganlab.train.population.trainer import PopulationTrainer
    from ganlab.train.population.vectorised import build_replicas

    config, plugins = _config(seeds="0-2", dataset={"name": "ring8"}, arch={"name": "mlp", "hidden_scale": 0.125})
    replicas = build_replicas(config, plugins, [0, 1, 2], build(plugins, replica_config(config, 0)))
    population = PopulationTrainer(replicas, plugins)
    before = [_weights(r.ctx) for r in replicas]
    population.train_step()
    after = [_weights(r.ctx) for r in replicas]
    assert all(not torch.equal(a, b) for a, b in zip(before, after)), "the views follow the optimiser"
    for i, replica in enumerate(replicas):
        state = replica.state_dict()
        weight = state["generator"]["main.0.weight"]
        assert torch.equal(weight, population.G.params["main.0.weight"][i])
        assert weight.untyped_storage().nbytes() == weight.numel() * weight.element_size(), "a copy, not a view"
        moments = state["opt_g"]["state"][0]["exp_avg"]
        assert moments.shape == weight.shape
        torch.save(state, tmp_path / f"{i}.pt")
    # a replica's checkpoint loads back into its slice only
    reloaded = torch.load(tmp_path / "1.pt", weights_only=False)
    population.train_step()
    replicas[1].load_state_dict(reloaded)
    assert torch.equal(population.G.params["main.0.weight"][1].detach(), reloaded["generator"]["main.0.weight"])
    assert not torch.equal(population.G.params["main.0.weight"][0].detach(),
                           torch.load(tmp_path / "0.pt", weights_only=False)["generator"]["main.0.weight"])


def test_a_population_that_cannot_fit_says_how_many_seeds_would(monkeypatch: Any) -> None:
    """N replicas need N times one replica's step (ganlab.train.memory): refused before the other seeds build."""
    from ganlab.errors import GanlabError
    from ganlab.train import memory
    from ganlab.train.build import build
    from ganlab.train.population.setup import replica_config
    from ganlab.train.population.vectorised import build_replicas

    config, plugins = _config(seeds="0-7", dataset={"name": "ring8"}, arch={"name": "mlp", "hidden_scale": 0.125})
    first = build(plugins, replica_config(config, 0))
    one = memory.step_memory(first.config, first.device, first.generator, first.discriminator, first.data)(16)
    monkeypatch.setattr(memory, "available", lambda device: 3 * one + one // 2)
    with pytest.raises(GanlabError, match=r"^8 replicas of batch size 16 do not fit in memory: .* needs at least "
                                          r".* but only .* is available on cpu; use at most about 3 seeds at a time$"):
        build_replicas(config, plugins, list(range(8)), first)


def _runs(client: Any) -> list[Any]:
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def _parent_and_children(client: Any) -> tuple[Any, dict[int, Any]]:
    runs = _runs(client)
    (parent,) = [r for r in runs if "ganlab.population" in r.data.tags]
    children = {int(r.data.params["seed"]): r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    return parent, children


@pytest.mark.slow
def test_population_records_one_ordinary_child_run_per_seed(workdir: Path, mlflow_client: Any) -> None:
    args = [*SMALL, "--steps", "6", "--dataset", "ring8", "--set", "arch.hidden_scale=0.125",
            "--sample-every", "3", "--checkpoint-every", "3", "--set", "metrics=modes", "--set", "eval_samples=200",
            "--eval-every", "3"]
    done = run_in_process(["run", "--seeds", "0-2", *args], workdir)
    assert done.returncode == 0, done.stderr
    assert "3 seeds trained as one vectorised model" in done.stderr
    single = run_in_process(["run", "--seed", "1", "--experiment", "single", *args], workdir)
    assert single.returncode == 0, single.stderr

    parent, children = _parent_and_children(mlflow_client)
    assert sorted(children) == [0, 1, 2]
    assert parent.info.status == "FINISHED" and parent.data.params["seeds"] == "0-2"
    (reference,) = [r for r in _runs(mlflow_client) if r.data.params.get("experiment") == "single"]
    child = children[1]
    assert child.info.status == "FINISHED"
    # a single run's params, but for the parent it hangs under
    differing = {k for k in reference.data.params if reference.data.params[k] != child.data.params.get(k)}
    assert set(child.data.params) == set(reference.data.params)
    assert differing == {"parent_run_id", "experiment"}
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert set(child.data.metrics) == set(reference.data.metrics) and "modes.captured" in child.data.metrics
    for run in children.values():
        names = {a.path for a in mlflow_client.list_artifacts(run.info.run_id)}
        assert {"generator.pt", "discriminator.pt", "config.toml", "checkpoints", "images"} <= names
    # same trajectory, recorded: the child with seed 1 logged the single run's losses
    mine = [m.value for m in mlflow_client.get_metric_history(child.info.run_id, "loss.d")]
    theirs = [m.value for m in mlflow_client.get_metric_history(reference.info.run_id, "loss.d")]
    assert mine == pytest.approx(theirs, abs=1e-5)
    # the child's weights file holds that replica alone: the single run's file size
    child_dir = Path(child.info.artifact_uri.replace("file://", ""))
    single_dir = Path(reference.info.artifact_uri.replace("file://", ""))
    assert abs((child_dir / "generator.pt").stat().st_size - (single_dir / "generator.pt").stat().st_size) < 512
    # `ganlab sample` treats a child as an ordinary run
    sampled = run_in_process(["sample", child.info.run_id, "--n", "10", "--out", "s.npy"], workdir)
    assert sampled.returncode == 0, sampled.stderr
    assert (workdir / "s.npy").is_file()
    refused = run_in_process(["sample", parent.info.run_id, "--n", "10", "--out", "p.npy"], workdir)
    assert refused.returncode == 2 and "is the parent of a population (seeds 0-2)" in refused.stderr
    assert child.info.run_id in refused.stderr.strip().splitlines()[-1]


def test_one_diverging_replica_stops_alone(workdir: Path, mlflow_client: Any) -> None:
    done = run_in_process(["run", "--seeds", "0-2", *SMALL, "--steps", "8", "--dataset", "ring8",
                    "--set", "arch.hidden_scale=0.125", "--plugin", str(PLUGINS / "nan_at_step.py"),
                    "--loss", "nan-at-step", "--set", "loss.target=generator", "--set", "loss.step=3",
                    "--set", "loss.seed=1"], workdir)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "1 of 3 replicas diverged: seed 1" in done.stderr.splitlines()[-1]
    parent, children = _parent_and_children(mlflow_client)
    assert children[1].info.status == "FAILED"
    assert children[1].data.tags["ganlab.failed_step"] == "4"
    assert children[1].data.tags["ganlab.failure_reason"].startswith("non-finite")
    for seed in (0, 2):
        assert children[seed].info.status == "FINISHED"
        steps = [m.step for m in mlflow_client.get_metric_history(children[seed].info.run_id, "loss.d")]
        assert steps[-1] == 8
    assert parent.info.status == "FINISHED" and parent.data.tags["ganlab.population.diverged"] == "1"


def test_a_population_whose_every_replica_diverges_fails(workdir: Path, mlflow_client: Any) -> None:
    done = run_in_process(["run", "--seeds", "0-1", *SMALL, "--steps", "8", "--dataset", "ring8",
                    "--set", "arch.hidden_scale=0.125", "--plugin", str(PLUGINS / "nan_at_step.py"),
                    "--loss", "nan-at-step", "--set", "loss.target=generator", "--set", "loss.step=3"], workdir)
    assert done.returncode == 3 and "2 of 2 replicas diverged" in done.stderr.splitlines()[-1], done.stderr
    parent, children = _parent_and_children(mlflow_client)
    assert parent.info.status == "FAILED" and {c.info.status for c in children.values()} == {"FAILED"}


def _popen(args: list[str], cwd: Path, sleep: float) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANLAB_TEST_STEP_SLEEP": str(sleep)}
    return subprocess.Popen([sys.executable, "-m", "ganlab", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigint_kills_every_replica_and_resuming_the_parent_ends_where_an_uninterrupted_population_does(
        workdir: Path, mlflow_client: Any) -> None:
    import torch

    slow = str(PLUGINS / "slow_steps.py")
    args = ["--seeds", "0-1", *SMALL, "--steps", "24", "--dataset", "ring8", "--set", "arch.hidden_scale=0.125",
            "--checkpoint-every", "4", "--deterministic", "--plugin", slow,
            # the generator's average and the learning-rate schedule resume exactly too
            "--ema", "0.8", "--lr-schedule", "cosine"]
    interrupted = _popen(["run", *args, "--experiment", "interrupted"], workdir, sleep=0.05)
    reference = _popen(["run", *args, "--experiment", "reference"], workdir, sleep=0.0)
    wait_for("mlruns/artifacts/interrupted/*/artifacts/checkpoints/step-00000004.pt", workdir, interrupted)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=240)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "a checkpoint for each of 2 replicas" in err
    _, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err

    experiment = mlflow_client.get_experiment_by_name("interrupted").experiment_id
    runs = mlflow_client.search_runs([experiment])
    (parent,) = [r for r in runs if "ganlab.population" in r.data.tags]
    children = [r for r in runs if r is not parent]
    assert parent.info.status == "KILLED" and len(children) == 2
    assert {c.info.status for c in children} == {"KILLED"}
    stopped = {c.data.tags["ganlab.killed_at_step"] for c in children}
    assert len(stopped) == 1 and 4 <= int(stopped.pop()) < 24

    listed = run_in_process(["runs"], workdir, env={"COLUMNS": "400"})
    line = next(row for row in listed.stdout.splitlines() if parent.info.run_id in row)
    assert "population of seeds 0-1" in line and f"ganlab resume {parent.info.run_id}" in line, listed.stdout

    with process_state_restored():  # --deterministic
        resumed = run_in_process(["resume", parent.info.run_id, "--plugin", slow], workdir,
                                 env={"GANLAB_TEST_STEP_SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    assert mlflow_client.get_run(parent.info.run_id).info.status == "FINISHED"
    ref_runs = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("reference").experiment_id])
    ref_children = {r.data.params["seed"]: r for r in ref_runs if "mlflow.parentRunId" in r.data.tags}
    for child in children:
        child = mlflow_client.get_run(child.info.run_id)
        assert child.info.status == "FINISHED"
        ref = ref_children[child.data.params["seed"]]
        for name in ("generator.pt", "generator_trained.pt", "discriminator.pt"):
            mine = torch.load(Path(child.info.artifact_uri.replace("file://", "")) / name, weights_only=True)
            theirs = torch.load(Path(ref.info.artifact_uri.replace("file://", "")) / name, weights_only=True)
            for key in theirs:
                assert torch.equal(mine[key], theirs[key]), f"seed {child.data.params['seed']} {name}:{key}"
        steps = [m.step for m in mlflow_client.get_metric_history(child.info.run_id, "loss.d")]
        assert steps == sorted(set(steps)) and steps[-1] == 24, "every logged step once"


def test_unvectorisable_architecture_falls_back_to_sequential_runs(workdir: Path, mlflow_client: Any) -> None:
    done = run_in_process(["run", "--seeds", "3,5", *SMALL, "--steps", "4", "--dataset", "ring8",
                    "--plugin", str(PLUGINS / "unvectorised_mlp.py"), "--arch", "unvectorised-mlp",
                    "--set", "arch.hidden_scale=0.125"], workdir)
    assert done.returncode == 0, done.stderr
    notices = [line for line in done.stderr.splitlines() if "one after another" in line]
    assert len(notices) == 1 and "does not declare vectorisable = True" in notices[0]
    parent, children = _parent_and_children(mlflow_client)
    assert parent.data.tags["ganlab.population.mode"] == "sequential"
    assert parent.data.tags["ganlab.arch"] == "unvectorised-mlp"
    assert sorted(children) == [3, 5] and {c.info.status for c in children.values()} == {"FINISHED"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--seeds", "4-2"], "seeds: the range '4-2' runs backwards"),
    (["--seeds", "1,1"], "seed 1 is listed twice"),
    (["--seeds", "0-1", "--compile"], "a population (--seeds) is not compiled"),
    (["--seeds", "0-1", "--precision", "fp16"], "cannot use precision fp16"),
    (["--seeds", "0-1", "--nproc", "2"], "a population (--seeds) runs in one process; drop --nproc"),
])
def test_what_a_population_cannot_do_is_refused_in_one_line(workdir: Path, mlflow_client: Any, extra: list[str],
                                                             message: str) -> None:
    done = run_in_process(["run", *SMALL, "--steps", "2", "--dataset", "ring8", *extra], workdir)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: ") and message in lines[0], done.stderr
    assert _runs(mlflow_client) == [], "nothing recorded"


@pytest.mark.slow
def test_sweep_with_population_true_trains_each_variant_as_a_population(workdir: Path, mlflow_client: Any) -> None:
    (workdir / "heads.toml").write_text(
        'population = true\n[base]\nsteps = 4\nbatch_size = 16\nlatent_dim = 8\nlog_every = 2\neval_every = 0\n'
        'sample_every = 0\nmetrics = "none"\ndevice = "cpu"\n[base.dataset]\nname = "ring8"\n'
        '[base.arch]\nname = "mlp"\nhidden_scale = 0.125\n'
        '[grid]\n"head.name" = ["sigmoid", "entmax"]\nseed = [0, 1, 2]\n')
    done = run_in_process(["sweep", "heads.toml"], workdir)
    assert done.returncode == 0, done.stderr
    assert "2 variant(s)" in done.stdout, done.stdout
    runs = _runs(mlflow_client)
    populations = [r for r in runs if "ganlab.population" in r.data.tags]
    assert sorted(p.data.params["head.name"] for p in populations) == ["entmax", "sigmoid"]
    for population in populations:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == population.info.run_id]
        assert sorted(int(c.data.params["seed"]) for c in children) == [0, 1, 2]
        assert {c.info.status for c in children} == {"FINISHED"}
        assert {c.data.params["head.name"] for c in children} == {population.data.params["head.name"]}
    planned = run_in_process(["sweep", "heads.toml", "--grid", "seed=4,5", "--dry-run"], workdir)
    assert planned.returncode == 0, planned.stderr
    assert planned.stdout.count("seeds=4,5 (one population)") == 2, planned.stdout
    bad = workdir / "bad.toml"
    bad.write_text('population = true\n[base]\nsteps = 2\n[grid]\n"head.name" = ["sigmoid"]\n')
    refused = run_in_process(["sweep", "bad.toml"], workdir)
    assert refused.returncode == 2 and "population = true needs a seed axis" in refused.stderr


@pytest.mark.slow
def test_interrupting_a_population_in_a_sweep_stops_the_sweep(workdir: Path, mlflow_client: Any) -> None:
    """SIGINT while a sweep's population trains: the population checkpoints, and the sweep stops with it
    (parent KILLED, exit 130) instead of going on to the next variant."""
    (workdir / "stop.toml").write_text(
        'population = true\nexperiment = "stop"\n[base]\nsteps = 400\nbatch_size = 16\nlatent_dim = 8\n'
        'log_every = 2\neval_every = 0\nsample_every = 0\ncheckpoint_every = 4\nmetrics = "none"\n'
        'device = "cpu"\n[base.dataset]\nname = "ring8"\n[base.arch]\nname = "mlp"\nhidden_scale = 0.125\n'
        '[grid]\n"head.name" = ["sigmoid", "softmax"]\nseed = [0, 1]\n')
    sweep = _popen(["sweep", "stop.toml", "--plugin", str(PLUGINS / "slow_steps.py")], workdir, sleep=0.05)
    wait_for("mlruns/artifacts/stop/*/artifacts/checkpoints/step-00000004.pt", workdir, sweep)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 130 and "sweep interrupted" in err, err
    runs = _runs(mlflow_client)
    populations = [r for r in runs if "ganlab.population" in r.data.tags]
    assert [p.data.params["head.name"] for p in populations] == ["sigmoid"], "the second variant never started"
    (parent,) = [r for r in runs if r.data.tags.get("ganlab.sweep.role") == "parent"]
    assert parent.info.status == "KILLED" and populations[0].info.status == "KILLED"
