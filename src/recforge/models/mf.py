"""PureSVD; iALS lives in :mod:`recforge.models.ials`, EASE in :mod:`recforge.models.ease`.

PureSVD learns from the *binarised* training matrix (every stored value -> 1), like the
RecSys'19 paper. Its search space is a plain dict on the class (``search_space``), read by
:mod:`recforge.tuning`.

``EASE``, ``IALS``, ``IterativeRecommender``, ``binary_matrix`` and ``profile_matrix`` are
re-exported here from their new homes for one release.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import positive_int
from recforge.models.base import Recommender, SearchSpace
from recforge.models.ease import EASE
from recforge.models.ials import IALS
from recforge.models.iterative import IterativeRecommender
from recforge.models.params import Param

__all__ = ["EASE", "IALS", "IterativeRecommender", "PureSVD", "binary_matrix", "profile_matrix"]

log = logging.getLogger(__name__)


def profile_matrix(profiles: Interactions | sp.spmatrix, n_items: int, model: str) -> sp.csr_matrix:
    """Deprecated (use ``score_profiles``, which checks the profiles): binarised profiles."""
    m = binary_matrix(profiles)
    if m.shape[1] != n_items:
        raise ValueError(
            f"{model}.score_profiles: profiles have {m.shape[1]} item columns, "
            f"the model was fitted on {n_items} items"
        )
    return m


# --------------------------------------------------------------------------- PureSVD
class PureSVD(Recommender):
    """PureSVD (Cremonesi et al. 2010): truncated SVD of the binary user-item matrix.

    ``R ~ U S V^T`` by :func:`sklearn.utils.extmath.randomized_svd` (seeded, unlike the paper);
    scores are ``(R_u V) V^T``, which equals ``U_u S V^T`` for an exact SVD and also scores
    fold-in profiles. ``num_factors`` above ``min(R.shape)`` is clipped; the value used is
    ``n_factors_`` and ``clipped_`` says whether clipping happened.
    """

    name = "PureSVD"
    supports_profiles = True
    search_space: ClassVar[SearchSpace] = {"num_factors": {"type": "int", "low": 1, "high": 250}}
    param_rules: ClassVar[dict[str, Param]] = {"num_factors": Param(ge=1)}

    def __init__(self, num_factors: int = 50, seed: int = 0) -> None:
        self.num_factors = num_factors
        self.seed = seed

    _test_params: ClassVar[dict[str, Any]] = {"num_factors": 4}

    def _fit(self, train: Interactions) -> None:
        from sklearn.utils.extmath import randomized_svd

        k = positive_int(self.num_factors, "num_factors", "PureSVD")
        r = binary_matrix(train)
        limit = min(r.shape)
        if limit < 1:
            raise ValueError(f"PureSVD: training matrix has shape {r.shape}; nothing to factorise")
        self.clipped_ = k > limit
        if self.clipped_:
            log.warning("PureSVD: num_factors=%d clipped to min(R.shape)=%d", k, limit)
            k = limit
        _, s, vt = randomized_svd(r, n_components=k, random_state=self.seed)
        self.n_factors_ = k
        self.singular_values_ = s.astype(np.float32)
        self.item_factors_ = np.ascontiguousarray(vt.T, dtype=np.float32)  # V: items x k
        self.train_matrix_ = r

    def _project(self, rows: sp.csr_matrix) -> np.ndarray:
        v = self.item_factors_
        return np.asarray(rows @ v, dtype=np.float32) @ v.T

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._project(self.train_matrix_[users])

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._project(binary_matrix(profiles))
