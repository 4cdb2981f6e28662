"""Neighbourhood models of the RecSys'19 paper: ItemKNN CF, UserKNN CF, ItemKNN CBF and CFCBF.

All similarities, shrink and top-K rules are those of :func:`recforge.models.similarity.
compute_similarity` (paper §4.1-4.2). Feature weighting (paper §4.3), our reading:

- CF models weight the rows of ``R^T`` (items x users): every item is a "document", every user a
  "term", so ``N`` = number of items, ``df`` = a user's profile length and BM25's length norm uses
  item popularity. UserKNN uses the very same weighted matrix (the paper's code weights
  ``URM.T`` and transposes back in both models), then compares users (columns of ``R_w^T``).
- For the CF models the weighted matrix ``R_w`` **replaces the training matrix for scoring as
  well**: ItemKNN scores ``R_w[u] @ W`` and UserKNN ``W_user[u] @ R_w`` (the 2019 code).
  UserKNN offers the other reading by name, ``score_with="unweighted"``: the similarity is
  computed on ``R_w`` but users are scored with the unweighted ``R`` (``W_user[u] @ R``), which
  is how the TOIS 2021 numbers behave where UserKNN uses TF-IDF or BM25. With TF-IDF on binary
  data ``R_w`` scales each user's row by one constant ``log(N / (1 + |I_u|))``, so the cosine
  similarity is that of ``R``: "unweighted" then scores exactly like no weighting, while
  "weighted" scales each neighbour's vote by its constant (short profiles count more).
- CBF weights the rows of the ICM (items x features); CFCBF weights the whole concatenation
  ``[icm_weight * ICM | R^T]``. Both score with the unweighted ``R``.

UserKNN scores with the ROWS of the column-wise top-K matrix, as the paper does: user u's score
draws on the users that keep u among their top-K neighbours (for a symmetric similarity the
values are the same, the neighbour sets may differ from u's own top-K).

Each class carries its paper search space (§1.4) as ``search_space`` (the cosine search, the one
the paper's tables report) and ``search_space_for(similarity)`` (the paper ran one search per
similarity in ``searched_similarities``). Specs are plain dicts: ``{"type": "int", "low", "high"}``,
``{"type": "float", "low", "high", "log"}``, ``{"type": "categorical", "choices"}``; a fixed value
is a one-choice categorical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._validation import optional_threads
from recforge.models.base import Recommender
from recforge.models.params import Param
from recforge.models.similarity import SIMILARITIES, compute_similarity, sparse_dense_product
from recforge.models.weighting import bm25, tfidf, weight_new_columns

__all__ = [
    "FEATURE_WEIGHTINGS",
    "SCORE_WITH",
    "SEARCHED_SIMILARITIES",
    "ItemKNNCBF",
    "ItemKNNCF",
    "ItemKNNCFCBF",
    "UserKNNCF",
    "knn_search_space",
]

FEATURE_WEIGHTINGS: tuple[str, ...] = ("none", "TF-IDF", "BM25")
#: similarities the paper searched separately (pearson/adjusted exist but were not searched).
SEARCHED_SIMILARITIES: tuple[str, ...] = ("cosine", "jaccard", "asymmetric", "dice", "tversky")
_SET_SIMILARITIES = ("jaccard", "dice", "tversky")
#: UserKNN's scoring matrix when weighting: the weighted one (2019 code) or the raw one (TOIS).
SCORE_WITH: tuple[str, ...] = ("weighted", "unweighted")


def knn_search_space(
    similarity: str, *, allow_weighting: bool = True, icm_weight: bool = False
) -> dict[str, dict[str, Any]]:
    """The paper's search space (2019 code) for one similarity; see the module docstring."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of {list(SIMILARITIES)}")
    space: dict[str, dict[str, Any]] = {
        "top_k": {"type": "int", "low": 5, "high": 800},
        "shrink": {"type": "int", "low": 0, "high": 1000},
        "similarity": {"type": "categorical", "choices": [similarity]},
        # jaccard and dice keep this (useless) dimension, as in the paper's search.
        "normalize": {"type": "categorical", "choices": [True, False]},
    }
    if similarity == "asymmetric":
        space["asymmetric_alpha"] = {"type": "float", "low": 0.0, "high": 2.0, "log": False}
        space["normalize"] = {"type": "categorical", "choices": [True]}
    elif similarity == "tversky":
        space["tversky_alpha"] = {"type": "float", "low": 0.0, "high": 2.0, "log": False}
        space["tversky_beta"] = {"type": "float", "low": 0.0, "high": 2.0, "log": False}
        space["normalize"] = {"type": "categorical", "choices": [True]}
    if allow_weighting and similarity not in _SET_SIMILARITIES:
        space["feature_weighting"] = {
            "type": "categorical",
            "choices": ["none", "BM25", "TF-IDF"],
        }
    if icm_weight:
        space["icm_weight"] = {"type": "float", "low": 1e-2, "high": 1e2, "log": True}
    return space


class _ItemBased(Recommender):
    """Scoring shared by models with an items x items ``W_``: a user's row times ``W_``.

    Subclasses fit ``W_`` and ``train_matrix_`` (users x items, as scored) and override
    :meth:`_fold_in` where new profiles need the training rows' preparation.
    """

    supports_profiles = True
    W_: sp.csr_matrix
    train_matrix_: sp.csr_matrix
    n_threads: int | None

    def _fold_in(self, profiles: sp.csr_matrix) -> sp.csr_matrix:
        """Checked fold-in profiles as the training rows were prepared; as given by default."""
        return profiles

    def _score(self, users: np.ndarray) -> np.ndarray:
        return sparse_dense_product(self.train_matrix_[users], self.W_, self.n_threads)

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return sparse_dense_product(self._fold_in(profiles), self.W_, self.n_threads)


class _KNN(Recommender):
    """Shared hyper-parameters, validation and similarity call."""

    searched_similarities: ClassVar[tuple[str, ...]] = SEARCHED_SIMILARITIES
    search_space: ClassVar[dict[str, dict[str, Any]]] = knn_search_space("cosine")
    param_rules: ClassVar[dict[str, Param]] = {
        "top_k": Param(ge=1), "shrink": Param(ge=0), "similarity": Param(choices=SIMILARITIES),
        "feature_weighting": Param(choices=FEATURE_WEIGHTINGS),
        "asymmetric_alpha": Param(ge=0), "tversky_alpha": Param(ge=0),
        "tversky_beta": Param(ge=0), "memory_budget_mb": Param(gt=0), "n_threads": Param(ge=1),
        "tie_rule": Param(choices=("lower-index", "numpy-legacy")),
    }
    _test_params: ClassVar[dict[str, Any]] = {"top_k": 5, "shrink": 2, "n_threads": 1}

    def __init__(
        self,
        top_k: int = 100,
        shrink: float = 0,
        similarity: str = "cosine",
        normalize: bool = True,
        feature_weighting: str = "none",
        asymmetric_alpha: float = 0.5,
        tversky_alpha: float = 1.0,
        tversky_beta: float = 1.0,
        memory_budget_mb: float = 512.0,
        n_threads: int | None = None,
        tie_rule: str = "lower-index",
    ) -> None:
        self.top_k = top_k
        self.shrink = shrink
        self.similarity = similarity
        self.normalize = normalize
        self.feature_weighting = feature_weighting
        self.asymmetric_alpha = asymmetric_alpha
        self.tversky_alpha = tversky_alpha
        self.tversky_beta = tversky_beta
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads
        # "numpy-legacy": the paper's neighbour order among tied similarities (fidelity only).
        self.tie_rule = tie_rule

    @classmethod
    def search_space_for(cls, similarity: str) -> dict[str, dict[str, Any]]:
        """The paper's search space when searching ``similarity`` alone."""
        return knn_search_space(similarity)

    @classmethod
    def space_for(cls, fixed_params: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """``search_space_for(similarity)`` when the similarity is fixed, else the cosine space."""
        fixed = dict(fixed_params or {})
        space = (
            cls.search_space_for(fixed["similarity"]) if "similarity" in fixed else cls.search_space
        )
        return {k: dict(v) for k, v in space.items() if k not in fixed}

    def _validate(self) -> None:
        who = type(self).__name__
        optional_threads(self.n_threads, who)
        if self.similarity not in SIMILARITIES:
            raise ValueError(
                f"{who}: unknown similarity {self.similarity!r}; choose one of {list(SIMILARITIES)}"
            )
        if self.feature_weighting not in FEATURE_WEIGHTINGS:
            raise ValueError(
                f"{who}: unknown feature_weighting {self.feature_weighting!r}; "
                f"choose one of {list(FEATURE_WEIGHTINGS)}"
            )

    def _weigh(self, rows_matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.feature_weighting == "TF-IDF":
            return tfidf(rows_matrix)
        if self.feature_weighting == "BM25":
            return bm25(rows_matrix)
        return sp.csr_matrix(rows_matrix, dtype=np.float32)

    def _similarity(self, x: sp.spmatrix) -> sp.csr_matrix:
        return compute_similarity(
            x,
            similarity=self.similarity,
            shrink=self.shrink,
            top_k=self.top_k,
            normalize=self.normalize,
            asymmetric_alpha=self.asymmetric_alpha,
            tversky_alpha=self.tversky_alpha,
            tversky_beta=self.tversky_beta,
            memory_budget_mb=self.memory_budget_mb,
            n_threads=self.n_threads,
            tie_rule=self.tie_rule,
        )


class ItemKNNCF(_ItemBased, _KNN):
    """Item-based CF: ``W`` = top-K item-item similarity of ``R_w``; score = ``R_w[u] @ W``.

    Fitted: ``W_`` (items x items, ``W_[i, j]`` = weight of neighbour i for target j),
    ``train_matrix_`` (the, possibly weighted, users x items matrix used for scoring) and
    ``item_row_sums_`` (item sums of the unweighted ``R``, for BM25 on new profiles).
    """

    name = "ItemKNNCF"
    supports_profiles = True
    search_space: ClassVar[dict[str, dict[str, Any]]] = knn_search_space("cosine")

    def _fit(self, train: Interactions) -> None:
        self._validate()
        r = train.matrix
        weighted = self._weigh(r.T.tocsr()).T.tocsr() if self.feature_weighting != "none" else r
        self.item_row_sums_ = np.asarray(r.sum(axis=0), dtype=np.float64).ravel()
        self.W_ = self._similarity(weighted)
        self.train_matrix_ = sp.csr_matrix(weighted, dtype=np.float32)

    def _fold_in(self, profiles: sp.csr_matrix) -> sp.csr_matrix:
        """Fold-in profiles are weighted like the training users."""
        if self.feature_weighting == "none":
            return profiles
        return weight_new_columns(
            profiles,
            self.feature_weighting,
            n_rows=profiles.shape[1],
            row_sums=self.item_row_sums_,
        )


class UserKNNCF(_KNN):
    """User-based CF: ``W_user`` = top-K user-user similarity of ``R_w``; score =
    ``W_user[u] @ R_w`` (``score_with="weighted"``, the 2019 code) or ``W_user[u] @ R``
    (``"unweighted"``, the journal version's behaviour); see the module docstring.

    Fitted: ``W_`` (users x users) and ``train_matrix_`` (the users x items matrix scored with).
    """

    name = "UserKNNCF"
    supports_profiles = False
    search_space: ClassVar[dict[str, dict[str, Any]]] = knn_search_space("cosine")
    param_rules: ClassVar[dict[str, Param]] = {
        **_KNN.param_rules, "score_with": Param(choices=SCORE_WITH),
    }

    def __init__(
        self,
        top_k: int = 100,
        shrink: float = 0,
        similarity: str = "cosine",
        normalize: bool = True,
        feature_weighting: str = "none",
        asymmetric_alpha: float = 0.5,
        tversky_alpha: float = 1.0,
        tversky_beta: float = 1.0,
        memory_budget_mb: float = 512.0,
        n_threads: int | None = None,
        tie_rule: str = "lower-index",
        score_with: str = "weighted",
    ) -> None:
        super().__init__(
            top_k=top_k, shrink=shrink, similarity=similarity, normalize=normalize,
            feature_weighting=feature_weighting, asymmetric_alpha=asymmetric_alpha,
            tversky_alpha=tversky_alpha, tversky_beta=tversky_beta,
            memory_budget_mb=memory_budget_mb, n_threads=n_threads, tie_rule=tie_rule,
        )
        self.score_with = score_with

    def _fit(self, train: Interactions) -> None:
        self._validate()
        if self.score_with not in SCORE_WITH:
            raise ValueError(f"UserKNNCF: unknown score_with {self.score_with!r}; choose one "
                             f"of {list(SCORE_WITH)}")
        r = train.matrix
        weighted_t = self._weigh(r.T.tocsr()) if self.feature_weighting != "none" else r.T
        self.W_ = self._similarity(weighted_t)
        scored = weighted_t.T if self.score_with == "weighted" else r
        self.train_matrix_ = sp.csr_matrix(scored, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return sparse_dense_product(self.W_[users], self.train_matrix_, self.n_threads)


class ItemKNNCBF(_ItemBased, _KNN):
    """Item-based content KNN: similarity of the (weighted) ICM rows; score = ``R[u] @ W``.

    Needs ``train.item_features`` (items x features). Fitted: ``W_`` and ``train_matrix_``
    (the unweighted ``R``).
    """

    name = "ItemKNNCBF"
    supports_profiles = True
    search_space: ClassVar[dict[str, dict[str, Any]]] = knn_search_space("cosine")

    @classmethod
    def search_space_for(
        cls, similarity: str, allow_weighting: bool = True
    ) -> dict[str, dict[str, Any]]:
        """Paper space; the CVAE script searched without weighting (``allow_weighting=False``)."""
        return knn_search_space(similarity, allow_weighting=allow_weighting)

    def _features(self, train: Interactions) -> sp.csr_matrix:
        if train.item_features is None:
            raise ValueError(
                f"{type(self).__name__} needs item features: train.item_features is None "
                f"({train!r}); build the Interactions with item_features=ICM (items x features)"
            )
        return sp.csr_matrix(train.item_features, dtype=np.float32)

    def _fit(self, train: Interactions) -> None:
        self._validate()
        icm = self._weigh(self._features(train))
        self.W_ = self._similarity(icm.T.tocsr())
        self.train_matrix_ = train.matrix


class ItemKNNCFCBF(ItemKNNCBF):
    """Hybrid: the CBF pipeline on ``[icm_weight * ICM | R^T]`` per item; scores with ``R``."""

    name = "ItemKNNCFCBF"
    search_space: ClassVar[dict[str, dict[str, Any]]] = knn_search_space("cosine", icm_weight=True)
    param_rules: ClassVar[dict[str, Param]] = {**_KNN.param_rules, "icm_weight": Param(ge=0)}

    def __init__(
        self,
        top_k: int = 100,
        shrink: float = 0,
        similarity: str = "cosine",
        normalize: bool = True,
        feature_weighting: str = "none",
        asymmetric_alpha: float = 0.5,
        tversky_alpha: float = 1.0,
        tversky_beta: float = 1.0,
        icm_weight: float = 1.0,
        memory_budget_mb: float = 512.0,
        n_threads: int | None = None,
        tie_rule: str = "lower-index",
    ) -> None:
        super().__init__(
            top_k=top_k,
            shrink=shrink,
            similarity=similarity,
            normalize=normalize,
            feature_weighting=feature_weighting,
            asymmetric_alpha=asymmetric_alpha,
            tversky_alpha=tversky_alpha,
            tversky_beta=tversky_beta,
            memory_budget_mb=memory_budget_mb,
            n_threads=n_threads,
            tie_rule=tie_rule,
        )
        self.icm_weight = icm_weight

    @classmethod
    def search_space_for(
        cls, similarity: str, allow_weighting: bool = True
    ) -> dict[str, dict[str, Any]]:
        return knn_search_space(similarity, allow_weighting=allow_weighting, icm_weight=True)

    def _fit(self, train: Interactions) -> None:
        self._validate()
        if not (np.isfinite(self.icm_weight) and self.icm_weight >= 0):
            raise ValueError(
                f"ItemKNNCFCBF: icm_weight must be a finite number >= 0, got {self.icm_weight!r}"
            )
        icm = self._features(train) * np.float32(self.icm_weight)
        joint = sp.hstack([icm, train.matrix.T], format="csr", dtype=np.float32)
        self.W_ = self._similarity(self._weigh(joint).T.tocsr())
        self.train_matrix_ = train.matrix
