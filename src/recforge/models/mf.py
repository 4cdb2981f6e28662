"""Latent-factor and linear item-item models: PureSVD, EASE and iALS (WMF).

All three learn from the *binarised* training matrix (every stored value -> 1), like the
RecSys'19 paper. Hyper-parameter search spaces are plain dicts on the class (``search_space``),
read by :mod:`recforge.tuning`.

Iterative models (iALS) also implement :class:`IterativeRecommender`: ``fit_iter(train)``
yields after every epoch so a tuner can validate, snapshot (``get_state``) and restore
(``set_state``) the best epoch.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender

__all__ = ["EASE", "IALS", "IterativeRecommender", "PureSVD", "binary_matrix", "profile_matrix"]

log = logging.getLogger(__name__)

SearchSpace = dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- helpers
def binary_matrix(train: Interactions | sp.spmatrix) -> sp.csr_matrix:
    """Float32 CSR copy of ``train`` with every stored value set to 1 (explicit zeros dropped)."""
    m = train.matrix if isinstance(train, Interactions) else train
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def profile_matrix(profiles: Interactions | sp.spmatrix, n_items: int, model: str) -> sp.csr_matrix:
    """Binarised profiles checked against the model's item count (for ``score_profiles``)."""
    m = binary_matrix(profiles)
    if m.shape[1] != n_items:
        raise ValueError(
            f"{model}.score_profiles: profiles have {m.shape[1]} item columns, "
            f"the model was fitted on {n_items} items"
        )
    return m


def _check_users(users: np.ndarray, n_users: int, model: str) -> np.ndarray:
    u = np.asarray(users)
    if u.ndim != 1 or (u.size and not np.issubdtype(u.dtype, np.integer)):
        raise ValueError(
            f"{model}.score: users must be a 1-d integer array, got {u.dtype}{u.shape}"
        )
    if u.size and (u.min() < 0 or u.max() >= n_users):
        raise IndexError(f"{model}.score: user index out of range [0, {n_users})")
    return u.astype(np.int64, copy=False)


def _positive_int(value: Any, name: str, model: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{model}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str, model: str, *, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{model}: {name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{model}: {name} must be finite and {bound}, got {value!r}")
    return v


# --------------------------------------------------------------------------- iterative API
class IterativeRecommender(Recommender):
    """A model trained in epochs that a tuner can validate between epochs.

    Contract: ``fit_iter(train, n_epochs)`` is a generator that trains from scratch and yields
    the 1-based epoch number after each epoch; the model is scorable at every yield. The
    consumer may stop early (close the generator) and restore a snapshot taken with
    ``get_state()`` through ``set_state()``. ``fit(train)`` runs ``epochs_param`` epochs.
    """

    #: name of the hyper-parameter holding the number of epochs ``fit`` runs.
    epochs_param: ClassVar[str] = "iterations"

    @abstractmethod
    def fit_iter(self, train: Interactions, n_epochs: int | None = None) -> Iterator[int]:
        """Train from scratch, yielding the epoch number after each epoch."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """A copy of the learned state, independent of further training."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> Self:
        """Restore a state returned by ``get_state`` (training cannot be resumed after it)."""

    def fit(self, train: Interactions) -> Self:
        for _ in self.fit_iter(train):
            pass
        return self


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

    def __init__(self, num_factors: int = 50, seed: int = 0) -> None:
        self.num_factors = num_factors
        self.seed = seed

    def fit(self, train: Interactions) -> Self:
        from sklearn.utils.extmath import randomized_svd

        k = _positive_int(self.num_factors, "num_factors", "PureSVD")
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
        return self

    def _project(self, rows: sp.csr_matrix) -> np.ndarray:
        v = self.item_factors_
        return np.asarray(rows @ v, dtype=np.float32) @ v.T

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted("item_factors_")
        u = _check_users(users, self.train_matrix_.shape[0], "PureSVD")
        return self._project(self.train_matrix_[u])

    def score_profiles(self, profiles: Interactions | sp.spmatrix) -> np.ndarray:  # type: ignore[override]
        self._check_fitted("item_factors_")
        return self._project(profile_matrix(profiles, self.item_factors_.shape[0], "PureSVD"))


# --------------------------------------------------------------------------- EASE
class EASE(Recommender):
    """EASE^R (Steck 2019): ``B = I - P / diag(P)`` with ``P = (X^T X + l2_norm I)^-1``.

    Memory discipline: one dense float32 ``n_items x n_items`` buffer holds, in turn, the Gram
    matrix (built from sparse row blocks, each block's sparse temporary bounded by ~64 MB), its
    Cholesky factor (LAPACK ``spotrf``, in place), the inverse (``spotri``, in place) and finally
    ``B``. Measured peak is about 1.1-1.3 ``n_items^2`` float32 plus the inputs; the guard uses
    the conservative ``3 * n_items^2 * 4`` bytes and refuses above ``memory_budget_mb``.
    Fitting and the item-item matrix are float32, so scores match a float64 reference to ~1e-4
    relative.

    ``n_threads`` caps the BLAS threads of the factorisation (``spotrf``/``spotri``) through
    threadpoolctl; ``None`` leaves BLAS as configured. On 2 busy shared cores the 2-thread
    factorisation varied from 0.08 s to 3.8 s while 1 thread stayed at 0.16-0.24 s, so
    ``n_threads=1`` is the steadier choice on a loaded machine.
    """

    name = "EASE"
    supports_profiles = True
    search_space: ClassVar[SearchSpace] = {
        "l2_norm": {"type": "float", "low": 1e0, "high": 1e7, "log": True}
    }

    def __init__(
        self, l2_norm: float = 500.0, memory_budget_mb: float = 8192.0, n_threads: int | None = None
    ) -> None:
        self.l2_norm = l2_norm
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads

    @staticmethod
    def estimated_memory_mb(n_items: int) -> float:
        """The conservative peak the budget check uses: three dense float32 item-item matrices."""
        return 3.0 * 4.0 * float(n_items) ** 2 / 2**20

    def fit(self, train: Interactions) -> Self:
        lam = _positive_float(self.l2_norm, "l2_norm", "EASE")
        threads = None
        if self.n_threads is not None:
            threads = _positive_int(self.n_threads, "n_threads", "EASE")
        x = binary_matrix(train)
        n = x.shape[1]
        need = self.estimated_memory_mb(n)
        if need > float(self.memory_budget_mb):
            raise MemoryError(
                f"EASE: {n} items need ~{need:.3g} MB (3 x n_items^2 float32) but "
                f"memory_budget_mb={self.memory_budget_mb}; raise the budget or use a sparse model"
            )
        g = self._gram(x)
        g.flat[:: n + 1] += np.float32(lam)
        limit: AbstractContextManager[Any] = (
            nullcontext() if threads is None else threadpool_limits(threads, user_api="blas")
        )
        with limit:
            inv = self._invert_in_place(g)
        if not np.shares_memory(inv, g):  # pragma: no cover - LAPACK wrapper made a copy
            g = np.ascontiguousarray(inv.T)
        _symmetrize_from_upper(g)
        diag = g.diagonal().copy()
        g /= -diag[np.newaxis, :]
        g.flat[:: n + 1] = 0.0
        self.item_similarity_ = g
        self.train_matrix_ = x
        return self

    @staticmethod
    def _invert_in_place(g: np.ndarray) -> np.ndarray:
        """Inverse of the SPD ``g`` (upper triangle of the C view valid), normally in ``g``."""
        # g is symmetric and C-ordered, so g.T is the same matrix in Fortran order: LAPACK works
        # on it in place. lower=1 in Fortran order is the upper triangle of the C view.
        chol, info = lapack.spotrf(g.T, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: Cholesky failed (info={info}); is l2_norm > 0?")
        inv, info = lapack.spotri(chol, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE: inverse from Cholesky failed (info={info})")
        return np.asarray(inv)

    @staticmethod
    def _gram(x: sp.csr_matrix, block_bytes: int = 64 * 2**20) -> np.ndarray:
        """Dense float32 ``X^T X`` built from sparse row blocks of ``X^T`` (bounded temporaries)."""
        n = x.shape[1]
        xt = sp.csr_matrix(x.T)
        g = np.zeros((n, n), dtype=np.float32)
        step = max(1, min(n, block_bytes // max(1, 12 * n)))
        for a in range(0, n, step):
            b = min(n, a + step)
            (xt[a:b] @ x).toarray(out=g[a:b])
        return g

    def _scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(rows @ self.item_similarity_, dtype=np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted("item_similarity_")
        u = _check_users(users, self.train_matrix_.shape[0], "EASE")
        return self._scores(self.train_matrix_[u])

    def score_profiles(self, profiles: Interactions | sp.spmatrix) -> np.ndarray:  # type: ignore[override]
        self._check_fitted("item_similarity_")
        n = self.item_similarity_.shape[0]
        return self._scores(profile_matrix(profiles, n, "EASE"))


def _symmetrize_from_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle of square ``a`` into its lower triangle, in place, by blocks."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        d = a[s:e, s:e]
        d[...] = np.triu(d) + np.triu(d, 1).T
        if e < n:
            a[e:, s:e] = a[s:e, e:].T


# --------------------------------------------------------------------------- iALS
class IALS(IterativeRecommender):
    """Weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

    Minimises ``sum_ui c_ui (p_ui - x_u.y_i)^2 + regularization (|X|^2 + |Y|^2)`` with
    ``p_ui = 1`` for observed pairs (0 otherwise) and confidence ``c_ui = 1 + alpha * r_ui``
    (``r`` binary, so ``1 + alpha``). With ``use_implicit=True`` and the ``implicit`` package
    installed, epochs run its CPU conjugate-gradient solver (we hand it the confidence matrix and
    ``alpha=1`` because implicit uses the stored value itself as the confidence); otherwise a
    vectorised numpy conjugate-gradient ALS of the same form runs (3 CG steps per half-epoch,
    warm-started, like implicit). ``num_threads`` pins implicit's OpenMP threads and the BLAS
    threads during fitting (0 = library default). ``backend_`` says which one ran.
    """

    name = "IALS"
    supports_profiles = True
    epochs_param = "iterations"
    search_space: ClassVar[SearchSpace] = {
        "factors": {"type": "int", "low": 1, "high": 200},
        "alpha": {"type": "float", "low": 1e-3, "high": 50.0, "log": True},
        "regularization": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    }

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 0,
        use_implicit: bool = True,
        num_threads: int = 1,
        cg_steps: int = 3,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.use_implicit = use_implicit
        self.num_threads = num_threads
        self.cg_steps = cg_steps

    # -- training
    def _confidence(self, train: Interactions) -> sp.csr_matrix:
        c = binary_matrix(train)
        c.data *= np.float32(self.alpha)
        c.data += np.float32(1.0)
        return c

    def _validate(self, n_epochs: int | None) -> int:
        _positive_int(self.factors, "factors", "IALS")
        _positive_int(self.cg_steps, "cg_steps", "IALS")
        _positive_float(self.regularization, "regularization", "IALS", allow_zero=True)
        _positive_float(self.alpha, "alpha", "IALS", allow_zero=True)
        if self.num_threads < 0:
            raise ValueError(f"IALS: num_threads must be >= 0, got {self.num_threads!r}")
        return _positive_int(self.iterations if n_epochs is None else n_epochs, "epochs", "IALS")

    def fit_iter(self, train: Interactions, n_epochs: int | None = None) -> Iterator[int]:
        epochs = self._validate(n_epochs)
        conf = self._confidence(train)
        self.train_matrix_ = binary_matrix(train)
        self.epochs_done_ = 0
        limits = threadpool_limits(self.num_threads, user_api="blas") if self.num_threads else None
        try:
            step = self._implicit_stepper(conf) if self.use_implicit else None
            if step is None:
                step = self._numpy_stepper(conf)
                self.backend_ = "numpy"
            else:
                self.backend_ = "implicit"
            for epoch in range(1, epochs + 1):
                step()
                self.epochs_done_ = epoch
                yield epoch
        finally:
            if limits is not None:
                limits.restore_original_limits()

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
            num_threads=int(self.num_threads),
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
        self._check_fitted("item_factors_")
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
    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted("item_factors_")
        u = _check_users(users, self.user_factors_.shape[0], "IALS")
        return np.asarray(self.user_factors_[u] @ self.item_factors_.T, dtype=np.float32)

    def score_profiles(self, profiles: Interactions | sp.spmatrix) -> np.ndarray:  # type: ignore[override]
        """Fold-in: exact least-squares user factors for each profile, items fixed."""
        self._check_fitted("item_factors_")
        y = self.item_factors_.astype(np.float64)
        p = profile_matrix(profiles, y.shape[0], "IALS")
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
        self._check_fitted("item_factors_")
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
