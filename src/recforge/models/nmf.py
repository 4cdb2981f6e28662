"""NMF: non-negative matrix factorisation of the binary user-item matrix (scikit-learn's).

``R ~ W H`` with ``W, H >= 0`` by :class:`sklearn.decomposition.NMF`; a user's scores are
``W_u H``. Like PureSVD it learns from the *binarised* training matrix (the RecSys'19 paper).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import positive_float, positive_int
from recforge.models.base import Recommender, SearchSpace
from recforge.models.params import Param

__all__ = ["NMF", "NMF_BETA_LOSSES", "NMF_INITS", "NMF_SOLVERS"]

log = logging.getLogger(__name__)

NMF_SOLVERS = ("cd", "mu")
NMF_INITS = ("random", "nndsvd", "nndsvda", "nndsvdar")
# Itakura-Saito (beta 0) is left out: scikit-learn refuses it on data with zeros, and a
# binary interaction matrix is mostly zeros.
NMF_BETA_LOSSES = ("frobenius", "kullback-leibler")


class NMF(Recommender):
    """Non-negative matrix factorisation (scikit-learn's ``NMF``) of the binary matrix.

    ``solver``: ``"cd"`` (coordinate descent) or ``"mu"`` (multiplicative update); ``init``:
    ``"random"`` or one of the NNDSVD variants; ``beta_loss``: ``"frobenius"`` or
    ``"kullback-leibler"`` (the latter only with ``solver="mu"``, as in scikit-learn).
    ``l1_ratio`` and ``alpha`` are scikit-learn's ``l1_ratio`` and ``alpha_W`` (``alpha_H``
    follows it). ``num_factors`` above ``min(R.shape)`` is clipped (``n_factors_``,
    ``clipped_``). ``n_iter_`` and ``reconstruction_err_`` are scikit-learn's; a fit that hit
    ``max_iter`` before ``tol`` logs a warning and sets ``converged_ = False``.
    """

    name = "NMF"
    # the search space of the paper's NMF (factors up to 350 as in the TOIS 2021 ranges)
    search_space: ClassVar[SearchSpace] = {
        "num_factors": {"type": "int", "low": 1, "high": 350},
        "solver": {"type": "categorical", "choices": list(NMF_SOLVERS)},
        "init": {"type": "categorical", "choices": ["random", "nndsvda"]},
        "l1_ratio": {"type": "float", "low": 0.1, "high": 1.0, "log": True},
    }
    #: searched only when ``solver="mu"`` is fixed (coordinate descent supports Frobenius only)
    beta_loss_space: ClassVar[dict[str, Any]] = {
        "type": "categorical", "choices": list(NMF_BETA_LOSSES)}
    param_rules: ClassVar[dict[str, Param]] = {
        "num_factors": Param(ge=1), "solver": Param(choices=NMF_SOLVERS),
        "init": Param(choices=NMF_INITS), "beta_loss": Param(choices=NMF_BETA_LOSSES),
        "l1_ratio": Param(ge=0, le=1), "alpha": Param(ge=0), "max_iter": Param(ge=1),
        "tol": Param(gt=0),
    }
    _test_params: ClassVar[dict[str, Any]] = {"num_factors": 4, "max_iter": 50}

    def __init__(
        self,
        num_factors: int = 50,
        solver: Literal["cd", "mu"] = "cd",
        init: Literal["random", "nndsvd", "nndsvda", "nndsvdar"] = "nndsvda",
        beta_loss: Literal["frobenius", "kullback-leibler"] = "frobenius",
        l1_ratio: float = 0.5,
        alpha: float = 0.0,
        max_iter: int = 200,
        tol: float = 1e-4,
        seed: int = 0,
    ) -> None:
        self.num_factors = num_factors
        self.solver = solver
        self.init = init
        self.beta_loss = beta_loss
        self.l1_ratio = l1_ratio
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    @classmethod
    def space_for(cls, fixed_params: Mapping[str, Any] | None = None) -> SearchSpace:
        """The default space; ``beta_loss`` joins it when ``solver="mu"`` is fixed."""
        fixed = dict(fixed_params or {})
        space = {k: dict(v) for k, v in cls.search_space.items()}
        if fixed.get("solver") == "mu":
            space["beta_loss"] = dict(cls.beta_loss_space)
        return {k: v for k, v in space.items() if k not in fixed}

    def _validate(self) -> int:
        k = positive_int(self.num_factors, "num_factors", "NMF")
        positive_int(self.max_iter, "max_iter", "NMF")
        positive_float(self.tol, "tol", "NMF")
        positive_float(self.alpha, "alpha", "NMF", allow_zero=True)
        for field, value, allowed in (("solver", self.solver, NMF_SOLVERS),
                                      ("init", self.init, NMF_INITS),
                                      ("beta_loss", self.beta_loss, NMF_BETA_LOSSES)):
            if value not in allowed:
                raise ValueError(f"NMF: unknown {field} {value!r}; choose one of {list(allowed)}")
        if not 0.0 <= float(self.l1_ratio) <= 1.0:
            raise ValueError(f"NMF: l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if self.solver == "cd" and self.beta_loss != "frobenius":
            raise ValueError(
                f"NMF: beta_loss={self.beta_loss!r} needs solver='mu' "
                "(coordinate descent minimises the Frobenius loss only)"
            )
        return k

    def _fit(self, train: Interactions) -> None:
        from sklearn.decomposition import NMF as SkNMF
        from sklearn.exceptions import ConvergenceWarning

        k = self._validate()
        r = binary_matrix(train)
        limit = min(r.shape)
        self.clipped_ = k > limit
        if self.clipped_:
            log.warning("NMF: num_factors=%d clipped to min(R.shape)=%d", k, limit)
            k = limit
        nmf = SkNMF(
            n_components=k, init=self.init, solver=self.solver, beta_loss=self.beta_loss,
            l1_ratio=float(self.l1_ratio), alpha_W=float(self.alpha), alpha_H="same",
            max_iter=int(self.max_iter), tol=float(self.tol), random_state=int(self.seed),
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            w = nmf.fit_transform(r)
        self.converged_ = True
        for c in caught:
            if issubclass(c.category, ConvergenceWarning):
                self.converged_ = False
            else:  # pass every other warning on unchanged
                warnings.warn_explicit(c.message, c.category, c.filename, c.lineno)
        if not self.converged_:
            log.warning("NMF: stopped at max_iter=%d before reaching tol=%g", self.max_iter,
                        self.tol)
        self.n_factors_ = k
        self.n_iter_ = int(nmf.n_iter_)
        self.reconstruction_err_ = float(nmf.reconstruction_err_)
        self.user_factors_ = np.ascontiguousarray(w, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(nmf.components_.T, dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T, dtype=np.float32)
