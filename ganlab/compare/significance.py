"""Which differences between groups of seeds are more than seed-to-seed noise.

Each pair of groups is tested on each metric's final values (or those at ``--at-step``) with a two-sided
permutation test of the difference in means: the p-value is the share of all
ways to split the pooled values into groups of the same sizes whose difference
in means is at least as large as the observed one. It assumes nothing about
the values' distribution, which matters here: GAN metrics over seeds are
bounded, discrete (modes captured) and often bimodal (a seed either collapses
or not), where a t-test's normal approximation is poor at ten seeds. Splits are
enumerated exactly up to :data:`EXACT_LIMIT` of them, and sampled beyond that.

Testing many pairs at once inflates the chance of a false finding, so p-values
are adjusted with Holm's step-down method over the pairs of one metric (which
controls the family-wise error rate without assuming independent tests).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: splits enumerated exactly up to this many (C(20, 10) = 184,756: ten seeds against ten)
EXACT_LIMIT = 200_000
#: random splits drawn when there are more
SAMPLED_SPLITS = 100_000


@dataclass
class PairTest:
    metric: str
    first: str
    second: str
    difference: float  # mean of first minus mean of second
    p: float
    p_holm: float = math.nan
    exact: bool = True


#: values whose spread is below this share of their magnitude are one value up to float rounding
ROUNDING = 1e-6


def permutation_p(a: Sequence[float], b: Sequence[float], seed: int = 0) -> tuple[float, bool]:
    """(two-sided p-value of mean(a) - mean(b), whether every split was enumerated)."""
    values = np.asarray([*a, *b], dtype=np.float64)
    n, k = len(values), len(a)
    if k == 0 or k == n:
        raise ValueError("both groups need at least one value")
    # One number computed by several processes (a metric's real-vs-real floor) differs in its last
    # digits from float rounding alone; an exact test would call two such groups "different".
    if np.ptp(values) <= ROUNDING * float(np.abs(values).max()):
        return 1.0, True
    total = values.sum()
    observed = abs(values[:k].mean() - values[k:].mean())
    # a split's difference equal to the observed one up to rounding counts as "as large"
    tolerance = 1e-9 * max(1.0, float(np.abs(values).max()))
    exact = math.comb(n, k) <= EXACT_LIMIT
    if exact:
        chosen = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n), k)),
                             dtype=np.int64).reshape(-1, k)
    else:
        rng = np.random.default_rng(seed)
        chosen = np.argsort(rng.random((SAMPLED_SPLITS, n)), axis=1)[:, :k]
    sums = values[chosen].sum(axis=1)
    differences = np.abs(sums / k - (total - sums) / (n - k))
    extreme = int((differences >= observed - tolerance).sum())
    if exact:
        return extreme / len(chosen), True
    # the observed split counts as one of the draws, so p is never 0 (Phipson and Smyth 2010)
    return (extreme + 1) / (len(chosen) + 1), False


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input's order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def one_change_pairs(keys: Sequence[tuple[str, ...]], names: Sequence[str] = ()) -> list[tuple[int, int]]:
    """Index pairs of groups whose grouping values differ in exactly one param: heads within one
    dataset, say, not a head on ring8 against another head on grid25.

    ``names`` are the grouping params (``head.name``, ``head.alpha``, ``pack``): where a
    component's name differs, its options (``head.alpha``, which only entmax has) differ with it
    and are not a second change."""
    def changes(a: tuple[str, ...], b: tuple[str, ...]) -> int:
        differing = [k for k, (x, y) in enumerate(zip(a, b)) if x != y]
        renamed = {names[k].split(".")[0] for k in differing if k < len(names) and names[k].endswith(".name")}
        return sum(1 for k in differing
                   if not (k < len(names) and not names[k].endswith(".name") and names[k].split(".")[0] in renamed))

    return [(i, j) for i, j in itertools.combinations(range(len(keys)), 2) if changes(keys[i], keys[j]) == 1]


def pairwise(samples: dict[str, dict[str, list[float]]], pairs: Sequence[tuple[str, str]]) -> list[PairTest]:
    """The given pairs of groups on every metric: ``samples[metric][group label]`` = per-seed final values.

    A pair where either group has fewer than two values on a metric is left out of its tests;
    Holm's adjustment runs over the pairs tested on one metric.
    """
    tests: list[PairTest] = []
    for metric, groups in samples.items():
        family = []
        for first, second in pairs:
            a, b = groups.get(first, []), groups.get(second, [])
            if len(a) < 2 or len(b) < 2:
                continue
            p, exact = permutation_p(a, b)
            family.append(PairTest(metric, first, second, float(np.mean(a) - np.mean(b)), p, exact=exact))
        for test, adjusted in zip(family, holm([t.p for t in family])):
            test.p_holm = adjusted
        tests += family
    return tests
