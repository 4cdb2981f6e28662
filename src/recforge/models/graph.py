"""Random-walk item similarity models P3alpha and RP3beta (paper §4.4-4.5).

Both build a three-step walk item -> user -> item:

- ``P_ui = r_ui / sum_j r_uj`` (rows of ``R`` L1-normalised; ``R`` as stored),
- ``P_iu = 1 / |U_i|`` (rows of the binarised ``R^T`` L1-normalised),
- both raised element-wise to ``alpha`` **after** normalising (no renormalisation),
- ``W = P_iu @ P_ui`` with a zero diagonal. RP3beta multiplies ``W[i, j]`` by ``pop(j)^-beta``
  (pop = users of the target item j in the binarised matrix; 0 for items nobody used) before
  any pruning, so ``beta = 0`` is P3alpha.

Then, in this order: keep the ``top_k`` largest entries of each ROW, L1-normalise each row if
``normalize_similarity``, keep the ``top_k`` largest entries of each COLUMN. Ties at either cut
keep the lower index (the paper's argsort order is arbitrary). Scores are ``binary profile @ W``.

``W`` is computed in row blocks (see :func:`recforge.models.similarity.topk_product`), so memory
stays bounded by ``memory_budget_mb`` plus the kept entries.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import optional_threads
from recforge.models.knn import _ItemBased
from recforge.models.params import Param
from recforge.models.similarity import top_k_per_column, topk_product

__all__ = ["P3alpha", "RP3beta"]


def _row_l1(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    sums = np.asarray(np.abs(m).sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    m.data *= np.repeat(scale, np.diff(m.indptr))
    return m


class _RandomWalk(_ItemBased):
    _test_params: ClassVar[dict[str, Any]] = {"top_k": 5, "n_threads": 1}
    param_rules: ClassVar[dict[str, Param]] = {
        "top_k": Param(ge=1), "alpha": Param(ge=0), "memory_budget_mb": Param(gt=0),
        "n_threads": Param(ge=1),
    }

    def __init__(
        self,
        top_k: int = 100,
        alpha: float = 1.0,
        normalize_similarity: bool = False,
        memory_budget_mb: float = 512.0,
        n_threads: int | None = None,
    ) -> None:
        self.top_k = top_k
        self.alpha = alpha
        self.normalize_similarity = normalize_similarity
        self.memory_budget_mb = memory_budget_mb
        self.n_threads = n_threads

    def _popularity_exponent(self) -> float | None:
        """-beta for RP3beta; None where no popularity penalty applies."""
        return None

    def _check_number(self, name: str) -> None:
        v = getattr(self, name)
        if not (isinstance(v, int | float | np.number) and not isinstance(v, bool)) or not (
            np.isfinite(v) and v >= 0
        ):
            raise ValueError(
                f"{type(self).__name__}: {name} must be a finite number >= 0, got {v!r}"
            )

    def _validate(self) -> None:
        k = self.top_k
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"{type(self).__name__}: top_k must be an integer >= 1, got {k!r}")
        self._check_number("alpha")
        optional_threads(self.n_threads, type(self).__name__)

    def _fit(self, train: Interactions) -> None:
        self._validate()
        r = train.matrix
        if r.nnz and r.data.min() < 0:
            raise ValueError(f"{type(self).__name__}: the training matrix holds negative values")
        binary = binary_matrix(r)
        p_ui = _row_l1(r)
        p_ui.eliminate_zeros()  # an explicit zero must stay 0 under x ** 0
        p_iu = _row_l1(binary.T.tocsr())
        if self.alpha != 1:
            p_ui.data **= float(self.alpha)
            p_iu.data **= float(self.alpha)
        col_weight = None
        exponent = self._popularity_exponent()
        if exponent is not None:
            pop = np.asarray(binary.sum(axis=0), dtype=np.float64).ravel()
            col_weight = np.zeros_like(pop)
            np.power(pop, exponent, out=col_weight, where=pop > 0)
        w = topk_product(
            p_iu,
            p_ui,
            int(self.top_k),
            col_weight=col_weight,
            zero_diagonal=True,
            memory_budget_mb=self.memory_budget_mb,
            n_threads=self.n_threads,
        )
        if self.normalize_similarity:
            w = _row_l1(w)
        self.W_ = top_k_per_column(w, int(self.top_k))
        self.train_matrix_ = binary

    def _fold_in(self, profiles: sp.csr_matrix) -> sp.csr_matrix:
        """Fold-in profiles are binarised like the training ones."""
        return binary_matrix(profiles)


class P3alpha(_RandomWalk):
    """P3alpha (Cooper et al. 2014) as in the paper's code; see the module docstring.

    Fitted: ``W_`` (items x items) and ``train_matrix_`` (binarised ``R``).
    """

    name = "P3alpha"
    search_space: ClassVar[dict[str, dict[str, Any]]] = {
        "top_k": {"type": "int", "low": 5, "high": 800},
        "alpha": {"type": "float", "low": 0.0, "high": 2.0, "log": False},
        "normalize_similarity": {"type": "categorical", "choices": [True, False]},
    }


class RP3beta(_RandomWalk):
    """RP3beta (Paudel et al. 2017) as in the paper's code; see the module docstring.

    Fitted: ``W_`` (items x items) and ``train_matrix_`` (binarised ``R``).
    """

    name = "RP3beta"
    param_rules: ClassVar[dict[str, Param]] = {**_RandomWalk.param_rules, "beta": Param(ge=0)}
    search_space: ClassVar[dict[str, dict[str, Any]]] = {
        "top_k": {"type": "int", "low": 5, "high": 800},
        "alpha": {"type": "float", "low": 0.0, "high": 2.0, "log": False},
        "beta": {"type": "float", "low": 0.0, "high": 2.0, "log": False},
        "normalize_similarity": {"type": "categorical", "choices": [True, False]},
    }

    def __init__(
        self,
        top_k: int = 100,
        alpha: float = 1.0,
        beta: float = 0.6,
        normalize_similarity: bool = False,
        memory_budget_mb: float = 512.0,
        n_threads: int | None = None,
    ) -> None:
        super().__init__(
            top_k=top_k,
            alpha=alpha,
            normalize_similarity=normalize_similarity,
            memory_budget_mb=memory_budget_mb,
            n_threads=n_threads,
        )
        self.beta = beta

    def _validate(self) -> None:
        super()._validate()
        self._check_number("beta")

    def _popularity_exponent(self) -> float | None:
        return -float(self.beta)
