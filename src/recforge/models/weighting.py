"""IR feature weighting of a sparse matrix's rows: TF-IDF and Okapi BM25 (paper §4.3).

Both treat every row as a "document" and every column as a "term": ``N`` is the number of rows,
``df`` of a column is its number of stored non-zero entries, and only stored entries change
(the sparsity pattern is kept). The IDF is ``log(N / (1 + df))`` exactly as in the paper's code,
so a column present in every row gets a (slightly) negative weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["bm25", "tfidf", "weight_new_columns"]


def _prepare(matrix: sp.spmatrix | sp.sparray | np.ndarray, what: str) -> sp.csr_matrix:
    m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if m.ndim != 2:
        raise ValueError(f"{what}: expected a 2-d matrix, got shape {m.shape}")
    m.sum_duplicates()
    m.eliminate_zeros()
    if m.nnz and not np.all(np.isfinite(m.data)):
        raise ValueError(f"{what}: matrix holds non-finite values")
    if m.nnz and m.data.min() < 0:
        raise ValueError(f"{what}: matrix holds negative values (weighting needs counts >= 0)")
    return m


def _idf(m: sp.csr_matrix) -> np.ndarray:
    n_rows = float(m.shape[0])
    df = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float64)
    with np.errstate(divide="ignore"):
        return np.log(n_rows / (1.0 + df))


def tfidf(matrix: sp.spmatrix | sp.sparray | np.ndarray) -> sp.csr_matrix:
    """TF-IDF of the rows: ``w = sqrt(x) * log(N / (1 + df_col))``; float32 CSR, same pattern."""
    m = _prepare(matrix, "tfidf")
    m.data = np.sqrt(m.data) * _idf(m)[m.indices]
    return sp.csr_matrix(m, dtype=np.float32)


def bm25(
    matrix: sp.spmatrix | sp.sparray | np.ndarray, k1: float = 1.2, b: float = 0.75
) -> sp.csr_matrix:
    """Okapi BM25 of the rows; float32 CSR, same pattern.

    ``w = x (k1 + 1) / (k1 L_row + x) * log(N / (1 + df_col))`` with
    ``L_row = (1 - b) + b * rowsum / mean(rowsum)`` (mean over all rows, empty ones included).
    """
    if not (np.isfinite(k1) and k1 >= 0):
        raise ValueError(f"bm25: k1 must be a finite number >= 0, got {k1!r}")
    if not (np.isfinite(b) and 0 <= b <= 1):
        raise ValueError(f"bm25: b must lie in [0, 1], got {b!r}")
    m = _prepare(matrix, "bm25")
    if m.nnz == 0:
        return sp.csr_matrix(m, dtype=np.float32)
    row_sums = np.asarray(m.sum(axis=1)).ravel()
    length_norm = (1.0 - b) + b * row_sums / row_sums.mean()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    x = m.data
    m.data = x * (k1 + 1.0) / (k1 * length_norm[rows] + x) * _idf(m)[m.indices]
    return sp.csr_matrix(m, dtype=np.float32)


def weight_new_columns(
    columns: sp.spmatrix | sp.sparray | np.ndarray,
    method: str,
    n_rows: int,
    row_sums: np.ndarray | None = None,
    k1: float = 1.2,
    b: float = 0.75,
) -> sp.csr_matrix:
    """Weight extra columns as if appended to an already weighted matrix.

    ``columns`` holds one new column per row (e.g. fold-in user profiles, users x items, for a
    weighting of the items x users matrix). The IDF of a new column is computed from its own
    non-zeros with the original ``n_rows``; BM25's row lengths come from ``row_sums`` of the
    original matrix (the new column itself is not added to them). For a column that was part of
    the original matrix this reproduces its weights exactly.
    """
    if method not in ("TF-IDF", "BM25"):
        raise ValueError(f"weight_new_columns: method must be 'TF-IDF' or 'BM25', got {method!r}")
    m = _prepare(columns, "weight_new_columns")
    if m.shape[1] != n_rows:
        raise ValueError(
            f"weight_new_columns: columns have {m.shape[1]} entries, expected {n_rows}"
        )
    df = np.diff(m.indptr).astype(np.float64)
    with np.errstate(divide="ignore"):
        idf = np.log(float(n_rows) / (1.0 + df))
    owner = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    if method == "TF-IDF":
        m.data = np.sqrt(m.data) * idf[owner]
    else:
        if row_sums is None or len(row_sums) != n_rows:
            raise ValueError("weight_new_columns: BM25 needs row_sums of the original matrix")
        rs = np.asarray(row_sums, dtype=np.float64)
        mean = rs.mean() if rs.size else 0.0
        length_norm = (1.0 - b) + b * (rs / mean if mean > 0 else np.zeros_like(rs))
        x = m.data
        m.data = x * (k1 + 1.0) / (k1 * length_norm[m.indices] + x) * idf[owner]
    return sp.csr_matrix(m, dtype=np.float32)
