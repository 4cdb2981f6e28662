"""Item content for the hybrid neural models (CVAE, CDL): checked, trimmed, scaled, batched.

The papers feed an 8,000-word title+abstract bag of words, each article's counts divided by
its largest count (``mult_nor.mat``: values in [0, 1], read as Bernoulli means). Any item-feature
matrix works the same way: :func:`prepare_content` keeps the ``max_features`` columns present
in the most items (ties: lower column first) and divides every row by its maximum. On
``mult_nor`` both steps change nothing (8,000 columns, row maxima already 1); on the binary
CiteULike tag matrix (46,391 tags, the stand-in here) they keep the 8,000 most used tags.
The matrix stays sparse: batches go to the networks as ``(indices, offsets, weights)`` for an
``embedding_bag`` first layer, and only a batch's reconstruction target is made dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["ContentMatrix", "prepare_content"]


@dataclass(frozen=True)
class ContentMatrix:
    """Prepared content: ``matrix`` (items x kept features, float32 CSR, values in [0, 1]).

    ``columns`` are the kept column indices of the input matrix, in their original order;
    ``n_input_features`` is the input's column count.
    """

    matrix: sp.csr_matrix
    columns: np.ndarray
    n_input_features: int

    @property
    def n_features(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def empty_items(self) -> int:
        """Items without any content (their rows are all zero)."""
        return int(np.count_nonzero(np.diff(self.matrix.indptr) == 0))


def prepare_content(
    features: sp.spmatrix | None, n_items: int, *, max_features: int | None, model: str
) -> ContentMatrix:
    """Check ``features`` (items x features, >= 0) and apply the two steps of the module doc.

    Raises ``ValueError`` naming ``model`` when there is no content, the row count is not the
    item count, or values are negative or not finite.
    """
    if features is None:
        raise ValueError(
            f"{model}: needs item content; the training Interactions have no item_features "
            "(load CiteULike-a with item_features='tags' or the bag of words)"
        )
    x = sp.csr_matrix(features, dtype=np.float32, copy=True)
    if x.shape[0] != n_items:
        raise ValueError(
            f"{model}: item_features has {x.shape[0]} rows for {n_items} items"
        )
    x.sum_duplicates()
    x.eliminate_zeros()
    if x.nnz and not np.all(np.isfinite(x.data)):
        raise ValueError(f"{model}: item_features holds non-finite values")
    if x.nnz and float(x.data.min()) < 0:
        raise ValueError(
            f"{model}: item_features must be >= 0 (read as Bernoulli means), "
            f"found {float(x.data.min())}"
        )
    if max_features is not None and (
        isinstance(max_features, bool)
        or not isinstance(max_features, int | np.integer)
        or max_features < 1
    ):
        raise ValueError(
                f"{model}: max_features must be a positive integer or None, got {max_features!r}"
            )
    n_in = int(x.shape[1])
    if max_features is not None and n_in > max_features:
        df = np.bincount(x.indices, minlength=n_in)
        # stable sort on -df: equal frequencies keep the lower column first
        keep = np.sort(np.argsort(-df, kind="stable")[: int(max_features)])
        x = sp.csr_matrix(x[:, keep])
    else:
        keep = np.arange(n_in)
    if x.nnz:
        row_max = np.maximum.reduceat(x.data, x.indptr[:-1][np.diff(x.indptr) > 0])
        scale = np.ones(x.shape[0], dtype=np.float32)
        scale[np.diff(x.indptr) > 0] = row_max
        x.data /= np.repeat(scale, np.diff(x.indptr))
    return ContentMatrix(matrix=x, columns=keep.astype(np.int64), n_input_features=n_in)
