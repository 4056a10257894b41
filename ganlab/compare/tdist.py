"""Student's t and the noncentral t, written with math and numpy (scipy is a test dependency only).

What ``ganlab compare --power`` needs of them: the two-sided critical value of a t-test
(:func:`t_quantile`) and the chance that a noncentral t lands beyond it (:func:`nct_two_sided_sf`).

* The central t's distribution function is the regularised incomplete beta function,
  ``P(T <= t) = 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2`` for t >= 0, evaluated by its continued
  fraction (modified Lentz; Press et al., Numerical Recipes, 3rd ed., §6.4), and inverted by
  bisection to the last digit a double holds.
* The noncentral t is ``T' = (Z + ncp) / U`` with Z standard normal and ``U = sqrt(V / df)``,
  V chi-squared on df degrees of freedom, independent. So
  ``P(T' > c) = E_U[Phi(ncp - c U)]``: a one-dimensional integral over U's density, computed by
  composite Gauss-Legendre quadrature over the range that holds U's mass. Both tails are written
  as such an expectation, so a power near 1 or near 0 keeps its digits (no ``1 - cdf``).

tests/test_compare_power.py checks both against scipy.stats to 1e-10.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: continued-fraction iterations before the incomplete beta gives up (sqrt(df) suffices; df < 1e8 here)
_MAX_ITERATIONS = 100_000
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (Numerical Recipes' betacf)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-16:
            return h
    raise ArithmeticError(f"incomplete beta I_{x}({a}, {b}) did not converge")


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    front = math.exp(log_front)
    # the continued fraction converges fast only on this side; the other side by symmetry
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t on ``df`` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return tail if t >= 0 else 1.0 - tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), to the last digit a double holds."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs 0 < p < 1, not {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    upper_tail = 1.0 - p
    low, high = 0.0, 1.0
    while t_sf(high, df) > upper_tail:
        low, high = high, 2.0 * high
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if t_sf(middle, df) > upper_tail:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


@functools.lru_cache(maxsize=1)
def _legendre(nodes: int = 48) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(nodes)


@functools.lru_cache(maxsize=512)
def _chi_scale_rule(df: float, panels: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (density included) of an integral over U = sqrt(chi2_df / df).

    U's density is ``2 (df/2)^(df/2) / Gamma(df/2) u^(df-1) exp(-df u^2 / 2)``; its mass lies within
    about 1 +- 1/sqrt(2 df), and beyond 14 of those widths (or below u = 0) nothing a double
    can hold is left.
    """
    width = 1.0 / math.sqrt(2.0 * df)
    low, high = max(0.0, 1.0 - 14.0 * width), 1.0 + 14.0 * width + (3.0 if df < 8 else 0.0)
    x, w = _legendre()
    edges = np.linspace(low, high, panels + 1)
    half = np.diff(edges)[:, None] / 2.0
    u = (edges[:-1, None] + half * (x[None, :] + 1.0)).ravel()
    weight = (half * w[None, :]).ravel()
    log_density = (math.log(2.0) + (df / 2.0) * math.log(df / 2.0) - math.lgamma(df / 2.0)
                   + (df - 1.0) * np.log(u) - df * u * u / 2.0)
    return u, weight * np.exp(log_density)


def _phi(values: np.ndarray) -> np.ndarray:
    """The standard normal distribution function, elementwise (numpy has no erf)."""
    return np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in values.tolist()])


def nct_sf(c: float, df: float, ncp: float) -> float:
    """P(T' > c) for the noncentral t on ``df`` degrees of freedom with noncentrality ``ncp``."""
    u, weight = _chi_scale_rule(float(df))
    return float(np.dot(weight, _phi(ncp - c * u)))


def nct_two_sided_sf(c: float, df: float, ncp: float) -> float:
    """P(|T'| > c), c >= 0: the power of a two-sided t-test with critical value c."""
    u, weight = _chi_scale_rule(float(df))
    return float(np.dot(weight, _phi(ncp - c * u) + _phi(-ncp - c * u)))
