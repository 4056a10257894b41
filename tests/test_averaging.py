"""The generator's weight average (setting ``ema``) and learning-rate schedules (``lr_schedule``).

The average is checked against its recurrence computed independently in float64
from the trained generator's weights after every step; the schedules against their
closed forms, and in a run through the optimiser's rates; a population's replicas
against their single runs with both settings on.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from conftest import run_in_process

from ganlab import hookimpl

TINY = {"steps": 12, "batch_size": 16, "latent_dim": 4, "tracking": False, "metrics": "none", "eval_every": 0,
        "sample_every": 0, "device": "cpu", "dataset": {"name": "ring8"},
        "arch": {"name": "mlp", "hidden_scale": 0.0625}}


def _config(**settings: Any) -> Any:
    from ganlab.config import ConfigBuilder
    from ganlab.plugins import load_plugins

    plugins = load_plugins([])
    return ConfigBuilder().add_mapping({**TINY, **settings}, "test").build(plugins.registry), plugins


def _flat(module: Any) -> Any:
    import torch

    return torch.cat([p.detach().flatten().double() for p in module.parameters()])


class WeightsAfterEachStep:
    """Snapshots of the trained generator's weights after every step."""

    def __init__(self) -> None:
        self.snapshots: list[Any] = []

    @hookimpl
    def on_step_end(self, ctx: Any, step: int, losses: Any) -> None:
        self.snapshots.append(_flat(ctx.generator).clone())


@pytest.mark.parametrize("start", [0, 5])
def test_the_average_follows_its_recurrence_from_the_trained_weights(start: int) -> None:
    """a_0 = G's initial weights; a_t = w_t for t <= start, else d·a_{t-1} + (1 - d)·w_t (float64 reference)."""
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    decay = 0.8
    config, plugins = _config(ema=decay, ema_start=start)
    recorder = WeightsAfterEachStep()
    plugins.register_object(recorder, "test.recorder")
    trainer = Trainer(build(plugins, config), plugins)
    initial = _flat(trainer.b.generator).clone()
    trainer.fit()
    reference = initial
    for t, weights in enumerate(recorder.snapshots, start=1):
        reference = weights if t <= start else decay * reference + (1 - decay) * weights
    assert len(recorder.snapshots) == 12
    average = _flat(trainer.ctx.generator_average)
    assert float((average - reference).abs().max()) < 1e-6
    assert float((average - recorder.snapshots[-1]).abs().max()) > 1e-4, "the average is not the last weights"
    # what samples and metrics are drawn from: the average, not the trained G
    import torch

    samples = trainer.samples()
    with torch.no_grad():
        assert torch.equal(samples, trainer.ctx.generator_average(trainer.fixed_noise))
        assert not torch.allclose(samples, trainer.b.generator(trainer.fixed_noise))


def test_buffers_are_copied_not_averaged() -> None:
    import torch

    from ganlab.train.averaging import GeneratorAverage

    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    average = GeneratorAverage(net, decay=0.5, start=0)
    net(torch.randn(8, 2))  # moves the running statistics and the batch counter
    with torch.no_grad():
        net[0].weight.add_(1.0)
    before = average.module[0].weight.clone()
    average.update(1)
    assert torch.equal(average.module[1].running_mean, net[1].running_mean)
    assert int(average.module[1].num_batches_tracked) == 1
    assert torch.allclose(average.module[0].weight, 0.5 * before + 0.5 * net[0].weight)
    assert not any(p.requires_grad for p in average.module.parameters())


@pytest.mark.parametrize(("kind", "step", "expected"), [
    ("constant", 7, 1.0),
    ("linear", 0, 1.0), ("linear", 5, 0.5), ("linear", 9, 0.1), ("linear", 10, 0.0),
    ("cosine", 0, 1.0), ("cosine", 5, 0.5), ("cosine", 10, 0.0),
    ("cosine", 2.5, 0.5 * (1 + math.cos(math.pi / 4))),
])
def test_schedule_factors_are_their_closed_forms(kind: str, step: float, expected: float) -> None:
    from ganlab.train.schedule import factor

    assert factor(kind, step, 10) == pytest.approx(expected, abs=1e-15)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_a_run_sets_the_scheduled_rate_before_each_step(kind: str) -> None:
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer
    from ganlab.train.schedule import factor

    config, plugins = _config(lr_schedule=kind, lr_g=1e-3, lr_d=4e-3)
    seen: list[tuple[float, float]] = []

    class Rates:
        @hookimpl
        def on_step_end(self, ctx: Any, step: int, losses: Any) -> None:
            seen.append((trainer.b.opt_g.param_groups[0]["lr"], trainer.b.opt_d.param_groups[0]["lr"]))

    plugins.register_object(Rates(), "test.rates")
    trainer = Trainer(build(plugins, config), plugins)
    trainer.fit()
    expected = [(1e-3 * factor(kind, s, 12), 4e-3 * factor(kind, s, 12)) for s in range(12)]
    assert [g for g, _ in seen] == pytest.approx([g for g, _ in expected], rel=1e-12)
    assert [d for _, d in seen] == pytest.approx([d for _, d in expected], rel=1e-12)


def test_schedule_steps_trains_the_first_steps_of_the_longer_run() -> None:
    """steps=5 with schedule_steps=12 is the first 5 steps of the 12-step run, weight for weight; without
    schedule_steps the 5-step run's rate falls faster and its weights differ."""
    from ganlab.train.build import build
    from ganlab.train.engine import Trainer

    def snapshots(**settings: Any) -> list[Any]:
        config, plugins = _config(lr_schedule="linear", ema=0.7, lr_g=1e-2, lr_d=1e-2, **settings)
        recorder = WeightsAfterEachStep()
        plugins.register_object(recorder, "test.recorder")
        Trainer(build(plugins, config), plugins).fit()
        return recorder.snapshots

    whole, first, short = snapshots(steps=12), snapshots(steps=5, schedule_steps=12), snapshots(steps=5)
    assert len(first) == 5
    for mine, theirs in zip(first, whole[:5]):
        assert bool((mine == theirs).all())
    assert float((short[-1] - whole[4]).abs().max()) > 1e-6


def test_replicas_follow_their_single_runs_with_an_average_and_a_schedule() -> None:
    """A population keeps its replicas' averages as stacked tensors; each must be its single run's."""
    from ganlab.train.population.launch import run_population
    from ganlab.train.runner import run

    settings = {"ema": 0.7, "ema_start": 3, "lr_schedule": "cosine", "lr_g": 1e-3, "lr_d": 1e-3}
    config, plugins = _config(seeds="0-1", **settings)
    population = run_population(config, plugins, progress=False)
    for replica in population:
        single_config, single_plugins = _config(seed=replica.config.seed, **settings)
        single = run(single_config, single_plugins, progress=False)
        for mine, theirs in ((replica.generator_average, single.generator_average),
                             (replica.generator, single.generator)):
            assert float((_flat(mine) - _flat(theirs)).abs().max()) < 1e-5
    assert float((_flat(population[0].generator_average) - _flat(population[1].generator_average)).abs().max()) > 1e-3


def test_a_recorded_run_exports_the_average_as_generator_pt(workdir: Any, mlflow_client: Any) -> None:
    import torch

    result = run_in_process(["run", "--dataset", "ring8", "--steps", "6", "--batch-size", "16", "--latent-dim", "4",
                             "--set", "arch.hidden_scale=0.0625", "--sample-every", "0", "--eval-every", "0",
                             "--ema", "0.5", "--device", "cpu"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    (run,) = mlflow_client.search_runs([mlflow_client.get_experiment_by_name("ganlab").experiment_id])
    assert run.data.params["ema"] == "0.5"
    artifacts = workdir / "mlruns" / "artifacts" / "ganlab" / run.info.run_id / "artifacts"
    exported = torch.load(artifacts / "generator.pt", weights_only=True)
    trained = torch.load(artifacts / "generator_trained.pt", weights_only=True)
    checkpoint = torch.load(next((artifacts / "checkpoints").glob("step-*.pt")), weights_only=False)
    for key, value in checkpoint["generator_average"].items():
        assert torch.equal(exported[key], value)
    for key, value in checkpoint["generator"].items():
        assert torch.equal(trained[key], value)
    assert any(not torch.equal(exported[k], trained[k]) for k in exported)


@pytest.mark.parametrize(("setting", "says"), [
    ("ema=1.5", "ema: must be in [0, 1)"),
    ("ema=-0.1", "ema: must be in [0, 1)"),
    ("ema_start=-1", "ema_start"),
    ("lr_schedule=linaer", "did you mean 'linear'"),
    ("schedule_steps=8", "schedule_steps=8 has no effect with lr_schedule=constant"),
    ("schedule_steps=-1", "schedule_steps"),
])
def test_bad_values_are_refused_in_one_line(workdir: Any, setting: str, says: str) -> None:
    result = run_in_process(["run", "--steps", "1", "--set", setting], cwd=workdir)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_schedule_that_ends_before_the_run_is_refused_in_one_line(workdir: Any) -> None:
    result = run_in_process(["run", "--steps", "10", "--lr-schedule", "linear", "--set", "schedule_steps=4"],
                            cwd=workdir)
    assert result.returncode == 2 and "schedule_steps=4 is below steps=10" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_memory_estimate_counts_the_averaged_copy_of_g() -> None:
    from ganlab.train.build import build
    from ganlab.train.memory import step_memory

    plain_config, plugins = _config()
    averaged_config, _ = _config(ema=0.9)
    b = build(plugins, plain_config)
    g_bytes = sum(p.numel() * p.element_size() for p in b.generator.parameters())
    plain = step_memory(plain_config, b.device, b.generator, b.discriminator, b.data)
    averaged = step_memory(averaged_config, b.device, b.generator, b.discriminator, b.data)
    assert averaged(16) - plain(16) == g_bytes > 0
