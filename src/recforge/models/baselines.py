"""Non-personalised baselines: TopPopular and Random."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

__all__ = ["Random", "TopPopular"]


class TopPopular(Recommender):
    """Score of item i = number of training users who interacted with i (the paper's TopPop)."""

    name = "TopPopular"
    supports_profiles = True

    def __init__(self) -> None:
        pass

    def _fit(self, train: Interactions) -> None:
        self.popularity_ = train.item_counts().astype(np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        # A read-only broadcast view: the evaluator never copies it.
        return np.broadcast_to(self.popularity_, (len(users), self.popularity_.size))

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._score(np.arange(profiles.shape[0]))


class Random(Recommender):
    """Uniform random scores; reproducible from ``seed`` for a given sequence of score calls.

    Scores depend on (seed, user id) only, so batching does not change them.
    """

    name = "Random"
    _test_params: ClassVar[dict[str, Any]] = {"seed": 3}

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def _fit(self, train: Interactions) -> None:
        pass

    def _score(self, users: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        for row, u in enumerate(users):
            rng = np.random.default_rng((self.seed, int(u)))
            out[row] = rng.random(self.n_items_, dtype=np.float32)
        return out
