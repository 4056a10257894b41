"""The ``modes`` metric against an independent re-implementation of the protocol.

``independent_modes`` below is written from the protocol's text (docs/heads.md,
"Evaluation protocols"; VEEGAN and PacGAN) in numpy and imports nothing of ganlab's:
the mode means and σ are typed in from the protocol, not read from
``ganlab_plugins.datasets.mixtures``. Protocol (PacGAN's published evaluation code does the
same): assign each sample to its nearest mode centre; it is high quality (HQ) when within
3σ of it; a mode is captured when at least one HQ sample is assigned to it; % HQ is over
all samples; KL is that of the HQ histogram against the uniform one (log K when no
sample is HQ, the metric's documented convention).

The two must agree on samples exported from a real run (``ganlab sample RUN --out
x.npy``, which draws from the generator exactly as the run's evaluation did), on the
values that run logged, and on constructed sets whose answers are known by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY
from ganlab_plugins.metrics.modes import mode_statistics


# ---- the protocol, typed in again ------------------------------------------------
def protocol_modes(dataset: str) -> tuple[np.ndarray, float]:
    """Mode centres (K, 2) and σ as the protocol states them."""
    if dataset == "ring8":
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.01
    if dataset == "grid25":
        return np.array([[x, y] for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)], dtype=float), 0.05
    raise ValueError(dataset)


def independent_modes(samples: np.ndarray, dataset: str, sigmas: float = 3.0) -> dict[str, float]:
    """(captured, % HQ, KL to uniform) of ``samples`` (N, 2) under the protocol, numpy only."""
    means, sigma = protocol_modes(dataset)
    x = np.asarray(samples, dtype=np.float64)
    ok = np.isfinite(x).all(axis=1)
    counts = np.zeros(len(means))
    for point in x[ok]:  # one sample at a time: as plain as the protocol's sentence
        d = np.sqrt(((means - point) ** 2).sum(axis=1))
        k = int(np.argmin(d))
        if d[k] <= sigmas * sigma:
            counts[k] += 1
    total = counts.sum()
    if total == 0:
        kl = math.log(len(means))
    else:
        p = counts[counts > 0] / total
        kl = float((p * np.log(p * len(means))).sum())
    return {"modes.captured": float((counts >= 1).sum()), "modes.hq_percent": 100.0 * total / len(x),
            "modes.kl_uniform": kl}


def metric_modes(samples: np.ndarray, dataset: str) -> dict[str, float]:
    from ganlab_plugins.datasets.mixtures import mixture_modes

    means, sigma = mixture_modes(dataset)
    return mode_statistics(torch.from_numpy(np.asarray(samples, dtype=np.float32)), means, sigma)


def assert_agree(samples: np.ndarray, dataset: str) -> dict[str, float]:
    """Both on the same float32 values (a generator's output type), so a sample within float
    rounding of the 3σ boundary cannot fall on different sides in the two."""
    samples = np.asarray(samples, dtype=np.float32)
    ours, theirs = metric_modes(samples, dataset), independent_modes(samples, dataset)
    assert ours["modes.captured"] == theirs["modes.captured"]
    assert ours["modes.hq_percent"] == pytest.approx(theirs["modes.hq_percent"], abs=1e-9)
    assert ours["modes.kl_uniform"] == pytest.approx(theirs["modes.kl_uniform"], abs=1e-9)
    return theirs


def toward_modes(samples: np.ndarray, dataset: str, scale: float) -> np.ndarray:
    """Each sample moved along the line to its nearest mode so that the median sample ends at
    ``scale`` times the HQ radius (3σ): from whatever the generator produced, a set with HQ,
    borderline and far samples in a proportion that ``scale`` sets."""
    means, sigma = protocol_modes(dataset)
    nearest = means[np.argmin(((samples[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)]
    offset = samples - nearest
    factor = scale * 3 * sigma / np.median(np.sqrt((offset**2).sum(axis=1)))
    return nearest + factor * offset


# ---- constructed sets with known answers -----------------------------------------
@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_both_give_the_hand_computed_answer(dataset: str) -> None:
    """Mode k gets k + 1 samples inside 3σ (at 0 to 2.9σ in varied directions) and one
    just outside (3.05σ); the last mode gets none inside; plus far points and a NaN."""
    means, sigma = protocol_modes(dataset)
    k = len(means)
    rng = np.random.default_rng(0)
    points, inside = [], 0
    for i, mu in enumerate(means):
        angle = rng.uniform(0, 2 * np.pi, size=i + 2)
        direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        if i < k - 1:
            radii = np.linspace(0, 2.9, i + 1) * sigma
            points += list(mu + radii[:, None] * direction[: i + 1])
            inside += i + 1
        points.append(mu + 3.05 * sigma * direction[-1])
    points += [[100.0, 100.0], [np.nan, 0.0]]
    x = np.array(points)
    expected_counts = np.arange(1, k, dtype=float)  # modes 0..K-2 hold 1..K-1 HQ samples
    p = expected_counts / expected_counts.sum()
    expected = {"modes.captured": k - 1, "modes.hq_percent": 100.0 * inside / len(x),
                "modes.kl_uniform": float((p * np.log(p * k)).sum())}
    got = assert_agree(x, dataset)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_a_mode_counts_as_captured_from_one_hq_sample_and_not_from_near_misses() -> None:
    means, sigma = protocol_modes("ring8")
    one_each = means + np.array([2.99 * sigma, 0.0])  # every mode: one HQ sample
    misses = means + np.array([0.0, 3.01 * sigma])  # every mode: a sample just outside 3σ
    assert assert_agree(one_each, "ring8")["modes.captured"] == 8
    assert assert_agree(misses, "ring8")["modes.captured"] == 0
    mixed = np.concatenate([one_each[:3], misses])
    got = assert_agree(mixed, "ring8")
    assert got["modes.captured"] == 3 and got["modes.hq_percent"] == pytest.approx(100 * 3 / 11)


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_both_agree_on_mixture_samples_with_dropped_modes_and_outliers(dataset: str) -> None:
    means, sigma = protocol_modes(dataset)
    rng = np.random.default_rng(1)
    kept = means[rng.permutation(len(means))[: len(means) // 2]]
    near = kept[rng.integers(len(kept), size=2000)] + rng.normal(scale=1.5 * sigma, size=(2000, 2))
    far = rng.uniform(-5, 5, size=(500, 2))
    got = assert_agree(np.concatenate([near, far]), dataset)
    assert got["modes.captured"] >= len(kept)  # the uniform points may land on a dropped mode or two


# ---- samples exported from a real run --------------------------------------------
EVAL_NOISE_SEED_OFFSET = 7919  # ganlab/train/evaluation.py: evaluations draw noise from seed + 7919


@pytest.mark.slow
@pytest.mark.parametrize("dataset, hq_sigmas", [("grid25", 3.0), ("grid25", 7.0), ("ring8", 50.0)])
def test_both_agree_on_samples_exported_from_a_real_run_and_with_what_it_logged(workdir: Path, cli_inproc,
                                                                                mlflow_client, dataset: str,
                                                                                hq_sigmas: float) -> None:
    """After four steps no sample is within 3σ of a mode (the generator has not moved from near
    the origin), so besides the protocol's 3σ, runs with a wider HQ radius (``hq_sigmas``, about
    the median distance of these samples) make the logged % HQ a fingerprint of the exact
    samples: which of 2,500 samples fall inside a radius that cuts through the middle of them."""
    # an absolute store URI: MLflow caches stores by URI within a process
    store = ["--tracking-uri", f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"]
    assert cli_inproc(["run", "--arch", "mlp", "--dataset", dataset, *TINY, "--seed", "3", "--set", "metrics=modes",
                       "--set", f"metric.modes.hq_sigmas={hq_sigmas}", "--set", "dataset.samples=2000",
                       "--experiment", "modes-check", *store]) == 0
    exp = mlflow_client.get_experiment_by_name("modes-check")
    (run,) = mlflow_client.search_runs([exp.experiment_id])
    # the evaluation's own samples: 2,500 from the evaluation's noise stream
    assert cli_inproc(["sample", run.info.run_id, "--n", "2500", "--seed", str(3 + EVAL_NOISE_SEED_OFFSET),
                       "--out", str(workdir / "eval.npy"), *store]) == 0
    samples = np.load(workdir / "eval.npy")
    assert samples.shape == (2500, 2)
    theirs = independent_modes(samples, dataset, hq_sigmas)
    logged = run.data.metrics
    assert logged["modes.captured"] == theirs["modes.captured"]
    assert logged["modes.hq_percent"] == pytest.approx(theirs["modes.hq_percent"], abs=1e-9)
    assert logged["modes.kl_uniform"] == pytest.approx(theirs["modes.kl_uniform"], abs=1e-9)
    if hq_sigmas > 3:
        assert 10 < theirs["modes.hq_percent"] < 90 and theirs["modes.captured"] >= 1, theirs
    # at the protocol's radius, the metric's function on the exported file agrees too, and so do
    # the same samples moved toward their nearest modes: sets with every outcome (HQ, borderline, far)
    assert_agree(samples, dataset)
    hq = [assert_agree(toward_modes(samples.astype(np.float64), dataset, scale), dataset)["modes.hq_percent"]
          for scale in (0.5, 0.9, 1.0, 1.1, 2.0)]
    assert hq[0] > 90 and 40 < hq[2] < 60 and hq[-1] < 40, hq  # the median sample sits on the boundary at 1.0
    assert hq == sorted(hq, reverse=True)
