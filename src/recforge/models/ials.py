"""iALS / WMF: weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

An :class:`~recforge.models.iterative.IterativeRecommender`: the project's one training loop
runs the epochs and, given a validation callback, stops early and restores the best epoch
(``get_state``/``set_state``). Like the RecSys'19 paper it learns from the *binarised*
training matrix (every stored value -> ``r = 1``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal, Self

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
from recforge.models.base import SearchSpace
from recforge.models.iterative import IterativeRecommender, TrainingRun
from recforge.models.params import Param

__all__ = ["CONFIDENCE_SCALINGS", "IALS", "SOLVERS", "confidence_values"]

log = logging.getLogger(__name__)

CONFIDENCE_SCALINGS = ("linear", "log")
SOLVERS = ("cholesky", "cg")


def confidence_values(r: np.ndarray, scaling: str, alpha: float, epsilon: float) -> np.ndarray:
    """Confidence of observed values ``r``: ``1 + alpha r`` or ``1 + alpha log(1 + r/epsilon)``."""
    r64 = np.asarray(r, dtype=np.float64)
    if scaling == "linear":
        return 1.0 + alpha * r64
    if scaling == "log":
        return 1.0 + alpha * np.log1p(r64 / epsilon)
    raise ValueError(
        f"IALS: unknown confidence {scaling!r}; choose one of {list(CONFIDENCE_SCALINGS)}"
    )


class IALS(IterativeRecommender):
    """Weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

    Minimises ``sum_ui c_ui (p_ui - x_u.y_i)^2 + regularization (|X|^2 + |Y|^2)`` with
    ``p_ui = 1`` for observed pairs (0 otherwise, confidence 1) and, for observed pairs,
    ``confidence="linear"``: ``c = 1 + alpha r`` or ``"log"``: ``c = 1 + alpha log(1 + r/epsilon)``
    (the two scalings of Hu et al.; ``r = 1`` after binarisation). Each epoch updates all user
    factors, then all item factors.

    ``solver="cholesky"`` (default) solves each row's normal equations exactly;
    ``solver="cg"`` takes ``cg_steps`` warm-started conjugate-gradient steps per row instead
    (implicit's default, faster for many factors). With ``use_implicit=True`` and the
    ``implicit`` package installed its CPU solvers run (exact or CG, by ``solver``; we hand it
    the confidence matrix and ``alpha=1`` because implicit uses the stored value as the
    confidence); otherwise our solvers of the same equations run (no per-row Python loop: a
    numba kernel for the exact solve, block matrix products for CG). ``backend_`` says which
    one ran ("implicit" or "numpy"). The numpy path initialises the
    factors from ``np.random.default_rng(seed)``: user factors, then item factors, each
    ``0.01 * uniform[0, 1)`` in float32 (implicit seeds its own initialisation with ``seed``).
    ``n_threads`` pins implicit's OpenMP threads and the BLAS threads during fitting (None = the
    libraries' defaults).
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
    #: added to the space when ``confidence="log"`` is fixed (the TOIS 2021 range of epsilon)
    epsilon_space: ClassVar[dict[str, Any]] = {"type": "float", "low": 1e-3, "high": 10.0,
                                               "log": True}
    param_rules: ClassVar[dict[str, Param]] = {
        "factors": Param(ge=1), "regularization": Param(ge=0), "alpha": Param(ge=0),
        "iterations": Param(ge=1), "n_threads": Param(ge=1), "cg_steps": Param(ge=1),
        "epsilon": Param(gt=0), "confidence": Param(choices=CONFIDENCE_SCALINGS),
        "solver": Param(choices=SOLVERS),
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
        confidence: Literal["linear", "log"] = "linear",
        epsilon: float = 1.0,
        solver: Literal["cholesky", "cg"] = "cholesky",
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.use_implicit = use_implicit
        self.n_threads = n_threads
        self.cg_steps = cg_steps
        self.confidence = confidence
        self.epsilon = epsilon
        self.solver = solver

    @classmethod
    def space_for(cls, fixed_params: Mapping[str, Any] | None = None) -> SearchSpace:
        """The default space; ``epsilon`` joins it when ``confidence="log"`` is fixed."""
        fixed = dict(fixed_params or {})
        space = {k: dict(v) for k, v in cls.search_space.items()}
        if fixed.get("confidence") == "log":
            space["epsilon"] = dict(cls.epsilon_space)
        return {k: v for k, v in space.items() if k not in fixed}

    # -- training
    def _confidence(self, train: Interactions | sp.spmatrix) -> sp.csr_matrix:
        c = binary_matrix(train)
        c.data = confidence_values(c.data, self.confidence, float(self.alpha),
                                   float(self.epsilon)).astype(np.float32)
        return c

    def _validate(self) -> None:
        positive_int(self.factors, "factors", "IALS")
        positive_int(self.cg_steps, "cg_steps", "IALS")
        positive_float(self.regularization, "regularization", "IALS", allow_zero=True)
        positive_float(self.alpha, "alpha", "IALS", allow_zero=True)
        positive_float(self.epsilon, "epsilon", "IALS")
        optional_threads(self.n_threads, "IALS")
        if self.confidence not in CONFIDENCE_SCALINGS:
            raise ValueError(f"IALS: unknown confidence {self.confidence!r}; "
                             f"choose one of {list(CONFIDENCE_SCALINGS)}")
        if self.solver not in SOLVERS:
            raise ValueError(f"IALS: unknown solver {self.solver!r}; choose one of {list(SOLVERS)}")

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
            alpha=1.0,  # conf already holds the confidence c
            iterations=1,
            use_cg=self.solver == "cg",
            num_threads=0 if self.n_threads is None else int(self.n_threads),
            random_state=int(self.seed),
        )
        model.cg_steps = int(self.cg_steps)  # an attribute, not an __init__ argument, in implicit

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

        if self.solver == "cholesky":
            def step() -> None:
                _exact_half_epoch(conf, self.user_factors_, self.item_factors_, reg)
                _exact_half_epoch(conf_t, self.item_factors_, self.user_factors_, reg)
        else:
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
        y = self.item_factors_.astype(np.float32)
        x = np.zeros((profiles.shape[0], y.shape[1]), dtype=np.float32)
        _exact_half_epoch(self._confidence(profiles), x, y, float(self.regularization))
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


def _exact_half_epoch(conf: sp.csr_matrix, x: np.ndarray, y: np.ndarray, reg: float) -> None:
    """Set every row of ``x`` in place to the exact solution of its normal equations.

    Row u solves ``(Y^T Y + reg I + Y^T (C_u - I) Y) x_u = Y^T C_u p_u`` by a Cholesky
    factorisation in float64 (a compiled loop over rows: numba, :mod:`._ials_numba`).
    """
    from recforge.models._ials_numba import exact_rows

    k = y.shape[1]
    y64 = np.ascontiguousarray(y, dtype=np.float64)
    base = y64.T @ y64
    base.flat[:: k + 1] += reg
    out = np.empty((conf.shape[0], k))
    try:
        exact_rows(conf.indptr.astype(np.int64), conf.indices.astype(np.int64),
                   conf.data.astype(np.float64), y64, base, out)
    except ValueError as exc:
        raise ValueError(
            "IALS: the normal equations are not positive definite "
            f"(regularization={reg}); use regularization > 0"
        ) from exc
    x[:] = out.astype(x.dtype)


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
