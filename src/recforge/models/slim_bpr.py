"""SLIM BPR: an item-item weight matrix learnt with the BPR loss (Rendle et al. 2009; SLIM of
Ning & Karypis 2011), as the TOIS 2021 journal version of the RecSys'19 study uses it.

An :class:`~recforge.models.iterative.IterativeRecommender` on the project's one training loop
(early stopping by the evaluator on validation, best epoch restored). An epoch draws as many
triples as the training matrix has interactions: a user uniformly among those with at least one
item and one non-item, one of the user's items uniformly, one negative uniformly among the
others (the shared :class:`~recforge.models.torch.sampling.NegativeSampler`). The SGD steps run
in a numba kernel (:mod:`._slim_bpr_numba`) on a dense float32 ``n_items x n_items`` matrix,
so training needs ``4 n_items^2`` bytes (55 MB on ML-1M, 1.2 GB on CiteULike-a); above
``memory_budget_mb`` the fit is refused before any work.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp

from recforge._kernels.topk import select_rows
from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
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
from recforge.models.similarity import sparse_dense_product
from recforge.models.torch.sampling import NegativeSampler

__all__ = ["SGD_MODES", "SLIMBPR", "prune_weights"]

log = logging.getLogger(__name__)

#: target rows pruned per block (bounds the top-k's temporaries to block x n_items)
_PRUNE_BLOCK = 512


def prune_weights(s: np.ndarray, top_k: int) -> sp.csr_matrix:
    """The item-item matrix ``W`` (source x target) keeping each target's ``top_k`` largest
    weights of ``s`` (target x source), by the one top-k's tie rule; zeros are not stored."""
    n = s.shape[0]
    rows, cols, vals = [], [], []
    for start in range(0, n, _PRUNE_BLOCK):
        r, c, v = select_rows(s[start : start + _PRUNE_BLOCK], top_k, drop_zeros=True)
        rows.append(r + start)
        cols.append(c)
        vals.append(v.astype(np.float32))
    w = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(cols), np.concatenate(rows))),
        shape=(n, n), dtype=np.float32,
    )
    w.sort_indices()
    return w


class SLIMBPR(IterativeRecommender):
    """SLIM trained with BPR: ``score(u, i) = sum_{k in I_u} W[k, i]``, ``W`` topK-pruned.

    Per triple (u, i, j), ``x_uij = score(u, i) - score(u, j)`` on the unpruned weights and, with
    ``g = sigmoid(-x_uij)``, each weight of u's items k towards i moves by
    ``learning_rate (g - lambda_i W[k, i])`` and towards j by ``-learning_rate (g + lambda_j
    W[k, j])``; ``W[i, i]`` stays 0 (an item cannot explain itself). ``sgd_mode``: plain SGD,
    Adagrad or Adam (betas 0.9/0.999) adapt the data gradient ``g`` per target item (every
    weight towards an item shares that step; the regularisation part is not adapted).
    ``symmetric`` keeps ``W = W^T`` (the reference framework's default). Weights start at 0;
    ``seed`` drives the sampling. After training (and before each validation) each item keeps
    its ``top_k`` largest incoming weights. Learns from the binarised training matrix.

    Differences from the reference framework (deliberate): the negative item's regularisation
    shrinks its weights (the reference adds ``+lr lambda_j W``, which grows them), and Adagrad/Adam
    adapt the negative item's step by its own state (the reference reuses the positive's).
    """

    name = "SLIMBPR"
    supports_profiles = True
    epochs_param = "epochs"
    #: the TOIS 2021 ranges; the journal fixes epochs = 1500 under early stopping
    search_space: ClassVar[SearchSpace] = {
        "top_k": {"type": "int", "low": 5, "high": 1000},
        "symmetric": {"type": "categorical", "choices": [True, False]},
        "sgd_mode": {"type": "categorical", "choices": list(SGD_MODES)},
        "lambda_i": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "lambda_j": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    }
    param_rules: ClassVar[dict[str, Param]] = {
        "top_k": Param(ge=1), "learning_rate": Param(gt=0), "lambda_i": Param(ge=0),
        "lambda_j": Param(ge=0), "epochs": Param(ge=1), "sgd_mode": Param(choices=SGD_MODES),
        "memory_budget_mb": Param(gt=0),
    }
    _test_params: ClassVar[dict[str, Any]] = {"top_k": 10, "epochs": 3}

    item_weights_: sp.csr_matrix
    train_matrix_: sp.csr_matrix

    def __init__(
        self,
        top_k: int = 200,
        learning_rate: float = 1e-3,
        lambda_i: float = 1e-4,
        lambda_j: float = 1e-4,
        sgd_mode: Literal["sgd", "adagrad", "adam"] = "adagrad",
        symmetric: bool = True,
        epochs: int = 300,
        seed: int = 0,
        memory_budget_mb: float = 8192.0,
    ) -> None:
        self.top_k = top_k
        self.learning_rate = learning_rate
        self.lambda_i = lambda_i
        self.lambda_j = lambda_j
        self.sgd_mode = sgd_mode
        self.symmetric = symmetric
        self.epochs = epochs
        self.seed = seed
        self.memory_budget_mb = memory_budget_mb

    @staticmethod
    def estimated_memory_mb(n_items: int) -> float:
        """The training peak the budget check uses: the dense float32 ``n_items^2`` weights plus
        the pruning's per-block temporaries (``_PRUNE_BLOCK`` rows of int64 and float32)."""
        n = float(n_items)
        return (4.0 * n * n + 24.0 * min(n, _PRUNE_BLOCK) * n) / 2**20

    def _validate(self) -> None:
        positive_int(self.top_k, "top_k", "SLIMBPR")
        positive_float(self.learning_rate, "learning_rate", "SLIMBPR")
        positive_float(self.lambda_i, "lambda_i", "SLIMBPR", allow_zero=True)
        positive_float(self.lambda_j, "lambda_j", "SLIMBPR", allow_zero=True)
        one_of(self.sgd_mode, SGD_MODES, "sgd_mode", "SLIMBPR")
        boolean(self.symmetric, "symmetric", "SLIMBPR")

    # -- training
    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        self._validate()
        budget = positive_float(self.memory_budget_mb, "memory_budget_mb", "SLIMBPR")
        need = self.estimated_memory_mb(train.n_items)
        if need > budget:
            raise MemoryError(
                f"SLIMBPR: {train.n_items} items need ~{need:.3g} MB (dense n_items^2 float32 "
                f"weights while training) but memory_budget_mb={self.memory_budget_mb}; raise the "
                "budget or use a sparse model"
            )
        x = binary_matrix(train)
        x.sort_indices()
        self.train_matrix_ = x
        self._rng = np.random.default_rng(self.seed)
        self._sampler = NegativeSampler(x, self._rng)
        deg = np.diff(x.indptr)
        self._eligible = np.flatnonzero((deg > 0) & (self._sampler.free > 0))
        if self._eligible.size == 0:
            raise ValueError("SLIMBPR: no user has both a training item and an item left to "
                             "draw as a negative")
        full = int(np.count_nonzero((deg > 0) & (self._sampler.free <= 0)))
        if full:
            log.warning("SLIMBPR: %d user(s) interacted with every item; they give no "
                        "negatives and are not sampled (their scores still use W)", full)
        self._n_samples = int(x.nnz)
        n = x.shape[1]
        self._s = np.zeros((n, n), dtype=np.float32)
        self._c1 = np.zeros(n, dtype=np.float64)
        self._c2 = np.zeros(n, dtype=np.float64)
        self._t = 0
        self._dirty = True

    def _train_epoch(self, epoch: int) -> float | None:
        from recforge.models._slim_bpr_numba import slim_bpr_epoch

        picks = self._rng.integers(0, self._eligible.size, size=self._n_samples)
        users, pos, neg = self._sampler.user_triples(self._eligible[picks])
        x = self.train_matrix_
        total, self._t = slim_bpr_epoch(
            x.indptr.astype(np.int64), x.indices.astype(np.int64), users, pos, neg, self._s,
            bool(self.symmetric), float(self.learning_rate), float(self.lambda_i),
            float(self.lambda_j), SGD_MODES.index(self.sgd_mode), self._c1, self._c2, self._t,
            ADAM_BETAS[0], ADAM_BETAS[1], EPS,
        )
        self._dirty = True
        return float(total) / users.size

    def _sync(self) -> None:
        """Prune the training weights into ``item_weights_`` if they changed since last time."""
        if self.__dict__.get("_dirty"):
            self.item_weights_ = prune_weights(self._s, int(self.top_k))
            self._dirty = False

    def _end_training(self) -> None:
        if "_s" in self.__dict__:
            self._sync()
        for attr in ("_rng", "_sampler", "_eligible", "_s", "_c1", "_c2", "_t", "_dirty",
                     "_n_samples"):
            self.__dict__.pop(attr, None)

    # -- state for early stopping: the pruned weights are all that scoring needs
    def get_state(self) -> dict[str, Any]:
        check_fitted(self, "get_state")
        self._sync()
        return {"item_weights_": self.item_weights_.copy()}

    def set_state(self, state: dict[str, Any]) -> Self:
        self.item_weights_ = sp.csr_matrix(state["item_weights_"], dtype=np.float32, copy=True)
        if "_s" in self.__dict__:  # mid-training: keep these weights until the next epoch
            self._dirty = False
        return self

    # -- scoring
    def _scores(self, rows: sp.csr_matrix) -> np.ndarray:
        self._sync()
        return sparse_dense_product(rows, self.item_weights_, 1)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._scores(self.train_matrix_[users])

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._scores(binary_matrix(profiles))
