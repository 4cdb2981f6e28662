"""The evaluator's candidate-only scoring path for pairwise models (``supports_candidates``)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from evaluation_helpers import interactions

from recforge.data.interactions import Interactions
from recforge.evaluation import Evaluator
from recforge.models.base import Recommender


class PairwiseDot(Recommender):
    """Dot products of seeded random factors, scored pair by pair; counts what it scored."""

    name = "PairwiseDot"
    supports_candidates = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, train: Interactions) -> None:
        rng = np.random.default_rng(self.seed)
        # few distinct values, so that ties occur and the tie rule is exercised too
        self.p_ = rng.integers(0, 3, (train.n_users, 2)).astype(np.float32)
        self.q_ = rng.integers(0, 3, (train.n_items, 2)).astype(np.float32)
        self.full_calls_ = 0
        self.pairs_scored_ = 0

    def _score(self, users: np.ndarray) -> np.ndarray:
        self.full_calls_ += 1
        return self.p_[users] @ self.q_.T

    def _score_candidates(self, users: np.ndarray, items: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(users, np.diff(items.indptr))
        self.pairs_scored_ += int(items.nnz)
        return np.einsum("ij,ij->i", self.p_[rows], self.q_[items.indices])


class FullDot(PairwiseDot):
    """The same scores, through the full-block path."""

    name = "FullDot"
    supports_candidates = False


def _setup(seed: int = 3) -> tuple[Interactions, Interactions, sp.csr_matrix]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 12, 40
    train = interactions([list(rng.choice(n_items, 4, replace=False)) for _ in range(n_users)],
                         n_items)  # fmt: skip
    test = interactions([list(rng.choice(n_items, 1)) for _ in range(n_users)], n_items)
    neg = sp.csr_matrix(
        (np.ones(n_users * 9, np.float32),
         (np.repeat(np.arange(n_users), 9), rng.integers(0, n_items, n_users * 9))),
        shape=(n_users, n_items),
    )  # fmt: skip
    return train, test, neg


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_pairwise_candidate_scores_rank_exactly_like_full_scores(backend: str) -> None:
    train, test, neg = _setup()
    kw = {"cutoffs": [1, 5], "metrics": ["HR", "NDCG", "MRR"], "exclude": train,
          "candidates": neg, "backend": backend, "memory_budget_mb": 40 * 4 * 5 / 2**20}
    pairwise = PairwiseDot(seed=1).fit(train)
    full = FullDot(seed=1).fit(train)
    a = Evaluator(test, **kw).evaluate(pairwise)  # type: ignore[arg-type]
    b = Evaluator(test, **kw).evaluate(full)  # type: ignore[arg-type]
    assert a.meta["scored"] == "candidate pairs" and b.meta["scored"] == "all items"
    assert a.meta["n_batches"] > 1
    for key in b.per_user:
        np.testing.assert_array_equal(a.per_user[key], b.per_user[key])
    # only candidate pairs were scored: (test ∪ negatives) minus the training items, per user
    expected = sum(
        len((set(test.matrix[u].indices) | set(neg[u].indices)) - set(train.matrix[u].indices))
        for u in range(test.n_users)
    )
    assert pairwise.full_calls_ == 0
    assert pairwise.pairs_scored_ == expected
    assert full.pairs_scored_ == 0 and full.full_calls_ > 0


def test_full_protocol_and_fold_in_profiles_use_full_scores() -> None:
    train, test, _ = _setup()
    model = PairwiseDot().fit(train)
    res = Evaluator(test, cutoffs=[3], metrics=["HR"], exclude=train).evaluate(model)
    assert res.meta["scored"] == "all items" and model.pairs_scored_ == 0
    assert model.full_calls_ == 1
