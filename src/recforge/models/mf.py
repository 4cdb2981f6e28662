"""Latent-factor models: PureSVD and iALS (WMF); EASE lives in :mod:`recforge.models.ease`.

Both learn from the *binarised* training matrix (every stored value -> 1), like the RecSys'19
paper. Hyper-parameter search spaces are plain dicts on the class (``search_space``), read by
:mod:`recforge.tuning`. iALS is an :class:`~recforge.models.iterative.IterativeRecommender`:
the project's one training loop runs its epochs and, given a validation callback, stops early
and restores the best epoch (``get_state``/``set_state``).

``EASE``, ``IterativeRecommender``, ``binary_matrix`` and ``profile_matrix`` are re-exported
here from their new homes for one release.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import (
    check_fitted,
    optional_threads,
    positive_float,
    positive_int,
)
from recforge.models.base import Recommender, SearchSpace
from recforge.models.ease import EASE
from recforge.models.iterative import IterativeRecommender, TrainingRun
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


# --------------------------------------------------------------------------- iALS
class IALS(IterativeRecommender):
    """Weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

    Minimises ``sum_ui c_ui (p_ui - x_u.y_i)^2 + regularization (|X|^2 + |Y|^2)`` with
    ``p_ui = 1`` for observed pairs (0 otherwise) and confidence ``c_ui = 1 + alpha * r_ui``
    (``r`` binary, so ``1 + alpha``). With ``use_implicit=True`` and the ``implicit`` package
    installed, epochs run its CPU conjugate-gradient solver (we hand it the confidence matrix and
    ``alpha=1`` because implicit uses the stored value itself as the confidence); otherwise a
    vectorised numpy conjugate-gradient ALS of the same form runs (3 CG steps per half-epoch,
    warm-started, like implicit). ``n_threads`` pins implicit's OpenMP threads and the BLAS
    threads during fitting (None = the libraries' defaults; it was ``num_threads`` before, with
    0 for the default). ``backend_`` says which one ran.
    """

    name = "IALS"
    supports_profiles = True
    epochs_param = "iterations"
    renamed_params: ClassVar[dict[str, str]] = {"num_threads": "n_threads"}
    _test_params: ClassVar[dict[str, Any]] = {"factors": 4, "iterations": 3, "n_threads": 1}
    search_space: ClassVar[SearchSpace] = {
        "factors": {"type": "int", "low": 1, "high": 200},
        "alpha": {"type": "float", "low": 1e-3, "high": 50.0, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    }
    param_rules: ClassVar[dict[str, Param]] = {
        "factors": Param(ge=1), "regularization": Param(ge=0), "alpha": Param(ge=0),
        "iterations": Param(ge=1), "n_threads": Param(ge=1), "cg_steps": Param(ge=1),
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        use_implicit: bool = True,
        n_threads: int | None = 1,
        cg_steps: int = 3,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.use_implicit = use_implicit
        self.n_threads = n_threads
        self.cg_steps = cg_steps

    # -- training
    def _confidence(self, train: Interactions) -> sp.csr_matrix:
        c = binary_matrix(train)
        c.data *= np.float32(self.alpha)
        c.data += np.float32(1.0)
        return c

    def _validate(self) -> None:
        positive_int(self.factors, "factors", "IALS")
        positive_int(self.cg_steps, "cg_steps", "IALS")
        positive_float(self.regularization, "regularization", "IALS", allow_zero=True)
        positive_float(self.alpha, "alpha", "IALS", allow_zero=True)
        optional_threads(self.n_threads, "IALS")

    def _training_context(self) -> AbstractContextManager[Any]:
        if self.n_threads is not None:
            return threadpool_limits(self.n_threads, user_api="blas")
        return nullcontext()

    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        self._validate()
        self._conf = self._confidence(train)
        self.train_matrix_ = binary_matrix(train)
        self.epochs_done_ = 0
        step = self._implicit_stepper(self._conf) if self.use_implicit else None
        if step is None:
            step = self._numpy_stepper(self._conf)
            self.backend_ = "numpy"
        else:
            self.backend_ = "implicit"
        self._step = step

    def _train_epoch(self, epoch: int) -> float | None:
        self._step()
        self.epochs_done_ = epoch
        return None

    def _end_training(self) -> None:
        self.__dict__.pop("_step", None)
        self.__dict__.pop("_conf", None)

    def _implicit_stepper(self, conf: sp.csr_matrix) -> Any:
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            log.info("IALS: implicit is not installed; using the numpy ALS")
            return None
        model = AlternatingLeastSquares(
            factors=int(self.factors),
            regularization=float(self.regularization),
            alpha=1.0,  # conf already holds 1 + alpha * r
            iterations=1,
            use_cg=True,
            num_threads=0 if self.n_threads is None else int(self.n_threads),
            random_state=int(self.seed),
        )

        def step() -> None:
            # implicit keeps existing factors between fit calls, so each call is one more epoch.
            model.fit(conf, show_progress=False)
            self.user_factors_ = model.user_factors
            self.item_factors_ = model.item_factors

        return step

    def _numpy_stepper(self, conf: sp.csr_matrix) -> Any:
        rng = np.random.default_rng(self.seed)
        k = int(self.factors)
        n_users, n_items = conf.shape
        self.user_factors_ = rng.random((n_users, k), dtype=np.float32) * np.float32(0.01)
        self.item_factors_ = rng.random((n_items, k), dtype=np.float32) * np.float32(0.01)
        conf_t = sp.csr_matrix(conf.T)
        reg, steps = float(self.regularization), int(self.cg_steps)

        def step() -> None:
            _cg_half_epoch(conf, self.user_factors_, self.item_factors_, reg, steps)
            _cg_half_epoch(conf_t, self.item_factors_, self.user_factors_, reg, steps)

        return step

    # -- state for early stopping
    def get_state(self) -> dict[str, Any]:
        check_fitted(self, "get_state")
        return {
            "user_factors_": self.user_factors_.copy(),
            "item_factors_": self.item_factors_.copy(),
            "epochs_done_": self.epochs_done_,
        }

    def set_state(self, state: dict[str, Any]) -> Self:
        self.user_factors_ = np.asarray(state["user_factors_"], dtype=np.float32).copy()
        self.item_factors_ = np.asarray(state["item_factors_"], dtype=np.float32).copy()
        self.epochs_done_ = int(state["epochs_done_"])
        return self

    # -- scoring
    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_factors_[users] @ self.item_factors_.T, dtype=np.float32)

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        """Fold-in: exact least-squares user factors for each profile, items fixed."""
        y = self.item_factors_.astype(np.float64)
        p = binary_matrix(profiles)
        a0 = y.T @ y + float(self.regularization) * np.eye(y.shape[1])
        cm1 = np.float64(self.alpha)  # c - 1 for a binary profile
        x = np.zeros((p.shape[0], y.shape[1]), dtype=np.float64)
        for row in range(p.shape[0]):
            idx = p.indices[p.indptr[row] : p.indptr[row + 1]]
            if idx.size == 0:
                continue
            yu = y[idx]
            x[row] = np.linalg.solve(a0 + cm1 * (yu.T @ yu), (1.0 + cm1) * yu.sum(axis=0))
        return np.asarray(x @ y.T, dtype=np.float32)

    def training_loss(self, train: Interactions) -> float:
        """The objective above on ``train`` for the current factors (for monitoring and tests)."""
        check_fitted(self, "training_loss")
        c = self._confidence(train)
        x = self.user_factors_.astype(np.float64)
        y = self.item_factors_.astype(np.float64)
        # sum over all pairs of s^2 = <X^T X, Y^T Y>; correct the observed pairs explicitly.
        total = float(np.sum((x.T @ x) * (y.T @ y)))
        rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
        s = np.einsum("ij,ij->i", x[rows], y[c.indices])
        total += float(np.sum(c.data * (1.0 - s) ** 2 - s**2))
        reg = float(self.regularization) * (float(np.sum(x * x)) + float(np.sum(y * y)))
        return total + reg


def _cg_half_epoch(
    conf: sp.csr_matrix,
    x: np.ndarray,
    y: np.ndarray,
    reg: float,
    steps: int,
    max_block_floats: int = 1 << 23,
) -> None:
    """Update every row of ``x`` in place by ``steps`` conjugate-gradient steps.

    Row u solves ``(Y^T Y + reg I + Y^T (C_u - I) Y) x_u = Y^T C_u p_u`` warm-started from the
    current ``x_u``; all rows of a block iterate together (matrix products, no per-row loop).
    Blocks bound the gathered ``nnz x k`` temporaries to ``max_block_floats`` floats.
    """
    k = y.shape[1]
    yty = (y.T @ y).astype(np.float32)
    yty.flat[:: k + 1] += np.float32(reg)
    indptr = conf.indptr
    n_rows = conf.shape[0]
    start = 0
    while start < n_rows:
        # grow the block until its gathered entries reach the budget (at least one row)
        end = int(np.searchsorted(indptr, indptr[start] + max_block_floats // max(1, k), "right"))
        end = min(n_rows, max(start + 1, end - 1))
        blk = conf[start:end]
        rows = np.repeat(np.arange(end - start), np.diff(blk.indptr))
        y_nz = y[blk.indices]
        w = blk.data - np.float32(1.0)

        def apply(p: np.ndarray, blk: sp.csr_matrix = blk, rows: np.ndarray = rows,
                  y_nz: np.ndarray = y_nz, w: np.ndarray = w) -> np.ndarray:
            t = np.einsum("ij,ij->i", y_nz, p[rows]) * w
            extra = sp.csr_matrix((t, blk.indices, blk.indptr), shape=blk.shape) @ y
            return p @ yty + extra

        xb = x[start:end]
        r = np.asarray(blk @ y, dtype=np.float32) - apply(xb)
        p = r.copy()
        rs_old = np.einsum("ij,ij->i", r, r)
        for _ in range(steps):
            ap = apply(p)
            denom = np.einsum("ij,ij->i", p, ap)
            a = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 1e-20)
            xb += a[:, None] * p
            r -= a[:, None] * ap
            rs_new = np.einsum("ij,ij->i", r, r)
            beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 1e-20)
            p = r + beta[:, None] * p
            rs_old = rs_new
        x[start:end] = xb
        start = end
