"""Statistics over repetitions: medians with bootstrap intervals, an exact permutation test and
effect sizes. Pure functions of arrays; nothing here knows about datasets.

The unit of replication is the *run* (one repetition of one configuration): intervals inside a run
are autocorrelated and are never treated as independent samples.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

# Above this many label arrangements the permutation test samples instead of enumerating.
EXACT_PERMUTATION_LIMIT = 20_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval and the sample size behind it."""

    value: float
    lo: float
    hi: float
    n: int


def _clean(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def bootstrap_median(values, confidence: float = 0.95, n_boot: int = 4000,
                     seed: int = 0) -> Estimate:
    """Median of ``values`` with a percentile-bootstrap confidence interval."""
    x = _clean(values)
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    med = float(np.median(x))
    if x.size == 1:
        return Estimate(med, med, med, 1)
    rng = np.random.default_rng(seed)
    boots = np.median(rng.choice(x, size=(n_boot, x.size), replace=True), axis=1)
    alpha = (1.0 - confidence) / 2.0
    return Estimate(med, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)),
                    int(x.size))


def bootstrap_ratio(a, b, confidence: float = 0.95, n_boot: int = 4000, seed: int = 0) -> Estimate:
    """Ratio of medians ``median(a) / median(b)`` with a percentile-bootstrap interval (each group
    resampled on its own)."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0 or np.median(y) == 0:
        return Estimate(math.nan, math.nan, math.nan, int(min(x.size, y.size)))
    ratio = float(np.median(x) / np.median(y))
    rng = np.random.default_rng(seed)
    bx = np.median(rng.choice(x, size=(n_boot, x.size), replace=True), axis=1)
    by = np.median(rng.choice(y, size=(n_boot, y.size), replace=True), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = bx / by
    boots = boots[np.isfinite(boots)]
    alpha = (1.0 - confidence) / 2.0
    return Estimate(ratio, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)),
                    int(min(x.size, y.size)))


@dataclass(frozen=True)
class PermutationResult:
    """Two-sided permutation test on the difference of means."""

    p_value: float
    p_floor: float      # the smallest p-value this design can produce
    exact: bool         # all arrangements enumerated (else Monte Carlo)
    n_a: int
    n_b: int


def permutation_test(a, b, n_resamples: int = 20_000, seed: int = 0) -> PermutationResult:
    """Two-sided permutation test of equal means between ``a`` and ``b``.

    Exact (every relabelling enumerated) when there are at most ``EXACT_PERMUTATION_LIMIT``
    arrangements, else Monte Carlo with ``n_resamples`` draws. With 3 runs against 3 the smallest
    attainable two-sided p is 2/20 = 0.1: report ``p_floor`` alongside ``p_value``.
    """
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return PermutationResult(math.nan, math.nan, True, int(x.size), int(y.size))
    pooled = np.concatenate([x, y])
    n, k = pooled.size, x.size
    observed = abs(x.mean() - y.mean())
    total = pooled.sum()
    tol = 1e-12 * max(1.0, float(np.abs(pooled).max()))
    combos = math.comb(n, k)
    if combos <= EXACT_PERMUTATION_LIMIT:
        hits = 0
        for idx in itertools.combinations(range(n), k):
            s = pooled[list(idx)].sum()
            diff = abs(s / k - (total - s) / (n - k))
            hits += diff >= observed - tol
        floor = (2.0 if k == n - k else 1.0) / combos
        return PermutationResult(hits / combos, floor, True, int(k), int(n - k))
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_resamples):
        perm = rng.permutation(pooled)
        diff = abs(perm[:k].mean() - perm[k:].mean())
        hits += diff >= observed - tol
    return PermutationResult((hits + 1) / (n_resamples + 1), 1.0 / (n_resamples + 1), False,
                             int(k), int(n - k))


def cliffs_delta(a, b) -> float:
    """Cliff's delta: P(a > b) − P(a < b) over all pairs, in [−1, 1]; ±1 is complete separation."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    diff = x[:, None] - y[None, :]
    return float((np.sign(diff)).mean())


def hedges_g(a, b) -> float:
    """Hedges' g: standardised mean difference (pooled SD) with the small-sample correction."""
    x, y = _clean(a), _clean(b)
    if x.size < 2 or y.size < 2:
        return math.nan
    dof = x.size + y.size - 2
    pooled = math.sqrt(((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / dof)
    if pooled == 0:
        return math.copysign(math.inf, x.mean() - y.mean()) if x.mean() != y.mean() else 0.0
    correction = 1.0 - 3.0 / (4.0 * dof - 1.0)
    return float((x.mean() - y.mean()) / pooled * correction)


def describe_delta(delta: float) -> str:
    """Romano et al.'s conventional wording for |Cliff's delta|."""
    if not math.isfinite(delta):
        return "n/a"
    d = abs(delta)
    if d < 0.147:
        return "negligible"
    if d < 0.33:
        return "small"
    if d < 0.474:
        return "medium"
    return "large"
