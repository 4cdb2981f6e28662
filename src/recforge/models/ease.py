"""EASE^R (Steck 2019), the closed-form linear item-item model (moved here from ``mf``)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import optional_threads, positive_float
from recforge.models.base import Recommender, SearchSpace
from recforge.models.params import Param

__all__ = ["EASE"]


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
    param_rules: ClassVar[dict[str, Param]] = {
        "l2_norm": Param(gt=0), "memory_budget_mb": Param(gt=0), "n_threads": Param(ge=1),
    }
    _test_params: ClassVar[dict[str, Any]] = {"l2_norm": 5.0, "n_threads": 1}

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

    def _fit(self, train: Interactions) -> None:
        lam = positive_float(self.l2_norm, "l2_norm", "EASE")
        threads = optional_threads(self.n_threads, "EASE")
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

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self._scores(self.train_matrix_[users])

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        return self._scores(binary_matrix(profiles))


def _symmetrize_from_upper(a: np.ndarray, block: int = 512) -> None:
    """Copy the upper triangle of square ``a`` into its lower triangle, in place, by blocks."""
    n = a.shape[0]
    for s in range(0, n, block):
        e = min(n, s + block)
        d = a[s:e, s:e]
        d[...] = np.triu(d) + np.triu(d, 1).T
        if e < n:
            a[e:, s:e] = a[s:e, e:].T
