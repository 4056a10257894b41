"""The permutation test and Holm's adjustment behind ``ganlab compare --test``.

Checked against closed forms, against scipy's permutation test, and against a
brute-force enumeration in exact fractions written here.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from ganlab.compare.significance import holm, one_change_pairs, pairwise, permutation_p


def brute_force_p(a: list[int], b: list[int]) -> Fraction:
    """Share of all splits of a + b into sizes len(a), len(b) whose |mean difference| >= the observed one."""
    values = [*a, *b]
    n, k = len(values), len(a)

    def gap(chosen: tuple[int, ...]) -> Fraction:
        mine = [values[i] for i in chosen]
        rest = [values[i] for i in range(n) if i not in chosen]
        return abs(Fraction(sum(mine), k) - Fraction(sum(rest), n - k))

    observed = gap(tuple(range(k)))
    splits = list(itertools.combinations(range(n), k))
    return Fraction(sum(gap(c) >= observed for c in splits), len(splits))


def test_completely_separated_groups_have_the_smallest_exact_p() -> None:
    # of the C(6, 3) = 20 splits only the observed one and its mirror are as extreme
    p, exact = permutation_p([1, 2, 3], [4, 5, 6])
    assert exact and p == pytest.approx(2 / 20)
    assert permutation_p([5, 5, 5], [5, 5, 5])[0] == 1.0


def test_one_number_differing_only_in_rounding_is_not_a_difference() -> None:
    # a real-vs-real floor computed by ten processes per group: identical up to the 7th digit
    floor = 0.3219
    a = [floor * (1 + 1e-8 * i) for i in range(10)]
    b = [floor * (1 - 1e-8 * (i + 1)) for i in range(10)]
    assert permutation_p(a, b) == (1.0, True)
    # a real difference of the same values' size is still found
    assert permutation_p([floor] * 5, [floor * 1.01] * 5)[0] == pytest.approx(2 / 252)


@pytest.mark.parametrize("seed", range(4))
def test_exact_p_matches_a_brute_force_in_fractions_with_unequal_groups_and_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = [int(v) for v in rng.integers(1, 9, size=5)]  # mode counts: ties everywhere
    b = [int(v) for v in rng.integers(3, 9, size=4)]
    assert permutation_p(a, b)[0] == pytest.approx(float(brute_force_p(a, b)), abs=1e-12)


@pytest.mark.slow
def test_exact_p_matches_scipy_for_ten_seeds_against_ten() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.normal(80, 10, size=10), rng.normal(90, 10, size=10)
    reference = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                                       alternative="two-sided", n_resamples=np.inf)
    p, exact = permutation_p(a, b)
    assert exact and p == pytest.approx(reference.pvalue, rel=1e-9)


def test_too_many_splits_are_sampled_and_p_never_reaches_zero() -> None:
    # C(24, 12) = 2.7 million splits: sampled; the exact p would be 2 / C(24, 12)
    p, exact = permutation_p(list(range(12)), list(range(12, 24)))
    assert not exact and 0 < p <= 2e-5
    p, exact = permutation_p([0.0, 1.0] * 6, [1.0, 0.0] * 6)
    assert not exact and p == 1.0


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 = 0.02, 0.03, 0.06, 0.04 -> made monotone: 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_only_groups_differing_in_one_param_are_paired() -> None:
    keys = [("sigmoid", "ring8"), ("softmax", "ring8"), ("sigmoid", "grid25"), ("softmax", "grid25")]
    assert one_change_pairs(keys) == [(0, 1), (0, 2), (1, 3), (2, 3)]


def test_pairwise_skips_groups_of_one_and_adjusts_within_each_metric() -> None:
    samples = {"m": {"A": [1.0, 2.0, 3.0], "B": [4.0, 5.0, 6.0], "C": [7.0]},
               "n": {"A": [1.0, 2.0], "B": [1.0, 2.0], "C": [3.0, 4.0]}}
    tests = pairwise(samples, [("A", "B"), ("A", "C"), ("B", "C")])
    assert [(t.metric, t.first, t.second) for t in tests] == [
        ("m", "A", "B"), ("n", "A", "B"), ("n", "A", "C"), ("n", "B", "C")]
    family_n = [t for t in tests if t.metric == "n"]
    assert [t.p_holm for t in family_n] == pytest.approx(holm([t.p for t in family_n]))
    assert tests[0].p_holm == tests[0].p and tests[0].difference == pytest.approx(-3.0)


def test_a_components_own_options_change_with_its_name_not_as_a_second_param() -> None:
    names = ["head.name", "head.alpha", "pack"]
    keys = [("entmax", "1.5", "1"), ("sigmoid", "-", "1"), ("sigmoid", "-", "2"), ("entmax", "1.25", "1")]
    # entmax vs sigmoid at pack 1 is one change (alpha comes with the name); two entmax alphas are one change
    assert one_change_pairs(keys, names) == [(0, 1), (0, 3), (1, 2), (1, 3)]
