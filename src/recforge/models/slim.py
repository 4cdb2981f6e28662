"""SLIM ElasticNet (Ning & Karypis 2011), as in the RecSys'19 paper's framework.

For every item j one scikit-learn ``ElasticNet`` regresses column j of the binary matrix X on
all columns, with column j itself zeroed (so an item cannot explain itself), no intercept,
non-negative coefficients and random coordinate selection. The largest ``top_k``
coefficients become column j of the item-item matrix W; ``score(u) = x_u W``.

Paper quirk: the paper keeps ``min(nnz - 1, topK)`` coefficients, so when an item has at most
``topK`` non-zero coefficients its smallest one is always dropped (and an item with a single
coefficient gets none). ``paper_drop_quirk=True`` reproduces that; the default keeps
``min(nnz, top_k)``.

Two solvers of the same per-item problem (``solver``):

- ``"numba"`` (default): one compiled kernel (:mod:`._slim_numba`) runs coordinate descent on
  the residual with active sets and Anderson extrapolation, in parallel over item columns
  (``n_jobs`` threads). It sweeps only the items
  that co-occur with j more than ``alpha * l1_ratio * n_users`` times, which is exact for
  ``positive_only`` (no other coefficient can be non-zero at the optimum), and stops by
  scikit-learn's rule: duality gap at most ``tol * ||y||^2``. Coefficients therefore agree with
  scikit-learn's to within that tolerance (both are within it of the unique optimum; the
  coordinate order differs), not bit for bit.
- ``"sklearn"``: the reference, one scikit-learn ``ElasticNet`` fit per item (random
  coordinate order, ``random_state=seed``), in ``n_jobs`` loky worker processes.

Where 100 sweeps are not enough to reach the gap (tiny ``alpha``), both stop at ``max_iter``
unconverged; ``converged_`` records per item whether the fast solver met the gap.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recforge._kernels.topk import select_rows
from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models.base import Recommender
from recforge.models.params import Param
from recforge.models.similarity import pinned_threads, sparse_dense_product

__all__ = [
    "ANDERSON", "SOLVERS", "SLIMElasticNet", "fit_slim_columns", "fit_slim_numba", "keep_count",
]

SOLVERS = ("numba", "sklearn")
ANDERSON = 5  # iterates per Anderson extrapolation of the numba solver (0: plain CD)


def keep_count(nnz: int, top_k: int, paper_drop_quirk: bool) -> int:
    """How many of an item's ``nnz`` non-zero coefficients survive pruning."""
    if paper_drop_quirk:
        return max(0, min(nnz - 1, top_k))
    return min(nnz, top_k)


def fit_slim_columns(
    x_csc: sp.csc_matrix,
    items: Sequence[int] | np.ndarray,
    params: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit the ElasticNet of each item in ``items``; return (row, col, value) of kept weights.

    ``x_csc`` is modified while an item is fitted (its column's values set to 0) and restored
    afterwards, so no per-item copy of X is made. The function runs in worker processes too.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import ElasticNet

    model = ElasticNet(
        alpha=params["alpha"],
        l1_ratio=params["l1_ratio"],
        positive=params["positive_only"],
        fit_intercept=False,
        copy_X=False,
        precompute=False,
        selection="random",
        max_iter=params["max_iter"],
        tol=params["tol"],
        random_state=params["seed"],
        warm_start=False,
    )
    top_k, quirk = params["top_k"], params["paper_drop_quirk"]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    data, indptr = x_csc.data, x_csc.indptr
    n_users = x_csc.shape[0]
    with warnings.catch_warnings():
        # 100 iterations rarely converge on a tiny alpha; the paper accepts that silently.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for j in items:
            a, b = indptr[j], indptr[j + 1]
            y = np.zeros(n_users, dtype=np.float32)
            y[x_csc.indices[a:b]] = data[a:b]
            saved = data[a:b].copy()
            data[a:b] = 0.0
            try:
                model.fit(x_csc, y)
            finally:
                data[a:b] = saved
            coef = model.coef_
            nz = np.flatnonzero(coef)
            keep = keep_count(nz.size, top_k, quirk)
            if keep == 0:
                continue
            if keep < nz.size:
                # the `keep` largest coefficients, ties to the lower item index (the one top-k)
                _, pos, _ = select_rows(coef[nz][None, :], keep)
                nz = nz[pos]
            rows.append(nz)
            cols.append(np.full(nz.size, j, dtype=np.int64))
            vals.append(coef[nz].astype(np.float32))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def _fit_block_worker(
    x_csc: sp.csc_matrix, items: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # joblib hands large arrays to workers as read-only memmaps; the column zeroing needs a
    # writable X, so copy once per block (not per item).
    if not x_csc.data.flags.writeable:
        x_csc = x_csc.copy()
    # one BLAS/OpenMP thread per worker process: the parallelism is over item blocks
    with threadpool_limits(1):
        return fit_slim_columns(x_csc, items, params)


def fit_slim_numba(
    x_csc: sp.csc_matrix, params: dict[str, Any], n_threads: int, anderson: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Every item's ElasticNet by the numba kernel: (W as float32 CSR, rounds, converged).

    ``x_csc`` must be binary (as :func:`binary_matrix` makes it) with sorted indices.
    ``anderson``: iterates per Anderson extrapolation (0 = plain coordinate descent; None =
    :data:`ANDERSON`); it changes the speed, not the stopping rule.
    """
    anderson = ANDERSON if anderson is None else anderson
    if isinstance(anderson, bool) or not isinstance(anderson, int) or anderson < 0:
        raise ValueError(f"fit_slim_numba: anderson must be an integer >= 0, got {anderson!r}")
    from recforge.models import _slim_numba as kernel

    n_users, n_items = x_csc.shape
    if not np.all(x_csc.data == 1):
        raise ValueError("SLIMElasticNet: solver='numba' needs a binary matrix")
    x_csr = x_csc.tocsr()
    x_csr.sort_indices()
    norm2 = np.diff(x_csc.indptr).astype(np.float64)  # squared column norms of a binary X
    l1 = params["alpha"] * params["l1_ratio"] * n_users
    l2 = params["alpha"] * (1.0 - params["l1_ratio"]) * n_users
    positive = params["positive_only"]
    screen = positive and l1 > 0.0
    top_k = min(params["top_k"], n_items)
    items = np.arange(n_items, dtype=np.int64)
    x_args = (x_csc.indptr.astype(np.int64), x_csc.indices.astype(np.int32),
              x_csr.indptr.astype(np.int64), x_csr.indices.astype(np.int32),
              np.ones(x_csc.nnz), norm2)
    with pinned_threads(n_threads) as n:
        n_chunks = min(n_items, 8 * n) if n_items else 1
        counts = kernel.candidate_counts(items, *x_args, l1, screen, n_chunks)
        seg = np.minimum(counts, top_k)  # room for each item's kept coefficients
        out_ptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(seg, out=out_ptr[1:])
        out_rows = np.zeros(out_ptr[-1], dtype=np.int64)
        out_vals = np.zeros(out_ptr[-1], dtype=np.float64)
        n_kept = np.zeros(n_items, dtype=np.int64)
        sweeps = np.zeros(n_items, dtype=np.int64)
        gaps = np.zeros(n_items, dtype=np.float64)
        tols = np.zeros(n_items, dtype=np.float64)
        kernel.fit_columns(
            items, *x_args, n_users, l1, l2, params["max_iter"], params["tol"], positive,
            screen, max(top_k, 1), params["paper_drop_quirk"] and top_k > 0, out_ptr,
            out_rows, out_vals, n_kept, sweeps, gaps, tols, n_chunks, anderson,
        )
    mask = np.arange(out_ptr[-1]) - np.repeat(out_ptr[:-1], seg) < np.repeat(n_kept, seg)
    cols = np.repeat(items, seg)[mask]
    w = sp.csr_matrix(
        (out_vals[mask].astype(np.float32), (out_rows[mask], cols)),
        shape=(n_items, n_items), dtype=np.float32,
    )
    return w, sweeps, gaps <= tols


class SLIMElasticNet(Recommender):
    """SLIM with an ElasticNet per item; see the module docstring for the exact procedure.

    ``n_jobs``: threads of the numba solver, or joblib (loky) worker processes of the sklearn
    one (each limited to one BLAS thread); the result does not depend on it (the numba solver's
    columns are independent; sklearn fits every item with ``random_state=seed``).

    After fitting: ``item_weights_`` (W), ``n_iter_`` (sweeps per item) and ``converged_``
    (duality gap met per item); the last two only for ``solver="numba"`` (else None).
    """

    name = "SLIMElasticNet"
    supports_profiles = True
    search_space: ClassVar[dict[str, dict[str, Any]]] = {
        "top_k": {"type": "int", "low": 5, "high": 800},
        "l1_ratio": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
        "alpha": {"type": "float", "low": 1e-3, "high": 1.0},
    }
    param_rules: ClassVar[dict[str, Param]] = {
        "top_k": Param(ge=1), "l1_ratio": Param(ge=0, le=1), "alpha": Param(ge=0),
        "max_iter": Param(ge=1), "tol": Param(gt=0), "n_jobs": Param(ge=1),
        "solver": Param(choices=SOLVERS),
    }
    _test_params: ClassVar[dict[str, Any]] = {"top_k": 10, "alpha": 1e-3, "l1_ratio": 0.1}

    def __init__(
        self,
        top_k: int = 100,
        l1_ratio: float = 0.1,
        alpha: float = 1.0,
        max_iter: int = 100,
        tol: float = 1e-4,
        positive_only: bool = True,
        paper_drop_quirk: bool = False,
        seed: int = 0,
        n_jobs: int = 1,
        solver: Literal["numba", "sklearn"] = "numba",
    ) -> None:
        self.top_k = top_k
        self.l1_ratio = l1_ratio
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.positive_only = positive_only
        self.paper_drop_quirk = paper_drop_quirk
        self.seed = seed
        self.n_jobs = n_jobs
        self.solver = solver

    def _checked_params(self) -> dict[str, Any]:
        for name in ("top_k", "max_iter", "n_jobs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"SLIMElasticNet: {name} must be a positive integer, got {v!r}")
        if not 0.0 <= float(self.l1_ratio) <= 1.0:
            raise ValueError(f"SLIMElasticNet: l1_ratio must be in [0, 1], got {self.l1_ratio!r}")
        if not float(self.alpha) > 0.0:
            raise ValueError(f"SLIMElasticNet: alpha must be > 0, got {self.alpha!r}")
        if not float(self.tol) > 0.0:
            raise ValueError(f"SLIMElasticNet: tol must be > 0, got {self.tol!r}")
        if self.solver not in SOLVERS:
            raise ValueError(
                f"SLIMElasticNet: unknown solver {self.solver!r}; choose one of {list(SOLVERS)}")
        return {
            "alpha": float(self.alpha),
            "l1_ratio": float(self.l1_ratio),
            "positive_only": bool(self.positive_only),
            "max_iter": int(self.max_iter),
            "tol": float(self.tol),
            "seed": int(self.seed),
            "top_k": int(self.top_k),
            "paper_drop_quirk": bool(self.paper_drop_quirk),
        }

    def _fit(self, train: Interactions) -> None:
        params = self._checked_params()
        x = binary_matrix(train)
        x_csc = sp.csc_matrix(x)
        x_csc.sort_indices()
        self.n_iter_: np.ndarray | None = None
        self.converged_: np.ndarray | None = None
        if self.solver == "numba":
            w, self.n_iter_, self.converged_ = fit_slim_numba(x_csc, params, int(self.n_jobs))
        else:
            w = self._fit_sklearn(x_csc, params)
        w.sort_indices()
        self.item_weights_ = w
        self.train_matrix_ = x

    def _fit_sklearn(self, x_csc: sp.csc_matrix, params: dict[str, Any]) -> sp.csr_matrix:
        n_items = x_csc.shape[1]
        n_jobs = min(int(self.n_jobs), max(1, n_items))
        if n_jobs == 1:
            parts = [fit_slim_columns(x_csc, np.arange(n_items), params)]
        else:
            from joblib import Parallel, delayed

            # several blocks per worker so a slow block does not leave the others idle
            blocks = np.array_split(np.arange(n_items), min(n_items, 4 * n_jobs))
            parts = Parallel(n_jobs=n_jobs, backend="loky")(
                delayed(_fit_block_worker)(x_csc, blk, params) for blk in blocks
            )
        rows = np.concatenate([p[0] for p in parts])
        cols = np.concatenate([p[1] for p in parts])
        vals = np.concatenate([p[2] for p in parts])
        return sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)

    def _scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return sparse_dense_product(rows, self.item_weights_, int(self.n_jobs))

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._scores(self.train_matrix_[users])

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._scores(binary_matrix(profiles))
