"""Small statistics shared across the lab: the one Gini coefficient and rank correlations.

The evaluator's ``GINI@k`` metric and the split audit's popularity skew both call
:func:`gini`, so the two can never disagree on a definition.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gini", "rank_correlations"]


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 = all equal, (n - 1) / n = all on one.

    For the counts sorted ascending, c_1 <= ... <= c_n:
    G = sum_i (2i - n - 1) c_i / (n sum_i c_i), i = 1..n (the mean absolute difference over
    all ordered pairs divided by twice the mean).

    Empty or all-zero input returns NaN: with nothing to distribute, inequality is undefined,
    and 0.0 would claim a perfectly even distribution. (JSON output writes it as null.)
    """
    c = np.sort(np.asarray(counts, dtype=np.float64).ravel())
    n = c.size
    total = c.sum()
    if n == 0 or total <= 0:
        return math.nan
    if c[0] < 0:
        raise ValueError(f"gini needs non-negative counts, got a minimum of {c[0]}")
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * i - n - 1) * c).sum() / (n * total))


def rank_correlations(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Spearman rho and Kendall tau-b of two aligned arrays; NaN when either is constant."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return {"spearman": math.nan, "kendall": math.nan}
    from scipy import stats as sps_stats  # lazy: scipy.stats is heavy to import

    return {
        "spearman": float(sps_stats.spearmanr(a, b).statistic),
        "kendall": float(sps_stats.kendalltau(a, b).statistic),
    }
