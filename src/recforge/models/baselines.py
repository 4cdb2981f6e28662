"""Non-personalised baselines: TopPopular and Random."""

from __future__ import annotations

from typing import Self

import numpy as np

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

__all__ = ["Random", "TopPopular"]


class TopPopular(Recommender):
    """Score of item i = number of training users who interacted with i (the paper's TopPop)."""

    name = "TopPopular"
    supports_profiles = True

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions) -> Self:
        self.popularity_ = train.item_counts().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted("popularity_")
        return np.broadcast_to(self.popularity_, (len(users), self.popularity_.size))

    def score_profiles(self, profiles):  # type: ignore[no-untyped-def]
        return self.score(np.arange(profiles.shape[0]))


class Random(Recommender):
    """Uniform random scores; reproducible from ``seed`` for a given sequence of score calls.

    Scores depend on (seed, user id) only, so batching does not change them.
    """

    name = "Random"
    supports_profiles = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, train: Interactions) -> Self:
        self.n_items_ = train.n_items
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted("n_items_")
        out = np.empty((len(users), self.n_items_), dtype=np.float32)
        for row, u in enumerate(np.asarray(users)):
            rng = np.random.default_rng((self.seed, int(u)))
            out[row] = rng.random(self.n_items_, dtype=np.float32)
        return out
