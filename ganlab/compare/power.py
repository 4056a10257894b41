"""How many seeds a difference between two groups needs: ``ganlab compare --power``.

For each pair of groups that ``compare --test`` tests (groups that differ in one param) and each
metric, :func:`power_rows` reports

* the **observed effect** ``d = mean(first) - mean(second)`` and its **standard error**
  ``sqrt(se_first^2 + se_second^2)`` with each group's ``se = s / sqrt(n)`` (the numbers the
  compare table prints, combined without assuming equal spreads);
* the **pooled standard deviation** ``s_p`` of one seed's value, ``((n1-1) s1^2 + (n2-1) s2^2) / (n1+n2-2)``
  under the root;
* the **seeds per group needed** for 80 % power (:data:`POWER`) to find an effect of the observed
  size at α = 0.05 (:data:`LEVEL`) after Holm's adjustment, and, where the user names one
  (``--effect METRIC=SIZE``), for that effect, with the power the groups as run have against it.

The computation: a two-sided two-sample t-test of equal group sizes n with the **noncentral t**
(not the normal approximation, which undercounts by one to three seeds at the sizes used here):
power = P(|T'| > t_{1-α'/2, 2n-2}) with T' noncentral t on 2n - 2 degrees of freedom and
noncentrality ``(d / s_p) sqrt(n / 2)``; the seeds needed are the smallest n >= 2 whose power
reaches 80 % (:mod:`ganlab.compare.tdist` computes the distributions without scipy).

How Holm enters: Holm's step-down method (:func:`ganlab.compare.significance.holm`) compares the
smallest of a metric's m p-values with α/m, the next with α/(m-1), and so on, and stops at the
first that fails. Which step a given pair's p-value meets is unknown before the runs, so the level
used here is the most stringent step, **α' = α / m**, with m the number of pairs tested on that
metric: a pair powered at α/m keeps at least 80 % power under Holm whatever its rank (the rule
is Bonferroni's and errs towards more seeds).

Two further facts bound the answer:

* ``compare --test`` runs a permutation test, not a t-test. For normal values its power approaches
  the t-test's as n grows (Hoeffding 1952); for the bounded, discrete or bimodal values GAN metrics
  take over seeds it can differ, so the seeds needed are a guide, not a guarantee.
* An exact permutation test of n against n values cannot give a p-value below 2 / C(2n, n) (the
  observed split and its mirror), so fewer seeds than the smallest n with 2 / C(2n, n) <= α' can
  never be significant, whatever the effect (with α' = 0.05 / 6, five seeds per group). The seeds
  needed are at least that :func:`permutation_floor`.

Power computed after the fact for the *observed* effect is a function of the p-value and says
nothing new (Hoenig & Heisey 2001), so the power "achieved" by the runs is given only against an
effect the user names (``--effect``): the smallest effect worth finding, fixed before the runs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ganlab.compare.tdist import nct_two_sided_sf, t_quantile
from ganlab.errors import GanlabError, did_you_mean

#: the family-wise error rate of the tests (as ``compare --test`` marks "significant")
LEVEL = 0.05
#: the power the seeds needed are computed for
POWER = 0.8
#: seeds per group beyond which the answer is given as "more than this"
MAX_SEEDS = 100_000


def power(n_first: int, n_second: int, effect: float, sd: float, level: float) -> float:
    """Power of a two-sided two-sample t-test at ``level`` with these group sizes against a true
    difference ``effect`` between the means, when one seed's value has standard deviation ``sd``."""
    if n_first < 2 or n_second < 2:
        raise ValueError("a two-sample t-test needs at least two values per group")
    df = n_first + n_second - 2
    critical = t_quantile(1.0 - level / 2.0, df)
    if sd == 0.0:
        return 1.0 if effect != 0.0 else level
    ncp = abs(effect) / sd / math.sqrt(1.0 / n_first + 1.0 / n_second)
    return min(1.0, nct_two_sided_sf(critical, df, ncp))


def normal_seeds(effect: float, sd: float, level: float, target: float = POWER) -> float:
    """The normal approximation n = 2 (z_{1-level/2} + z_{target})^2 sd^2 / effect^2 (a starting point)."""
    z = statistics.NormalDist()
    return 2.0 * (z.inv_cdf(1.0 - level / 2.0) + z.inv_cdf(target)) ** 2 * (sd / effect) ** 2


def t_seeds(effect: float, sd: float, level: float, target: float = POWER) -> int | None:
    """The smallest equal group size n >= 2 whose t-test has power ``target`` against ``effect``;
    None where no n up to :data:`MAX_SEEDS` has it (an effect of 0 never does)."""
    if effect == 0.0 or not math.isfinite(effect) or not math.isfinite(sd):
        return None
    if sd == 0.0 or power(2, 2, effect, sd, level) >= target:
        return 2
    high = max(3, math.ceil(normal_seeds(effect, sd, level, target)) + 1)
    while power(high, high, effect, sd, level) < target:
        if high >= MAX_SEEDS:
            return None
        high = min(MAX_SEEDS, 2 * high)
    low = 2  # power(low) < target <= power(high); power grows with n
    while high - low > 1:
        middle = (low + high) // 2
        if power(middle, middle, effect, sd, level) >= target:
            high = middle
        else:
            low = middle
    return high


def permutation_floor(level: float) -> int:
    """The fewest seeds per group with which an exact permutation test of n against n can reach
    ``level`` at all: the smallest n with 2 / C(2n, n) <= level."""
    n = 1
    while 2.0 / math.comb(2 * n, n) > level:
        n += 1
    return max(n, 2)


def seeds_needed(effect: float, sd: float, level: float, target: float = POWER) -> int | None:
    """Seeds per group for ``target`` power against ``effect`` at ``level`` (module docstring)."""
    n = t_seeds(effect, sd, level, target)
    return None if n is None else max(n, permutation_floor(level))


@dataclass
class PowerRow:
    metric: str
    first: str
    second: str
    n_first: int
    n_second: int
    effect: float  # mean of first minus mean of second
    stderr: float  # of the effect: sqrt(se_first^2 + se_second^2)
    sd: float  # pooled standard deviation of one seed's value
    tests: int  # m: the pairs tested on this metric (Holm's family)
    level: float  # α / m
    seeds: int | None  # per group, for the observed effect; None: more than MAX_SEEDS, or no effect
    named_effect: float | None = None  # --effect for this metric
    named_seeds: int | None = None
    named_power: float | None = None  # of the groups as run, against the named effect


def power_rows(samples: Mapping[str, Mapping[str, Sequence[float]]], pairs: Sequence[tuple[str, str]],
               effects: Mapping[str, float] | None = None, level: float = LEVEL) -> list[PowerRow]:
    """The pairs of groups on every metric: ``samples[metric][group label]`` = per-seed values.

    The same family as ``compare --test`` (:func:`ganlab.compare.significance.pairwise`): a pair where
    either group has fewer than two values on a metric is left out, and m counts the pairs kept.
    """
    rows: list[PowerRow] = []
    for metric, groups in samples.items():
        family = [(first, second, list(groups.get(first, [])), list(groups.get(second, [])))
                  for first, second in pairs]
        family = [entry for entry in family if len(entry[2]) >= 2 and len(entry[3]) >= 2]
        adjusted = level / len(family) if family else level
        named = (effects or {}).get(metric)
        for first, second, a, b in family:
            va, vb = statistics.variance(a), statistics.variance(b)
            sd = math.sqrt(((len(a) - 1) * va + (len(b) - 1) * vb) / (len(a) + len(b) - 2))
            effect = statistics.fmean(a) - statistics.fmean(b)
            row = PowerRow(metric, first, second, len(a), len(b), effect,
                           math.sqrt(va / len(a) + vb / len(b)), sd, len(family), adjusted,
                           seeds_needed(effect, sd, adjusted))
            if named is not None:
                row.named_effect = named
                row.named_seeds = seeds_needed(named, sd, adjusted)
                row.named_power = power(len(a), len(b), named, sd, adjusted)
            rows.append(row)
    return rows


def parse_effects(text: str | None, metrics: Sequence[str]) -> dict[str, float]:
    """``--effect``: ``METRIC=SIZE[,METRIC=SIZE...]``, or a bare SIZE when one metric is compared.

    A size is a difference of means in the metric's own units (modes, percent, ...), > 0."""
    if text is None:
        return {}
    effects: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        metric, sep, size = part.rpartition("=")
        if not sep:
            if len(metrics) != 1:
                raise GanlabError(f"--effect '{part}': name the metric, METRIC=SIZE, when several are compared "
                                  f"({', '.join(metrics)})")
            metric = metrics[0]
        metric = metric.strip()
        if metric not in metrics:
            raise GanlabError(f"--effect names '{metric}', which is not a compared metric"
                              f"{did_you_mean(metric, metrics)} (compared: {', '.join(metrics)})")
        try:
            value = float(size)
        except ValueError:
            raise GanlabError(f"--effect '{part}': the size must be a number, not '{size.strip()}'") from None
        if not (math.isfinite(value) and value > 0):
            raise GanlabError(f"--effect '{part}': the size must be a positive number (a difference of means)")
        effects[metric] = value
    if not effects:
        raise GanlabError("--effect is empty: give METRIC=SIZE, e.g. modes.captured=1")
    return effects


def _seeds_text(seeds: int | None, effect: float) -> str:
    if seeds is not None:
        return str(seeds)
    return "-" if effect == 0.0 else f"> {MAX_SEEDS}"


def power_markdown(rows: Sequence[PowerRow], at_step: int | None = None) -> str:
    """The rows as a Markdown table, with the lines that say how they were computed."""
    from ganlab.compare.render import fmt

    named = any(r.named_effect is not None for r in rows)
    header = ["metric", "first", "second", "effect", "SE", "SD", "n", "m", "seeds for effect"]
    if named:
        header += ["named effect", "seeds for it", "power of n"]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + " |"]
    for r in rows:
        cells = [r.metric, r.first, r.second, fmt(r.effect), f"{r.stderr:.2g}", f"{r.sd:.3g}",
                 f"{r.n_first}/{r.n_second}", str(r.tests), _seeds_text(r.seeds, r.effect)]
        if named:
            cells += ["-", "-", "-"] if r.named_effect is None else [
                fmt(r.named_effect), _seeds_text(r.named_seeds, r.named_effect), f"{100 * (r.named_power or 0):.0f} %"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    which = "final values" if at_step is None else f"values at step {at_step}"
    return ("\n" + "\n".join(lines) + "\n\n"
            f"Power of the {which}: effect = difference of means (first minus second) with its standard error; "
            "SD = pooled standard deviation of one seed's value; n = seeds per group as run; m = pairs tested on "
            f"the metric. Seeds per group for {POWER:.0%} power of a two-sided two-sample t-test (noncentral t) "
            f"at {LEVEL} / m, Holm's most stringent step, against an effect of the observed size"
            + (" and of the named size (--effect), with the power the groups as run have against it" if named else "")
            + "; never fewer than an exact permutation test needs to reach that level at all "
            "(ganlab/compare/power.py).\n")
