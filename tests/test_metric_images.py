"""The ``images`` metric: Fréchet distance, KID, coverage and class KL, the
classifier's disk cache, and a digits run that logs them.

The statistics are checked against closed forms and direct float64
computations; the feature classifier is trained for real (1 epoch, once per
session, in the session's cache directory, which the end-to-end run reuses).
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from conftest import TINY, make
from ganlab.config import RunConfig
from ganlab.context import EvalContext, RunContext
from ganlab.data import DataRequest, TensorData
from ganlab_plugins.datasets.digits import Digits
from ganlab_plugins.metrics import images_classifier as clf
from ganlab_plugins.metrics.images import COVERAGE_THRESHOLD, ImageMetrics, class_histogram, coverage
from ganlab_plugins.metrics.stats import (
    frechet_distance,
    frechet_distance_features,
    kernel_inception_distance,
    kl_to_uniform,
    mmd2_unbiased,
)


EPOCHS = 1  # enough for a useful feature space on digits; keeps the one training to seconds


# ---- Fréchet distance ----------------------------------------------------------
def test_frechet_distance_of_diagonal_gaussians_matches_the_closed_form() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    var1, var2 = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    # commuting covariances: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt a - sqrt b)^2
    expected = (1 + 0 + 4) + (1 + 1 + 4)
    assert frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2)) == pytest.approx(expected, abs=1e-10)

def store(workdir: Path) -> str:
    """An absolute store URI: MLflow caches stores by URI within a process, so the default
    relative one would keep pointing at the first in-process test's directory."""
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"



def test_frechet_distance_of_general_gaussians_matches_scipy_sqrtm() -> None:
    gen = torch.Generator().manual_seed(0)
    for d in (2, 5, 16):
        a, b = (torch.randn(d, d, generator=gen, dtype=torch.float64) for _ in range(2))
        cov1, cov2 = a @ a.T + 0.1 * torch.eye(d), b @ b.T + 0.1 * torch.eye(d)
        mu1, mu2 = (torch.randn(d, generator=gen, dtype=torch.float64) for _ in range(2))
        root = scipy.linalg.sqrtm(cov1.numpy() @ cov2.numpy()).real
        expected = float(((mu1 - mu2) ** 2).sum()) + np.trace(cov1.numpy() + cov2.numpy() - 2 * root)
        assert frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_a_shift_adds_its_square() -> None:
    feats = torch.randn(300, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert frechet_distance_features(feats, feats) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([0.5] * 8, dtype=torch.float64)
    assert frechet_distance_features(feats, feats + shift) == pytest.approx(8 * 0.25, abs=1e-9)


# ---- KID --------------------------------------------------------------------------
def direct_mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Loops over pairs, in float64, exactly as Bińkowski et al. (2018) define the estimator."""
    d = x.shape[1]

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_a_direct_pairwise_computation() -> None:
    rng = np.random.default_rng(0)
    for m, n in ((7, 7), (6, 9)):
        x, y = rng.normal(size=(m, 5)), rng.normal(0.3, 1.2, size=(n, 5))
        assert mmd2_unbiased(torch.from_numpy(x), torch.from_numpy(y)) == pytest.approx(
            direct_mmd2_unbiased(x, y), rel=1e-12, abs=1e-12)


def test_mmd2_estimator_is_unbiased_where_the_plug_in_estimate_is_not() -> None:
    """Two samples of one distribution: the estimator averages to 0 (MMD² = 0), while
    keeping the diagonal terms (the biased V-statistic) is clearly positive."""
    gen = torch.Generator().manual_seed(2)
    unbiased, biased = [], []
    for _ in range(400):
        x, y = (torch.randn(8, 4, generator=gen, dtype=torch.float64) for _ in range(2))
        unbiased.append(mmd2_unbiased(x, y))
        kxx, kyy = ((x @ x.T / 4 + 1) ** 3).mean(), ((y @ y.T / 4 + 1) ** 3).mean()
        biased.append(float(kxx + kyy - 2 * ((x @ y.T / 4 + 1) ** 3).mean()))
    u, b = torch.tensor(unbiased), torch.tensor(biased)
    se = u.std() / math.sqrt(len(u))
    assert abs(float(u.mean())) < 3 * float(se)
    assert float(b.mean()) > 10 * float(se)


def test_kid_averages_mmd_over_subsets_and_is_exact_for_whole_sets() -> None:
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 6, generator=gen), torch.randn(30, 6, generator=gen) + 1.0
    assert kernel_inception_distance(x[:30], y, subsets=10, subset_size=100) == mmd2_unbiased(x[:30], y)
    sub = kernel_inception_distance(x, y, subsets=2000, subset_size=20, seed=0)
    assert sub == kernel_inception_distance(x, y, subsets=2000, subset_size=20, seed=0)  # seeded: reproducible
    # every pair is equally likely to fall in a random subset, so the mean over subsets
    # estimates the whole-set statistic without bias
    assert sub == pytest.approx(mmd2_unbiased(x, y), rel=0.03)
    assert kernel_inception_distance(x, y, subsets=3, subset_size=20, seed=1) != sub


# ---- predictions ------------------------------------------------------------------
def test_class_histogram_coverage_and_kl_on_hand_made_predictions() -> None:
    classes = torch.tensor([0, 1, 2, 4])  # class 3 excluded: predictions are restricted to the others
    logits = torch.full((10, 5), -5.0)
    for row, cls in enumerate([0, 0, 0, 0, 0, 0, 1, 1, 2, 3]):
        logits[row, cls] = 5.0
    logits[9, 2] = 1.0  # the row that prefers class 3 falls back to its best allowed class, 2
    counts = class_histogram(logits, classes)
    assert counts.tolist() == [6, 2, 2, 0]
    assert coverage(counts, 0.0) == 0.75  # predicted at least once
    assert coverage(counts, 1.0) == 0.25  # at least the uniform share (2.5 of 10): only class 0
    assert coverage(counts, 0.5) == 0.75
    assert coverage(counts) == 0.75  # the default: half the fair share
    p = [0.6, 0.2, 0.2]
    assert kl_to_uniform(counts) == pytest.approx(sum(q * math.log(4 * q) for q in p), abs=1e-12)
    assert kl_to_uniform(torch.tensor([5, 5, 5, 5])) == 0.0
    assert kl_to_uniform(torch.tensor([0, 7, 0, 0])) == pytest.approx(math.log(4))


def test_coverage_counts_a_class_from_half_its_fair_share_by_default() -> None:
    """Ten classes, 1,000 predictions: the fair share is 100, half of it 50 (1/(2K) of the samples)."""
    assert COVERAGE_THRESHOLD == 0.5
    # the registration (which imports no torch, so repeats the number) and the class agree
    assert make("metric", "images").coverage_threshold == COVERAGE_THRESHOLD == ImageMetrics().coverage_threshold
    collapsed = torch.tensor([2, 110, 111, 111, 111, 111, 111, 111, 111, 111])  # class 0 at 0.2 %
    assert collapsed.sum() == 1000
    assert coverage(collapsed) == 0.9
    assert coverage(collapsed, 0.0) == 1.0  # "any sample" would count it
    at_half = torch.tensor([50, 106, 106, 106, 106, 106, 105, 105, 105, 105])  # exactly 1/(2K)
    below_half = torch.tensor([49, 106, 106, 106, 106, 106, 106, 105, 105, 105])
    assert at_half.sum() == below_half.sum() == 1000
    assert coverage(at_half) == 1.0 and coverage(below_half) == 0.9


# ---- the metric on digits, with its cached classifier -----------------------------
@pytest.fixture(scope="module")
def digits() -> TensorData:
    return Digits(32).load(DataRequest(root=Path("data")))


def digits_config(**settings) -> RunConfig:
    return RunConfig(settings={"eval_samples": 2500, **settings},
                     components={"dataset": {"name": "digits", "size": 32, "exclude_class": -1}})


def eval_context(data: TensorData, generate, config: RunConfig | None = None) -> EvalContext:
    return EvalContext(
        step=0, device=torch.device("cpu"), dataset_name="digits", data=data, head=None, generator=None,
        discriminator=None, latent_dim=8, seed=0, cache_dir=Path(os.environ["GANLAB_CACHE"]), generate=generate,
        discriminate=lambda x: x, real_batch=lambda n: data.x[:n], config=config or digits_config(),
    )


@pytest.fixture(scope="module")
def first_evaluation(digits: TensorData) -> dict:
    """One evaluation that trains (or finds) the classifier in the session cache."""
    order = torch.randperm(len(digits.x), generator=torch.Generator().manual_seed(5))
    ctx = eval_context(digits, lambda n: digits.x[order[:n]])
    out = ImageMetrics(classifier_epochs=EPOCHS).evaluate(ctx)
    return {"out": out, "params": dict(ctx.params)}


@pytest.mark.slow
def test_real_vs_real_distances_are_near_zero_and_far_below_a_noised_set(digits, first_evaluation) -> None:
    out, params = first_evaluation["out"], first_evaluation["params"]
    # generated samples are capped by the training split (1,437 digits), the reference by the test split
    assert params["images.samples"] == 1437 and params["images.reference_samples"] == 360
    # generated = training images: the model's values sit at the real-vs-real floor
    assert out["images.fld"] < 3 * out["images.fld_real"]
    assert abs(out["images.kid"]) < 0.05 and abs(out["images.kid_real"]) < 0.05
    assert out["images.coverage"] == out["images.coverage_real"] == 1.0
    assert out["images.class_kl"] < 0.1
    noise = torch.Generator().manual_seed(6)
    noised = ImageMetrics(classifier_epochs=EPOCHS).evaluate(eval_context(
        digits, lambda k: (digits.x[:k] + 0.8 * torch.randn(k, *digits.shape, generator=noise)).clamp(-1, 1)))
    assert noised["images.fld"] > 10 * out["images.fld_real"]
    assert noised["images.kid"] > 10 * max(out["images.kid_real"], 0.005)
    shifted = ImageMetrics(classifier_epochs=EPOCHS).evaluate(
        eval_context(digits, lambda k: (digits.x[:k] * 0.2 + 0.6)))
    assert shifted["images.fld"] > 10 * out["images.fld_real"]
    assert noised["images.fld_real"] == out["images.fld_real"]  # the floor is fixed by protocol, not by G


def test_protocol_params_are_recorded(first_evaluation) -> None:
    params = first_evaluation["params"]
    assert params["images.feature_extractor"] == clf.ARCH
    assert params["images.feature_dim"] == clf.FEATURE_DIM == 128
    assert 0.7 < params["images.classifier_test_accuracy"] <= 1.0
    assert params["images.classifier_epochs"] == EPOCHS
    assert "test-split" in params["images.reference"] and "training-split" in params["images.floor"]
    assert params["images.kid"].endswith("100 subsets of 360")  # 1,437 generated vs 360 reference images


def test_sample_count_follows_eval_samples_or_the_option(digits, first_evaluation) -> None:
    asked: list[int] = []

    def generate(n: int) -> torch.Tensor:
        asked.append(n)
        return digits.x[:n]

    ctx = eval_context(digits, generate, digits_config(eval_samples=100))
    ImageMetrics(classifier_epochs=EPOCHS).evaluate(ctx)
    ctx2 = eval_context(digits, generate, digits_config(eval_samples=100))
    ImageMetrics(classifier_epochs=EPOCHS, samples=50).evaluate(ctx2)
    assert asked == [100, 50]
    assert ctx.params["images.samples"] == 100 and ctx2.params["images.samples"] == 50


def test_the_classifier_is_trained_once_and_then_loaded_from_the_cache(digits, first_evaluation) -> None:
    classes = torch.arange(10)
    path = clf.cache_path(Path(os.environ["GANLAB_CACHE"]), "digits", {"size": 32, "exclude_class": -1},
                          digits.x, digits.y, 10, EPOCHS, 0)
    assert path.is_file()
    mtime, trainings = path.stat().st_mtime_ns, clf.TRAININGS
    ctx = eval_context(digits, lambda n: digits.x[:n])
    out = ImageMetrics(classifier_epochs=EPOCHS).evaluate(ctx)  # a fresh metric: nothing in memory
    assert clf.TRAININGS == trainings  # nothing retrained
    assert path.stat().st_mtime_ns == mtime  # nothing rewritten
    first_params = first_evaluation["params"]
    assert ctx.params["images.classifier_test_accuracy"] == first_params["images.classifier_test_accuracy"]
    assert out["images.fld_real"] == first_evaluation["out"]["images.fld_real"]
    loaded = clf.load_or_train(Path(os.environ["GANLAB_CACHE"]), "digits", {"size": 32, "exclude_class": -1},
                               digits, classes, EPOCHS, 0, "cpu")
    assert not loaded.trained_now and float(loaded.net.feature_scale) != 1.0
    # a different protocol or different data is a different classifier
    other = clf.cache_path(Path(os.environ["GANLAB_CACHE"]), "digits", {"size": 32, "exclude_class": -1},
                           digits.x, digits.y, 10, EPOCHS + 1, 0)
    changed = clf.cache_path(Path(os.environ["GANLAB_CACHE"]), "digits", {"size": 32, "exclude_class": -1},
                             digits.x, digits.y.roll(1), 10, EPOCHS, 0)
    assert len({path, other, changed}) == 3


def test_applies_to_labelled_images_with_a_test_split_only(digits) -> None:
    def run(data) -> RunContext:
        return RunContext(config=digits_config(), device="cpu", generator=None, discriminator=None, head=None,
                          objective=None, data=data, data_shape=tuple(data.shape), num_classes=1)

    metric = ImageMetrics()
    assert metric.applies_to(run(digits))
    no_test = TensorData(x=digits.x, y=digits.y, num_classes=10)
    unlabelled = TensorData(x=digits.x, num_classes=0, test_x=digits.test_x)
    points = TensorData(x=torch.randn(50, 2), y=torch.randint(8, (50,)), num_classes=8,
                        test_x=torch.randn(10, 2), test_y=torch.randint(8, (10,)))
    for data in (no_test, unlabelled, points):
        assert not metric.applies_to(run(data))


def test_a_digits_run_logs_image_metrics_and_their_protocol(workdir, cli_inproc, mlflow_client) -> None:
    args = ["run", "--arch", "mlp", "--dataset", "digits", *TINY, "--set", f"metric.images.classifier_epochs={EPOCHS}",
            "--tracking-uri", store(workdir)]
    assert cli_inproc(args) == 0
    (run,) = mlflow_client.search_runs([e.experiment_id for e in mlflow_client.search_experiments()])
    metrics, params = run.data.metrics, run.data.params
    for key in ("fld", "fld_real", "kid", "kid_real", "coverage", "class_kl"):
        assert math.isfinite(metrics[f"images.{key}"])
    assert metrics["images.fld"] > metrics["images.fld_real"]  # 4 steps of training: far from real
    assert params["images.samples"] == "200"  # TINY's eval_samples
    assert params["images.feature_extractor"] == clf.ARCH
    assert 0.0 < float(params["images.classifier_test_accuracy"]) <= 1.0
