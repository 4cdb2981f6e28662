"""Training-matrix preparation shared by the models (one binarisation for all)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions

__all__ = ["binary_matrix"]


def binary_matrix(train: Interactions | sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Float32 CSR copy of ``train`` with every stored value set to 1 (explicit zeros dropped)."""
    m = train.matrix if isinstance(train, Interactions) else train
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out
