"""MF FunkSVD: matrix factorisation fitted to the rating matrix by SGD on the squared error
(Funk 2006; Koren, Bell & Volinsky 2009 for the biases), as the TOIS 2021 journal version of the
RecSys'19 study uses it.

An :class:`~recforge.models.iterative.IterativeRecommender` on the project's one training loop
(early stopping by the evaluator on validation, best epoch restored). An epoch visits every
stored interaction once plus sampled zeros, shuffled, in minibatches; the SGD runs in a numba
kernel (:mod:`._funksvd_numba`). The target of an interaction is the training matrix's stored
value (``target="values"``: all ones for implicit data, as the journal runs it) or the
interaction's rating (``target="ratings"``, ``Interactions.ratings``, explicit feedback).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._sgd_numba import ADAM_BETAS, EPS, SGD_MODES
from recforge.models._validation import (
    boolean,
    check_fitted,
    one_of,
    positive_float,
    positive_int,
)
from recforge.models.base import SearchSpace
from recforge.models.iterative import IterativeRecommender, TrainingRun
from recforge.models.params import Param
from recforge.models.torch.sampling import NegativeSampler

__all__ = ["SGD_MODES", "TARGETS", "FunkSVD"]

log = logging.getLogger(__name__)

TARGETS = ("values", "ratings")
_STATE = ("user_factors_", "item_factors_", "user_bias_", "item_bias_", "global_bias_")


class FunkSVD(IterativeRecommender):
    """``pred(u, i) = x_u . y_i`` (``+ mu + b_u + b_i`` with ``use_bias``), fitted by SGD.

    Minimises, per sample (u, i, r) with ``r`` the target (see the module docstring),
    ``(r - pred)^2 / 2 + reg_user |x_u|^2 / 2 +
    reg_item |y_i|^2 / 2`` (``+ reg_bias (b_u^2 + b_i^2) / 2``; the global bias ``mu`` is not
    regularised). Samples: every stored interaction with its value, and with
    ``negative_quota = q`` also ``round(nnz q / (1 - q))`` zeros, so that a share ``q`` of an
    epoch's samples are zeros; a zero is a user drawn uniformly (among users with an item left
    to draw) and one of their non-items drawn uniformly, redrawn every epoch. Gradients of a
    minibatch of ``batch_size`` samples are taken at the same parameters and summed per row;
    ``sgd_mode`` plain SGD, Adagrad or Adam (betas 0.9/0.999) adapts each parameter entry.
    Factors start as ``N(0, init_std^2)`` from ``seed`` (users, then items), biases at 0.
    Scores are the predictions.
    """

    name = "FunkSVD"
    epochs_param = "epochs"
    #: the TOIS 2021 ranges; the journal fixes epochs = 500 under early stopping
    search_space: ClassVar[SearchSpace] = {
        "sgd_mode": {"type": "categorical", "choices": list(SGD_MODES)},
        "use_bias": {"type": "categorical", "choices": [True, False]},
        "batch_size": {"type": "categorical",
                       "choices": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]},
        "factors": {"type": "int", "low": 1, "high": 200},
        "reg_item": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "reg_user": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "negative_quota": {"type": "float", "low": 0.0, "high": 0.5},
    }
    param_rules: ClassVar[dict[str, Param]] = {
        "factors": Param(ge=1), "learning_rate": Param(gt=0), "reg_user": Param(ge=0),
        "reg_item": Param(ge=0), "reg_bias": Param(ge=0), "negative_quota": Param(ge=0, lt=1),
        "batch_size": Param(ge=1), "epochs": Param(ge=1), "sgd_mode": Param(choices=SGD_MODES),
        "init_std": Param(gt=0), "target": Param(choices=TARGETS),
    }
    _test_params: ClassVar[dict[str, Any]] = {"factors": 4, "epochs": 3, "batch_size": 8,
                                               "negative_quota": 0.3}

    user_factors_: np.ndarray
    item_factors_: np.ndarray
    user_bias_: np.ndarray
    item_bias_: np.ndarray
    global_bias_: float

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 1e-3,
        reg_user: float = 1e-4,
        reg_item: float = 1e-4,
        reg_bias: float = 0.0,
        use_bias: bool = True,
        negative_quota: float = 0.0,
        sgd_mode: Literal["sgd", "adagrad", "adam"] = "adam",
        batch_size: int = 32,
        epochs: int = 100,
        init_std: float = 0.1,
        seed: int = 0,
        target: Literal["values", "ratings"] = "values",
    ) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.reg_bias = reg_bias
        self.use_bias = use_bias
        self.negative_quota = negative_quota
        self.sgd_mode = sgd_mode
        self.batch_size = batch_size
        self.epochs = epochs
        self.init_std = init_std
        self.seed = seed
        self.target = target

    def _validate(self) -> None:
        positive_int(self.factors, "factors", "FunkSVD")
        positive_int(self.batch_size, "batch_size", "FunkSVD")
        positive_float(self.learning_rate, "learning_rate", "FunkSVD")
        positive_float(self.init_std, "init_std", "FunkSVD")
        for field in ("reg_user", "reg_item", "reg_bias"):
            positive_float(getattr(self, field), field, "FunkSVD", allow_zero=True)
        q = positive_float(self.negative_quota, "negative_quota", "FunkSVD", allow_zero=True)
        if q >= 1.0:
            raise ValueError(f"FunkSVD: negative_quota must be in [0, 1), got {q!r}")
        one_of(self.sgd_mode, SGD_MODES, "sgd_mode", "FunkSVD")
        boolean(self.use_bias, "use_bias", "FunkSVD")
        one_of(self.target, TARGETS, "target", "FunkSVD")

    # -- training
    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        self._validate()
        m = sp.csr_matrix(train.matrix, dtype=np.float64, copy=True)
        if self.target == "ratings":
            if train.ratings is None:
                raise ValueError(f"FunkSVD: target='ratings' but the training data "
                                 f"{train.name!r} has no ratings; use target='values'")
            m.data = np.asarray(train.ratings, dtype=np.float64).copy()  # aligned with the CSR
        if m.nnz == 0:
            raise ValueError("FunkSVD: the training matrix has no interactions")
        n_users, n_items = m.shape
        self._rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(m.indptr))
        self._cols = m.indices.astype(np.int64)
        self._vals = m.data.astype(np.float64)
        self._rng = np.random.default_rng(self.seed)
        q = float(self.negative_quota)
        self._n_zeros = round(m.nnz * q / (1.0 - q)) if q > 0 else 0
        if self._n_zeros:
            self._sampler = NegativeSampler(m, self._rng)
            self._eligible = np.flatnonzero(self._sampler.free > 0)
            if self._eligible.size == 0:
                raise ValueError("FunkSVD: negative_quota > 0 but every user has every item")
        k = int(self.factors)
        std = float(self.init_std)
        # one table: users [x_u, b_u], items [y_i, b_i], then the global bias (see the kernel)
        p = np.zeros((n_users + n_items + 1, k + 1), dtype=np.float64)
        p[:n_users, :k] = self._rng.standard_normal((n_users, k)) * std
        p[n_users : n_users + n_items, :k] = self._rng.standard_normal((n_items, k)) * std
        self._p = p
        self._c1 = np.zeros(p.size)
        self._c2 = np.zeros(p.size) if self.sgd_mode == "adam" else np.zeros(0)
        self._acc = np.zeros_like(p)
        self._touched = np.zeros(p.shape[0], dtype=np.bool_)
        self._row_buf = np.zeros(p.shape[0], dtype=np.int64)
        self._t = 0
        self._n_users = n_users
        self._publish()

    def _train_epoch(self, epoch: int) -> float | None:
        from recforge.models._funksvd_numba import funk_svd_epoch

        users, items, targets = self._rows, self._cols, self._vals
        if self._n_zeros:
            zu = self._eligible[self._rng.integers(0, self._eligible.size, size=self._n_zeros)]
            zi = self._sampler.negatives(zu, 1).ravel()
            users = np.concatenate([users, zu])
            items = np.concatenate([items, zi])
            targets = np.concatenate([targets, np.zeros(zu.size)])
        order = self._rng.permutation(users.size)
        total, self._t = funk_svd_epoch(
            users[order], items[order], targets[order], int(self.batch_size), self._p,
            self._n_users, int(self.factors), bool(self.use_bias), float(self.learning_rate),
            float(self.reg_user), float(self.reg_item), float(self.reg_bias),
            SGD_MODES.index(self.sgd_mode), self._c1, self._c2, self._acc, self._touched,
            self._row_buf, self._t, ADAM_BETAS[0], ADAM_BETAS[1], EPS,
        )
        self._publish()
        return float(total) / users.size

    def _publish(self) -> None:
        """Copy the training table into the fitted attributes (float32; cheap: O(rows x k))."""
        p, n_u, k = self._p, self._n_users, int(self.factors)
        self.user_factors_ = p[:n_u, :k].astype(np.float32)
        self.item_factors_ = p[n_u:-1, :k].astype(np.float32)
        self.user_bias_ = p[:n_u, k].astype(np.float32)
        self.item_bias_ = p[n_u:-1, k].astype(np.float32)
        self.global_bias_ = float(p[-1, 0])

    def _end_training(self) -> None:
        for attr in ("_rows", "_cols", "_vals", "_rng", "_n_zeros", "_sampler", "_eligible",
                     "_p", "_c1", "_c2", "_acc", "_touched", "_row_buf", "_t", "_n_users"):
            self.__dict__.pop(attr, None)

    # -- state for early stopping
    def get_state(self) -> dict[str, Any]:
        check_fitted(self, "get_state")
        return {k: np.array(getattr(self, k), copy=True) for k in _STATE}

    def set_state(self, state: dict[str, Any]) -> Self:
        for k in _STATE[:-1]:
            setattr(self, k, np.asarray(state[k], dtype=np.float32).copy())
        self.global_bias_ = float(state["global_bias_"])
        return self

    # -- scoring
    def _score(self, users: np.ndarray) -> np.ndarray:
        s = self.user_factors_[users] @ self.item_factors_.T
        if self.use_bias:
            s += self.item_bias_[None, :] + self.user_bias_[users, None] + self.global_bias_
        return np.asarray(s, dtype=np.float32)
