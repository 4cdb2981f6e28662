"""Test helpers: a fixed-score model and a plain per-user Python reference of every metric."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender


class FixedScores(Recommender):
    """Returns rows of a given dense score matrix (float32) for the users fitted on."""

    name = "FixedScores"

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def _fit(self, train: Interactions) -> None:
        self.scores_ = np.asarray(self.scores, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.scores_[users]


def fixed_scores(scores: np.ndarray | list[list[float]]) -> FixedScores:
    """A FixedScores fitted on an empty train matrix of the scores' shape."""
    s = np.asarray(scores, dtype=np.float32)
    return FixedScores(s).fit(Interactions(sp.csr_matrix(s.shape, dtype=np.float32)))


def interactions(rows: list[list[int]], n_items: int) -> Interactions:
    """Interactions with user u holding the items in rows[u]."""
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.array([i for r in rows for i in r], dtype=np.int64)
    return Interactions.from_arrays(users, items, shape=(len(rows), n_items))


def reference_list(
    scores: np.ndarray, excluded: set[int], candidates: set[int] | None, k: int
) -> list[int]:
    """Ranked list by (score desc, item asc); excluded, non-candidate and -inf items dropped."""
    pool = [
        j
        for j in range(scores.size)
        if j not in excluded and (candidates is None or j in candidates) and scores[j] != -math.inf
    ]
    pool.sort(key=lambda j: (-float(scores[j]), j))
    return pool[:k]


def reference_metrics(ranked: list[int], test: set[int], k: int) -> dict[str, float]:
    """Every accuracy metric for one user, written out directly from the definitions."""
    rel = [1 if j in test else 0 for j in ranked[:k]]
    hits = sum(rel)
    n_t = len(test)
    dcg = sum(r / math.log2(i + 2) for i, r in enumerate(rel))
    idcg = sum(1 / math.log2(j + 2) for j in range(n_t))
    idcg_trunc = sum(1 / math.log2(j + 2) for j in range(min(k, n_t)))
    ap = sum(sum(rel[: i + 1]) / (i + 1) * rel[i] for i in range(len(rel))) / min(k, n_t)
    first = next((i for i, r in enumerate(rel) if r), None)
    return {
        "HR": float(hits),
        "HIT_RATE": float(hits > 0),
        "PRECISION": hits / len(rel) if rel else 0.0,
        "RECALL": hits / n_t,
        "RECALL_MIN": hits / min(k, n_t),
        "NDCG": dcg / idcg,
        "NDCG_TRUNC": dcg / idcg_trunc,
        "MAP": ap,
        "MRR": 0.0 if first is None else 1 / (first + 1),
    }
