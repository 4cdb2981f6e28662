r"""Corrected sampled metrics (Krichene & Rendle, "On Sampled Metrics for Item Recommendation",
KDD 2020, §5).

Setting and assumptions (the correction is only as good as they are):

- **One relevant item per evaluated user** (leave-one-out test sets). Its *full rank* R is its
  position among the user's n rankable items (the relevant one and its n − 1 non-relevant
  ones, seen items removed); its *sampled rank* r is its position among itself and the m
  sampled negatives, r ∈ {1, …, m + 1}.
- **Negatives are drawn uniformly without replacement** from the n − 1 non-relevant items
  (:func:`~recforge.evaluation.sampling.sample_negatives` with ``mode="uniform"``). Then the
  number of negatives ranked above the relevant item, r − 1, is hypergeometric: of the
  n − 1 items, R − 1 rank above it and m are drawn, so
  P(r | R) = C(R−1, r−1) · C(n−R, m−r+1) / C(n−1, m). (The paper uses the binomial
  approximation, sampling with replacement; we sample without, so the exact law is used.)
  Popularity-sampled negatives break this law: their correction is refused.
- **A prior over full ranks**: the paper weighs every R ∈ {1, …, n} equally; so do we.

The *corrected metric* is a table M̃(r), one value per sampled rank, chosen so that the
expected corrected value E[M̃(r) | R] = Σ_r P(r | R) M̃(r) is close to the exact metric M(R):

- ``"bv"`` (bias–variance, the paper's §5.2): minimise
  Σ_R p(R) [ (E[M̃ | R] − M(R))² + γ · Var(M̃ | R) ]. With A[R, r] = P(r | R), P = diag(p),
  b[R] = M(R) and c = Aᵀ p this is M̃ = ((1 − γ) AᵀPA + γ diag(c))⁻¹ AᵀPb.
  ``gamma=0`` is the least-squares bias minimisation (``"ls"``); ``gamma=1`` minimises the
  mean squared error, i.e. M̃(r) = E[M(R) | r], the posterior mean under the prior.
- ``"ls"``: the same with γ = 0 (unbiased in the least-squares sense; high variance).
- ``"rank"``: a simple rescaling, not from the paper: M evaluated at the moment estimate of
  the full rank, R̂ = 1 + (r − 1)(n − 1)/m, since E[r − 1 | R] = m (R − 1)/(n − 1).

Metrics of one relevant item at full rank R with cut-off k (all zero when R > k):
HR / HIT_RATE / RECALL / RECALL_MIN = 1; PRECISION = 1/k; NDCG / NDCG_TRUNC = 1/log2(R + 1);
MAP / MRR = 1/R. The corrected per-user value of a user with sampled rank r and n rankable
items is M̃_{n,m}(r); n varies by user (seen items are removed), so tables are solved per
distinct n, or, with more than 64 distinct n, on a geometric grid of n (neighbours within
1 % where 64 points allow) and interpolated linearly in n, which moves M̃ by far less than its
sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np

__all__ = [
    "CORRECTABLE_METRICS",
    "Correction",
    "correct_sampled",
    "corrected_table",
    "rank_law",
    "single_item_metric",
]

Correction = Literal["bv", "ls", "rank", "none"]

CORRECTABLE_METRICS: tuple[str, ...] = (
    "HR", "HIT_RATE", "RECALL", "RECALL_MIN", "PRECISION", "NDCG", "NDCG_TRUNC", "MAP", "MRR",
)

_MAX_TABLES = 64


def single_item_metric(metric: str, k: int, ranks: np.ndarray) -> np.ndarray:
    """Metric@k of one relevant item at 1-based ``ranks`` (float64, 0 where rank > k)."""
    r = np.asarray(ranks, dtype=np.float64)
    m = metric.upper()
    hit = (r >= 1) & (r <= k)
    if m in ("HR", "HIT_RATE", "RECALL", "RECALL_MIN"):
        v = np.ones_like(r)
    elif m == "PRECISION":
        v = np.full_like(r, 1.0 / k)
    elif m in ("NDCG", "NDCG_TRUNC"):
        v = 1.0 / np.log2(np.maximum(r, 1.0) + 1.0)
    elif m in ("MAP", "MRR"):
        v = 1.0 / np.maximum(r, 1.0)
    else:
        raise ValueError(
            f"metric {metric!r} has no single-item form to correct; correctable: "
            f"{', '.join(CORRECTABLE_METRICS)}"
        )
    return np.where(hit, v, 0.0)


def rank_law(n: int, m: int) -> np.ndarray:
    """A[R−1, r−1] = P(sampled rank r | full rank R): (n, m + 1), rows sum to 1.

    ``n`` rankable items (the relevant one included), ``m`` negatives drawn uniformly without
    replacement from the other n − 1 (hypergeometric, computed through log-gamma).
    """
    if m < 1 or n < m + 1:
        raise ValueError(f"rank_law needs 1 <= m <= n - 1, got n={n}, m={m}")
    return _rank_law(int(n), int(m)).copy()


@lru_cache(maxsize=64)
def _rank_law(n: int, m: int) -> np.ndarray:
    from scipy.special import gammaln

    def lchoose(a: Any, b: Any) -> Any:
        return gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1)

    above = np.arange(n, dtype=np.float64)[:, None]  # R - 1 items rank above the relevant one
    drawn_above = np.arange(m + 1, dtype=np.float64)[None, :]  # r - 1 of them were drawn
    below = (n - 1) - above
    drawn_below = m - drawn_above
    ok = (drawn_above <= above) & (drawn_below <= below)
    with np.errstate(invalid="ignore"):
        logp = (lchoose(above, np.minimum(drawn_above, above))
                + lchoose(below, np.minimum(drawn_below, below))
                - lchoose(np.float64(n - 1), np.float64(m)))
    out = np.where(ok, np.exp(logp), 0.0)
    out /= out.sum(axis=1, keepdims=True)  # exact up to rounding; renormalise the last ulps
    return out


Spec = tuple[tuple[str, int], ...]  # (metric, cut-off) pairs


@lru_cache(maxsize=256)
def _tables(specs: Spec, n: int, m: int, method: str, gamma: float) -> np.ndarray:
    """(len(specs), m + 1): one corrected table per (metric, cut-off), one solve for all."""
    r = np.arange(1, m + 2, dtype=np.float64)
    if method == "none":
        return np.stack([single_item_metric(mt, k, r) for mt, k in specs])
    if method == "rank":
        est = 1.0 + (r - 1.0) * (n - 1) / m
        return np.stack([single_item_metric(mt, k, est) for mt, k in specs])
    from threadpoolctl import threadpool_limits

    a = _rank_law(n, m)
    full = np.arange(1, n + 1)
    b = np.stack([single_item_metric(mt, k, full) for mt, k in specs], axis=1)  # (n, specs)
    p = np.full(n, 1.0 / n)  # the paper's uniform prior over full ranks
    ap = a * p[:, None]
    c = ap.sum(axis=0)
    g = 0.0 if method == "ls" else gamma
    # A few MFLOP: one BLAS thread is ~25x faster than a pool fighting a loaded machine.
    with threadpool_limits(1):
        lhs = (1.0 - g) * (a.T @ ap) + g * np.diag(c)
        rhs = ap.T @ b
        # lstsq: with gamma = 0 the normal equations are ill-conditioned (min-norm solution).
        sol, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
    return np.ascontiguousarray(np.asarray(sol, dtype=np.float64).T)


def corrected_table(
    metric: str, k: int, n: int, m: int, *, method: Correction = "bv", gamma: float = 0.1
) -> np.ndarray:
    """M̃(r) for r = 1..m+1 (length m + 1) for ``metric@k`` with n rankable items, m negatives."""
    _check(method, gamma)
    if k < 1:
        raise ValueError(f"cut-off must be >= 1, got {k}")
    if m < 1 or n < m + 1:
        raise ValueError(f"need 1 <= m <= n - 1 negatives, got n={n}, m={m}")
    _ = single_item_metric(metric, k, np.ones(1))  # names an unknown metric
    return _tables(((metric.upper(), int(k)),), int(n), int(m), method, float(gamma))[0].copy()


def _check(method: str, gamma: float) -> None:
    if method not in ("bv", "ls", "rank", "none"):
        raise ValueError(f"correction must be 'bv', 'ls', 'rank' or 'none', got {method!r}")
    if not 0.0 <= gamma <= 1.0 or math.isnan(gamma):
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")


def _grid(lo: int, hi: int) -> np.ndarray:
    """At most ``_MAX_TABLES`` integer n from lo to hi, geometric, neighbours <= 1 % apart
    where the budget allows; both ends included."""
    if hi <= lo:
        return np.array([lo], dtype=np.int64)
    steps = min(_MAX_TABLES - 1, max(1, math.ceil(math.log(hi / lo) / math.log(1.01))))
    g = np.unique(np.round(np.geomspace(lo, hi, steps + 1)).astype(np.int64))
    g[0], g[-1] = lo, hi
    return np.unique(g)


def correct_sampled(
    metrics: Sequence[str],
    cutoffs: Sequence[int],
    sampled_ranks: np.ndarray,
    n_rankable: np.ndarray,
    m: int,
    *,
    method: Correction = "bv",
    gamma: float = 0.1,
) -> dict[str, np.ndarray]:
    """Per-user corrected values ``"METRIC@k" -> (users,)`` from sampled ranks.

    ``sampled_ranks``: 1-based rank of each user's relevant item among itself and its ``m``
    negatives (0 = not ranked, e.g. the item was removed as seen: the value is 0).
    ``n_rankable``: each user's n (items a full ranking would rank, the relevant one
    included). Users share tables by n: with at most 64 distinct n each gets its exact table;
    otherwise tables are solved on a geometric grid of n (at most 64 points, neighbours
    within 1 % where that fits) and each user's values are interpolated linearly in n.
    """
    _check(method, gamma)
    specs: Spec = tuple((str(mt).upper(), int(k)) for mt in metrics for k in cutoffs)
    for mt, k in specs:
        single_item_metric(mt, k, np.ones(1))  # names an unknown metric before any work
        if k < 1:
            raise ValueError(f"cut-off must be >= 1, got {k}")
    ranks = np.asarray(sampled_ranks, dtype=np.int64)
    n = np.asarray(n_rankable, dtype=np.int64)
    if ranks.shape != n.shape or ranks.ndim != 1:
        raise ValueError(f"sampled_ranks {ranks.shape} and n_rankable {n.shape} must align (1-d)")
    if ranks.size and (ranks.min() < 0 or ranks.max() > m + 1):
        raise ValueError(f"sampled ranks must lie in [0, {m + 1}] (0 = not ranked)")
    if n.size and n.min() < m + 1:
        raise ValueError(f"every user needs n >= m + 1 = {m + 1} rankable items; min is {n.min()}")
    vals = np.zeros((len(specs), ranks.size))
    ranked = np.flatnonzero(ranks > 0)
    if ranked.size:
        rr, nn = ranks[ranked] - 1, n[ranked]
        distinct = np.unique(nn)
        grid = distinct if distinct.size <= _MAX_TABLES else _grid(int(nn.min()), int(nn.max()))
        tabs = np.stack([_tables(specs, int(g), int(m), method, float(gamma)) for g in grid])
        hi = np.minimum(np.searchsorted(grid, nn), grid.size - 1)
        lo = np.maximum(hi - 1, 0)
        exact = grid[hi] == nn
        lo[exact] = hi[exact]
        span = (grid[hi] - grid[lo]).astype(np.float64)
        t = np.divide(nn - grid[lo], span, out=np.zeros(nn.size), where=span > 0)
        vals[:, ranked] = ((1.0 - t) * tabs[lo, :, rr].T + t * tabs[hi, :, rr].T)
    return {f"{mt}@{k}": vals[i] for i, (mt, k) in enumerate(specs)}
