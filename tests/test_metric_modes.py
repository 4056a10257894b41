"""The ``modes`` metric against hand-computed cases (docs/heads.md, "Evaluation protocols").

Each case calls the metric's real ``evaluate`` with an EvalContext whose
``generate`` returns chosen points, so the numbers below are exact.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganlab.config import RunConfig
from ganlab.context import EvalContext, RunContext
from ganlab_plugins.datasets.mixtures import mixture_modes, sample_mixture
from ganlab_plugins.metrics.modes import ModesMetric, mode_statistics

from conftest import TINY

def store(workdir: Path) -> str:
    """An absolute store URI: MLflow caches stores by URI within a process, so the default
    relative one would keep pointing at the first in-process test's directory."""
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"



def eval_context(dataset: str, points: torch.Tensor, asked: list[int] | None = None) -> EvalContext:
    """An EvalContext whose generator emits ``points`` (cycled to the requested count)."""

    def generate(n: int) -> torch.Tensor:
        if asked is not None:
            asked.append(n)
        reps = math.ceil(n / len(points))
        return points.repeat(reps, 1)[:n]

    return EvalContext(
        step=0, device=torch.device("cpu"), dataset_name=dataset, data=None, head=None, generator=None,
        discriminator=None, latent_dim=2, seed=0, cache_dir=Path("unused"), generate=generate,
        discriminate=lambda x: x, real_batch=lambda n: points[:n],
    )


def run_context(dataset: str) -> RunContext:
    config = RunConfig(settings={}, components={"dataset": {"name": dataset}})
    return RunContext(config=config, device="cpu", generator=None, discriminator=None, head=None, objective=None,
                      data=None, data_shape=(2,), num_classes=0)


@pytest.mark.parametrize("dataset, k", [("ring8", 8), ("grid25", 25)])
def test_every_mean_exactly_captures_every_mode_with_zero_kl(dataset: str, k: int) -> None:
    means, _ = mixture_modes(dataset)
    asked: list[int] = []
    ctx = eval_context(dataset, means, asked)
    out = ModesMetric().evaluate(ctx)
    assert asked == [2500]  # the protocol's sample count
    assert out["modes.captured"] == k
    assert out["modes.hq_percent"] == 100.0
    # 2500 samples cycled over K means: counts differ by at most one, KL is ~0 (exactly 0 when K divides 2500)
    assert out["modes.kl_uniform"] == pytest.approx(0.0, abs=2e-4)
    assert ctx.params["modes.samples"] == 2500 and ctx.params["modes.num_modes"] == k


def test_exactly_uniform_counts_give_kl_zero() -> None:
    means, sigma = mixture_modes("ring8")
    out = mode_statistics(means.repeat(5, 1), means, sigma)
    assert out["modes.kl_uniform"] == 0.0
    assert out["modes.captured"] == 8


@pytest.mark.parametrize("dataset, k, mode", [("ring8", 8, 3), ("grid25", 25, 12)])
def test_one_mode_captures_one_with_kl_log_k(dataset: str, k: int, mode: int) -> None:
    means, sigma = mixture_modes(dataset)
    # jitter inside 3 sigma: still high quality, still nearest to the same mode
    jitter = torch.tensor([[0.0, 0.0], [2.9 * sigma, 0.0], [0.0, -2.9 * sigma], [2 * sigma, 2 * sigma]])
    out = ModesMetric().evaluate(eval_context(dataset, means[mode] + jitter))
    assert out["modes.captured"] == 1
    assert out["modes.hq_percent"] == 100.0
    assert out["modes.kl_uniform"] == pytest.approx(math.log(k), abs=1e-12)


@pytest.mark.parametrize("dataset, k", [("ring8", 8), ("grid25", 25)])
def test_points_far_from_every_mode_are_not_high_quality(dataset: str, k: int) -> None:
    far = torch.tensor([[10.0, 10.0], [-9.0, 0.5], [0.0, 0.0] if dataset == "ring8" else [1.0, 1.0]])
    out = ModesMetric().evaluate(eval_context(dataset, far))
    assert out["modes.captured"] == 0
    assert out["modes.hq_percent"] == 0.0
    # documented convention: no HQ sample scores like total collapse, log K
    assert out["modes.kl_uniform"] == pytest.approx(math.log(k))


def test_hand_computed_mixed_case_and_the_3_sigma_boundary() -> None:
    means, sigma = mixture_modes("ring8")  # mode 0 at (1, 0), mode 2 at (0, 1)
    points = torch.stack([
        means[0] + torch.tensor([2.9 * sigma, 0.0]),  # HQ, mode 0
        means[0] + torch.tensor([0.0, -2.0 * sigma]),  # HQ, mode 0
        means[0],  # HQ, mode 0
        means[2] + torch.tensor([-1.0 * sigma, 1.0 * sigma]),  # HQ, mode 2
        means[0] + torch.tensor([3.1 * sigma, 0.0]),  # just outside 3 sigma: not HQ
    ])
    out = mode_statistics(points, means, sigma)
    assert out["modes.captured"] == 2
    assert out["modes.hq_percent"] == pytest.approx(80.0)
    # p = (3/4, 1/4) over 2 of 8 modes: KL = 3/4 log(8 * 3/4) + 1/4 log(8 * 1/4)
    assert out["modes.kl_uniform"] == pytest.approx(0.75 * math.log(6) + 0.25 * math.log(2), abs=1e-12)


def test_hq_radius_option_and_sample_count_option() -> None:
    means, sigma = mixture_modes("ring8")
    point = (means[1] + torch.tensor([4 * sigma, 0.0]))[None]
    asked: list[int] = []
    assert ModesMetric(samples=10).evaluate(eval_context("ring8", point, asked))["modes.captured"] == 0
    assert ModesMetric(samples=10, hq_sigmas=5.0).evaluate(eval_context("ring8", point, asked))["modes.captured"] == 1
    assert asked == [10, 10]


def test_non_finite_samples_are_never_high_quality() -> None:
    means, sigma = mixture_modes("ring8")
    points = torch.cat([means[:2], torch.tensor([[float("nan"), 0.0], [float("inf"), 1.0]])])
    out = mode_statistics(points, means, sigma)
    assert out["modes.captured"] == 2
    assert out["modes.hq_percent"] == pytest.approx(50.0)


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_samples_of_the_true_mixture_score_as_theory_predicts(dataset: str) -> None:
    """For an isotropic 2-D Gaussian P(‖x − μ‖ ≤ 3σ) = 1 − exp(−9/2) ≈ 98.89%: the metric and
    the dataset agree on means and σ, and nearest-mode assignment is right."""
    x, _ = sample_mixture(dataset, 2500, torch.Generator().manual_seed(0))
    out = ModesMetric().evaluate(eval_context(dataset, x))
    expected = 100 * (1 - math.exp(-4.5))
    assert out["modes.hq_percent"] == pytest.approx(expected, abs=1.0)  # binomial s.e. is 0.21 points
    assert out["modes.captured"] == len(mixture_modes(dataset)[0])
    assert out["modes.kl_uniform"] < 0.02


def test_applies_only_to_the_mixtures() -> None:
    metric = ModesMetric()
    assert metric.applies_to(run_context("ring8"))
    assert metric.applies_to(run_context("grid25"))
    assert not metric.applies_to(run_context("digits"))


def test_metric_plugin_modules_import_no_torch() -> None:
    code = ("import sys; import ganlab_plugins.metrics; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_a_ring8_run_logs_the_modes_metrics(workdir, cli_inproc, mlflow_client) -> None:
    assert cli_inproc(["run", "--arch", "mlp", "--dataset", "ring8", *TINY, "--tracking-uri", store(workdir)]) == 0
    (run,) = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    metrics, params = run.data.metrics, run.data.params
    assert {"modes.captured", "modes.hq_percent", "modes.kl_uniform"} <= set(metrics)
    assert 0 <= metrics["modes.captured"] <= 8
    assert 0 <= metrics["modes.kl_uniform"] <= math.log(8) + 1e-9
    assert params["modes.samples"] == "2500" and params["modes.num_modes"] == "8"
    history = mlflow_client.get_metric_history(run.info.run_id, "modes.captured")
    assert [m.step for m in history] == [4]  # evaluated at the end of the run
