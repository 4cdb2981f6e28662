"""The numbers a report shows besides the metrics: dataset and split statistics, and what the
models recommended measured against the training popularity.

Both are computed by the runner while it still holds the split and the evaluator's counts, and
stored (``data.json`` / ``results.json``), so a report can be re-rendered from stored results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from recforge.stats import gini

if TYPE_CHECKING:
    from recforge.data.split import Split

__all__ = ["N_POPULARITY_BINS", "recommendation_profile", "split_statistics"]

#: Items are ranked by training popularity and cut into this many equal-sized bins (deciles).
N_POPULARITY_BINS = 10


def split_statistics(split: Split) -> dict[str, Any]:
    """Users, items, density, popularity Gini and cold-start counts of one split.

    ``density`` is the training matrix's share of filled user-item cells; ``popularity_gini``
    the Gini of training interactions per item (:func:`recforge.stats.gini`). A test user (item)
    is *cold-start* when it has no training interaction.
    """
    train = split.train
    n_users, n_items = train.shape
    train_users = train.user_counts() > 0
    train_items = train.item_counts() > 0
    out: dict[str, Any] = {
        "users": int(n_users),
        "items": int(n_items),
        "train_interactions": int(train.nnz),
        "train_users": int(train_users.sum()),
        "train_items": int(train_items.sum()),
        "density": float(train.nnz / (n_users * n_items)) if n_users and n_items else 0.0,
        "popularity_gini": float(gini(train.item_counts())),
        "interactions_per_user": float(train.nnz / max(1, int(train_users.sum()))),
    }
    for name in ("validation", "test"):
        part = getattr(split, name)
        if part is None:
            continue
        users = part.user_counts() > 0
        items = part.item_counts() > 0
        out[name] = {
            "interactions": int(part.nnz),
            "users": int(users.sum()),
            "items": int(items.sum()),
            "cold_start_users": int((users & ~train_users).sum()),
            "cold_start_items": int((items & ~train_items).sum()),
        }
    if split.test_profiles is not None:  # held-out users: the fold-in profiles are their history
        out["test"]["cold_start_users"] = int(
            ((split.test.user_counts() > 0) & ~(split.test_profiles.user_counts() > 0)).sum()
        )
    return out


def recommendation_profile(
    recommended: dict[int, np.ndarray], train_item_counts: np.ndarray
) -> dict[str, Any]:
    """Coverage, concentration and popularity of the recommended items, per cut-off.

    Args:
        recommended: cut-off -> times each item was recommended (``EvaluationResult.recommended``).
        train_item_counts: training interactions per item.

    Returns per cut-off ``k``: ``coverage`` (share of items recommended at least once),
    ``gini`` of the recommendation counts, ``avg_popularity`` (mean training count of a
    recommended item, per recommendation) and, at the largest cut-off, ``bins``: the items ranked
    by training popularity (most popular first, ties by item index) and cut into
    :data:`N_POPULARITY_BINS` equal bins, with each bin's share of the training interactions and
    of the recommendations. A model without popularity bias has both shares alike.
    """
    pop = np.asarray(train_item_counts, dtype=np.float64)
    order = np.lexsort((np.arange(pop.size), -pop))
    n_bins = max(1, min(N_POPULARITY_BINS, pop.size))  # never an empty bin
    edges = np.linspace(0, pop.size, n_bins + 1).round().astype(np.int64)
    per_k: dict[str, Any] = {}
    for k in sorted(recommended):
        c = np.asarray(recommended[k], dtype=np.float64)
        if c.shape != pop.shape:
            raise ValueError(f"recommended[{k}] has {c.size} items, training has {pop.size}")
        total = c.sum()
        per_k[str(k)] = {
            "coverage": float((c > 0).mean()) if c.size else 0.0,
            "gini": float(gini(c)),
            "avg_popularity": float(c @ pop / total) if total else 0.0,
        }
    kmax = max(recommended)
    c = np.asarray(recommended[kmax], dtype=np.float64)[order]
    p = pop[order]
    train_share = np.add.reduceat(p, edges[:-1]) / max(p.sum(), 1.0)
    rec_share = np.add.reduceat(c, edges[:-1]) / max(c.sum(), 1.0)
    return {
        "cutoffs": per_k,
        "bins": {
            "cutoff": int(kmax),
            "n_bins": n_bins,
            "items_per_bin": np.diff(edges).tolist(),
            "train_share": train_share.tolist(),
            "recommended_share": rec_share.tolist(),
        },
        "train_avg_popularity": float(p @ p / p.sum()) if p.sum() else 0.0,
    }
