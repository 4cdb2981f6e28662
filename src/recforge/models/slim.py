"""SLIM ElasticNet (Ning & Karypis 2011), as in the RecSys'19 paper's framework.

For every item j one scikit-learn ``ElasticNet`` regresses column j of the binary matrix X on
all columns, with column j itself zeroed (so an item cannot explain itself), no intercept,
non-negative coefficients and random coordinate selection. The largest ``top_k``
coefficients become column j of the item-item matrix W; ``score(u) = x_u W``.

Paper quirk: the paper keeps ``min(nnz - 1, topK)`` coefficients, so when an item has at most
``topK`` non-zero coefficients its smallest one is always dropped (and an item with a single
coefficient gets none). ``paper_drop_quirk=True`` reproduces that; the default keeps
``min(nnz, top_k)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recforge._kernels.topk import select_rows
from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models.base import Recommender
from recforge.models.params import Param

__all__ = ["SLIMElasticNet", "fit_slim_columns", "keep_count"]


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


class SLIMElasticNet(Recommender):
    """SLIM with an ElasticNet per item; see the module docstring for the exact procedure.

    ``n_jobs > 1`` fits item blocks in that many joblib (loky) worker processes, each limited
    to one BLAS thread; the result does not depend on ``n_jobs`` (every item is fitted with
    ``random_state=seed``).
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
        n_items = x.shape[1]
        x_csc = sp.csc_matrix(x)
        x_csc.sort_indices()
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
        w = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
        w.sort_indices()
        self.item_weights_ = w
        self.train_matrix_ = x

    def _scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray((rows @ self.item_weights_).toarray(), dtype=np.float32)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._scores(self.train_matrix_[users])

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._scores(binary_matrix(profiles))
