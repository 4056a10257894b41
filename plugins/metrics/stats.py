"""Statistics shared by the metric plugins, in float64 torch on the CPU.

Pure functions of tensors, no model and no data set: each is tested against a
closed form or an independent implementation (tests/test_metric_*.py).
"""

from __future__ import annotations

import math

import torch


def _f64(x: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x).detach().to("cpu", torch.float64)


def kl_to_uniform(counts: torch.Tensor) -> float:
    """KL(p ‖ u) in nats of the histogram ``counts`` (K,), p = counts / Σ counts,
    u uniform over all K bins, 0 log 0 = 0; in [0, log K].

    Empty histograms (Σ counts = 0) get log K, the value of total collapse:
    finite, and never better than a histogram with any mass in it.
    """
    counts = _f64(counts)
    k = len(counts)
    total = float(counts.sum())
    if total <= 0:
        return math.log(k)
    p = counts / total
    return float(torch.special.xlogy(p, p * k).sum().clamp_min(0.0))


def mean_cov(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of ``features`` (n, d), float64."""
    f = _f64(features)
    return f.mean(dim=0), torch.cov(f.T, correction=1).reshape(f.shape[1], f.shape[1])


def _sym_sqrt(a: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric PSD matrix; round-off negative eigenvalues become 0."""
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp_min(0.0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mu1, cov1) and N(mu2, cov2):

        ‖μ1 − μ2‖² + Tr Σ1 + Tr Σ2 − 2 Tr (Σ1 Σ2)^{1/2}.

    Tr (Σ1 Σ2)^{1/2} = Tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}: the inner matrix is
    symmetric PSD, so its eigenvalues are real and non-negative up to round-off,
    where ``scipy.linalg.sqrtm`` of the non-symmetric product can turn complex.
    """
    mu1, mu2, cov1, cov2 = _f64(mu1), _f64(mu2), _f64(cov1), _f64(cov2)
    root1 = _sym_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    eig = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0.0)
    value = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * eig.sqrt().sum()
    return float(value.clamp_min(0.0))


def frechet_distance_features(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (n, d) and ``b`` (m, d)."""
    return frechet_distance(*mean_cov(a), *mean_cov(b))


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The KID kernel k(x, y) = (x·y / d + 1)³ (Bińkowski et al. 2018)."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, x (m, d), y (n, d), m, n ≥ 2:

        1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j)

    It can be slightly negative when the two distributions are equal.
    """
    x, y = _f64(x), _f64(y)
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sum_xx = kxx.sum() - kxx.diagonal().sum()
    sum_yy = kyy.sum() - kyy.diagonal().sum()
    return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2 * kxy.sum() / (m * n))


def kernel_inception_distance(x: torch.Tensor, y: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> float:
    """KID: the mean of ``mmd2_unbiased`` over ``subsets`` random subsets (without
    replacement, size ``min(subset_size, len(x), len(y))``) of each set.

    The three kernel matrices are computed once on the whole sets; a subset's
    sums are then quadratic forms with its 0/1 indicator vector, all subsets in
    one matrix product (100 subsets of 1000 from 2,500 samples: 3 kernels of
    2,500² instead of 300 of 1,000²). When the subset size is the whole of both
    sets every subset is the same, so the estimate is computed once.
    """
    x, y = _f64(x), _f64(y)
    m, n = len(x), len(y)
    size = min(subset_size, m, n)
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {m} and {n}")
    if size == m == n:
        return mmd2_unbiased(x, y)
    gen = torch.Generator().manual_seed(seed)
    sx = torch.zeros(subsets, m, dtype=torch.float64)
    sy = torch.zeros(subsets, n, dtype=torch.float64)
    for i in range(subsets):
        sx[i, torch.randperm(m, generator=gen)[:size]] = 1.0
        sy[i, torch.randperm(n, generator=gen)[:size]] = 1.0
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    sum_xx = ((sx @ kxx) * sx).sum(dim=1) - sx @ kxx.diagonal()
    sum_yy = ((sy @ kyy) * sy).sum(dim=1) - sy @ kyy.diagonal()
    sum_xy = ((sx @ kxy) * sy).sum(dim=1)
    mmd2 = (sum_xx + sum_yy) / (size * (size - 1)) - 2 * sum_xy / (size * size)
    return float(mmd2.mean())


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more positive) for boolean labels ``positive``.

    The Mann–Whitney form: AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊ n₋), R₊ the sum of the
    positives' ranks among all scores with tied scores sharing their mean rank,
    which is P(s₊ > s₋) + ½ P(s₊ = s₋), the same as the trapezoidal ROC area.
    """
    s = _f64(scores).reshape(-1)
    pos = torch.as_tensor(positive).to("cpu", torch.bool).reshape(-1)
    if len(s) != len(pos):
        raise ValueError(f"{len(s)} scores but {len(pos)} labels")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("AUROC of non-finite scores")
    _, inverse, counts = torch.unique(s, sorted=True, return_inverse=True, return_counts=True)
    # the run of ties at sorted value v occupies ranks start+1 .. start+count: mean rank start + (count+1)/2
    start = torch.cumsum(counts, 0) - counts
    mean_rank = start.to(torch.float64) + (counts.to(torch.float64) + 1) / 2
    rank_sum = float(mean_rank[inverse][pos].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
