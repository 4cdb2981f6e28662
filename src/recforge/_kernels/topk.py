"""The one top-k: its tie rule, dense score blocks (evaluator, recommend), rows and sparse columns.

One tie rule everywhere (``TIE_RULE``): a higher value ranks first; among equal values the
**lower index** ranks first (``-0.0`` equals ``0.0``). ``"numpy-legacy"`` (``TIE_RULES``) is
the named alternative that reproduces the RecSys'19 code's numpy order among ties.

- :func:`select_topk`: the k best items of each row of a dense float32 score block, skipping a
  per-user mask (seen items) or restricted to per-user candidate sets, with test-hit lookup.
- :func:`select_rows`: the k best entries of each row of a dense array of any real dtype
  (similarity pruning, SLIM's coefficients).
- :func:`select_stored`: the k best stored entries of each column of a sparse matrix (graph
  models' column pruning).

``select_topk`` has two interchangeable backends with identical output:

- ``"numba"``: one fused, parallel (``prange`` over rows) pass per block that skips excluded
  items by walking the exclusion CSR row alongside the scan, keeps a k-entry heap per row and
  looks the kept items up in the user's sorted test row. The score block is only read, never
  copied (a broadcast view such as TopPopular's costs nothing).
- ``"numpy"``: copy, mask through a flat index built from the CSR row pointers, pack
  (score, item) into one int64 key per cell so that ``argpartition`` has no ties, then sort
  only the k kept keys.

Tie rule (both backends): higher score first; among equal scores the **lower item index**
ranks first (``-0.0`` equals ``0.0``). Items scored ``-inf`` are dropped, so a row may keep
fewer than k items. NaN scores raise ``ValueError``.

``tie_rule="numpy-legacy"`` instead reproduces the RecSys'19 evaluator's order exactly:
``argpartition(-scores, kth=k)[:k]`` then quicksort ``argsort`` of the kept scores, as numpy
<= 1.24 computes them (:mod:`recforge._kernels.legacy`). It only differs from the default among
tied scores, but where ties dominate (integer-valued scores, e.g. UserKNN with
``normalize=False``; near-identical items) it is needed to match the paper's numbers. It runs a
per-row loop (slower) and ignores ``backend``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "TIE_RULE",
    "TIE_RULES",
    "Backend",
    "TieRule",
    "TopK",
    "gather_rows",
    "numba_available",
    "resolve_backend",
    "select_rows",
    "select_stored",
    "select_topk",
]

Backend = Literal["auto", "numba", "numpy"]

TIE_RULE = (
    "score descending; equal scores ordered by item index ascending (lower index first); "
    "-inf scores dropped"
)
TieRule = Literal["lower-index", "numpy-legacy"]
TIE_RULES: dict[str, str] = {
    "lower-index": TIE_RULE,
    "numpy-legacy": (
        "score descending; equal scores in the order of numpy<=1.24 argpartition(kth=k) + "
        "quicksort argsort on the negated scores (RecSys'19 evaluator); -inf scores dropped"
    ),
}

_KERNELS: ModuleType | None = None
_KERNELS_ERROR: str | None = None


def _load_kernels() -> ModuleType | None:
    global _KERNELS, _KERNELS_ERROR
    if _KERNELS is None and _KERNELS_ERROR is None:
        if os.environ.get("RECFORGE_DISABLE_NUMBA", "") not in ("", "0"):
            _KERNELS_ERROR = "disabled by RECFORGE_DISABLE_NUMBA"
            return None
        try:
            from recforge._kernels import _select_numba
        except Exception as exc:  # ImportError, or a numba/llvmlite failure on this platform
            _KERNELS_ERROR = f"{type(exc).__name__}: {exc}"
        else:
            _KERNELS = _select_numba
    return _KERNELS


def numba_available() -> bool:
    """Whether the compiled kernels can be used (imports and compiles them on first call)."""
    return _load_kernels() is not None


def resolve_backend(backend: Backend) -> Literal["numba", "numpy"]:
    """Map ``"auto"`` to ``"numba"`` when it works, else ``"numpy"``; validate the name."""
    if backend == "auto":
        return "numba" if numba_available() else "numpy"
    if backend == "numba":
        if not numba_available():
            raise RuntimeError(f"backend='numba' requested but numba is unusable: {_KERNELS_ERROR}")
        return "numba"
    if backend == "numpy":
        return "numpy"
    raise ValueError(f"backend must be 'auto', 'numba' or 'numpy', got {backend!r}")


@dataclass(frozen=True)
class TopK:
    """Selection result for one block of users.

    items: (rows, k) int32, best first, padded with -1 after ``lengths[r]`` entries.
    hits: (rows, k) bool, whether ``items[r, i]`` is one of the row user's test items.
    lengths: (rows,) int32, |L_u| = number of kept items (< k when items were dropped).
    """

    items: np.ndarray
    hits: np.ndarray
    lengths: np.ndarray


def gather_rows(
    indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(position in ``rows``, column) of every stored entry of the selected CSR rows, no loop."""
    starts = indptr[rows].astype(np.int64)
    counts = indptr[rows + 1].astype(np.int64) - starts
    total = int(counts.sum())
    row_pos = np.repeat(np.arange(rows.size, dtype=np.int64), counts)
    # Offset of each entry inside its own row, then shift by that row's start in `indices`.
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    cols = indices[np.repeat(starts, counts) + within]
    return row_pos, cols.astype(np.int64)


def _order_keys(block: np.ndarray) -> np.ndarray:
    """int64 keys whose ascending order is the ranking order (best first), all distinct."""
    bits = block.view(np.int32)
    # IEEE-754 floats order like sign-magnitude ints; flipping the magnitude bits of negatives
    # makes the int32 order equal the float order.
    ordered = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits)
    np.invert(ordered, out=ordered)  # best (largest) score -> smallest key; avoids int overflow
    keys = ordered.astype(np.int64)
    keys <<= 32
    keys |= np.arange(block.shape[1], dtype=np.int64)  # lower item index wins a tie
    return keys


def _select_numpy(
    scores: np.ndarray,
    users: np.ndarray,
    k: int,
    mask_ptr: np.ndarray,
    mask_idx: np.ndarray,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    candidates: bool,
) -> tuple[TopK, np.ndarray]:
    n_rows, n_items = scores.shape
    rows, cols = gather_rows(mask_ptr, mask_idx, users)
    if candidates:
        block = np.full((n_rows, n_items), -np.inf, dtype=np.float32)
        block[rows, cols] = scores[rows, cols]
    else:
        block = np.array(scores, dtype=np.float32, order="C", copy=True)
        block[rows, cols] = -np.inf
    nan_rows: np.ndarray = np.asarray(np.isnan(block).any(axis=1))
    if nan_rows.any():
        return TopK(np.empty((0, k), np.int32), np.empty((0, k), bool), np.empty(0, np.int32)), (
            nan_rows
        )
    block += np.float32(0.0)  # turns -0.0 into +0.0 so both zeros tie, as in the numba kernel
    keys = _order_keys(block)
    kk = min(k, n_items)
    part = np.argpartition(keys, kk - 1, axis=1)[:, :kk] if kk < n_items else None
    top_keys = keys if part is None else np.take_along_axis(keys, part, axis=1)
    del keys, part
    top_keys.sort(axis=1)
    items = (top_keys & np.int64(0xFFFFFFFF)).astype(np.int32)
    # Masked and non-candidate cells hold -inf in `block`; they sort last and are dropped.
    valid = np.take_along_axis(block, items, axis=1) > -np.inf
    # Dropped items sort last, so the valid entries form a prefix of every row.
    lengths = valid.sum(axis=1).astype(np.int32)
    items = np.where(valid, items, -1).astype(np.int32)
    if kk < k:
        pad = np.full((n_rows, k - kk), -1, dtype=np.int32)
        items = np.concatenate([items, pad], axis=1)
        valid = np.concatenate([valid, np.zeros((n_rows, k - kk), bool)], axis=1)
    # Hits: look (row, item) up among the users' test entries, both as sorted flat keys.
    t_rows, t_cols = gather_rows(t_ptr, t_idx, users)
    test_keys = t_rows * n_items + t_cols
    flat = np.arange(n_rows, dtype=np.int64)[:, None] * n_items + np.maximum(items, 0)
    pos = np.searchsorted(test_keys, flat)
    pos = np.minimum(pos, max(test_keys.size - 1, 0))
    hits = valid & (test_keys[pos] == flat) if test_keys.size else np.zeros_like(valid)
    return TopK(items, hits, lengths), nan_rows


def _select_legacy(
    scores: np.ndarray,
    users: np.ndarray,
    k: int,
    mask_ptr: np.ndarray,
    mask_idx: np.ndarray,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    candidates: bool,
) -> tuple[TopK, np.ndarray]:
    from recforge._kernels.legacy import legacy_top

    n_rows, n_items = scores.shape
    items = np.full((n_rows, k), -1, dtype=np.int32)
    hits = np.zeros((n_rows, k), dtype=bool)
    lengths = np.zeros(n_rows, dtype=np.int32)
    nan_rows = np.asarray(np.isnan(scores).any(axis=1))
    if nan_rows.any():
        return TopK(items, hits, lengths), nan_rows
    kk = min(k, n_items)
    for r, u in enumerate(users):
        masked = mask_idx[mask_ptr[u] : mask_ptr[u + 1]]
        if candidates:
            row = np.full(n_items, -np.inf, dtype=np.float32)
            row[masked] = scores[r, masked]
        else:
            row = np.array(scores[r], dtype=np.float32, copy=True)
            row[masked] = -np.inf
        # The paper partitions at kth = cut-off (not cut-off - 1) and keeps the first k.
        top = legacy_top(row, kk, kth=kk)
        top = top[row[top] > -np.inf]
        n = top.size
        items[r, :n] = top
        lengths[r] = n
        hits[r, :n] = np.isin(top, t_idx[t_ptr[u] : t_ptr[u + 1]])
    return TopK(items, hits, lengths), nan_rows


def select_topk(
    scores: np.ndarray,
    users: np.ndarray,
    k: int,
    *,
    mask_ptr: np.ndarray,
    mask_idx: np.ndarray,
    test_ptr: np.ndarray,
    test_idx: np.ndarray,
    candidates: bool,
    backend: Literal["numba", "numpy"],
    tie_rule: TieRule = "lower-index",
) -> tuple[TopK, np.ndarray]:
    """Top-k of each row of ``scores`` (row r belongs to user ``users[r]``).

    ``mask_ptr/mask_idx`` (CSR over all users, sorted unique columns) hold the excluded items
    when ``candidates`` is False, or the allowed candidate items when it is True.
    ``test_ptr/test_idx`` (CSR, sorted) hold the relevant items used for ``hits``.
    Returns the selection and a per-row flag of rows containing NaN scores (when any row has
    NaN the selection is not meaningful and the caller must raise). ``tie_rule`` picks the
    order among equal scores (``TIE_RULES``; the module docstring explains both).
    """
    if tie_rule not in TIE_RULES:
        raise ValueError(f"tie_rule must be one of {list(TIE_RULES)}, got {tie_rule!r}")
    if scores.dtype != np.float32:
        scores = scores.astype(np.float32)
    users = np.ascontiguousarray(users, dtype=np.int64)
    if tie_rule == "numpy-legacy":
        return _select_legacy(scores, users, k, mask_ptr, mask_idx, test_ptr, test_idx, candidates)
    if backend == "numpy":
        return _select_numpy(scores, users, k, mask_ptr, mask_idx, test_ptr, test_idx, candidates)
    kern = _load_kernels()
    assert kern is not None, "resolve_backend() must be called first"
    n_rows = scores.shape[0]
    items = np.full((n_rows, k), -1, dtype=np.int32)
    hits = np.zeros((n_rows, k), dtype=bool)
    lengths = np.zeros(n_rows, dtype=np.int32)
    nan_rows = np.zeros(n_rows, dtype=bool)
    fn = kern.topk_candidates if candidates else kern.topk_full
    fn(scores, users, mask_ptr, mask_idx, test_ptr, test_idx, items, hits, lengths, nan_rows)
    return TopK(items, hits, lengths), nan_rows


def select_rows(
    values: np.ndarray, k: int, *, drop_zeros: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` best entries of each row of a dense 2-d array (any real dtype, no NaN).

    Ranked by ``TIE_RULE`` (higher value first, lower column first among ties), implicit zeros
    included as candidates. With ``drop_zeros`` selected zeros are left out of the result (so a
    tie at a zero cut needs no resolution, which keeps mostly-zero blocks fast).

    Returns flat ``(row, column, value)`` arrays of the kept entries, rows ascending and each
    row's entries best first.
    """
    n_rows, n_cols = values.shape
    k = int(min(k, n_cols))
    if k <= 0 or n_rows == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, values[:0, 0] if n_cols else np.zeros(0, values.dtype)
    if k < n_cols and (best := _rows_numba(values, k)) is not None:
        sel = np.take_along_axis(values, best, axis=1)
        keep = sel != 0 if drop_zeros else np.ones(sel.shape, dtype=bool)
        rows = np.broadcast_to(np.arange(n_rows)[:, None], best.shape)[keep]
        return rows, best[keep].astype(np.int64), sel[keep]
    if k >= n_cols:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    else:
        part = np.argpartition(-values, k - 1, axis=1)[:, :k]
        sel = np.take_along_axis(values, part, axis=1)
        cut = sel.min(axis=1)
        sel_eq = np.count_nonzero(sel == cut[:, None], axis=1)
        all_eq = np.count_nonzero(values == cut[:, None], axis=1)
        tied = all_eq > sel_eq  # argpartition chose arbitrarily among values equal to the cut
        if drop_zeros:
            tied &= cut != 0
        for r in np.flatnonzero(tied):
            row = values[r]
            above = np.flatnonzero(row > cut[r])
            at_cut = np.flatnonzero(row == cut[r])[: k - above.size]
            part[r] = np.concatenate([above, at_cut])
    sel = np.take_along_axis(values, part, axis=1)
    order = np.lexsort((part, -sel), axis=-1)
    part = np.take_along_axis(part, order, axis=1)
    sel = np.take_along_axis(sel, order, axis=1)
    keep = sel != 0 if drop_zeros else np.ones(sel.shape, dtype=bool)
    rows = np.broadcast_to(np.arange(n_rows)[:, None], part.shape)[keep]
    return rows, part[keep], sel[keep]


def _rows_numba(values: np.ndarray, k: int) -> np.ndarray | None:
    """Each row's ``k`` best columns, best first by ``TIE_RULE``, through the evaluator's numba
    kernel (one pass per row instead of a partition of the whole row); None where it does not
    apply: numba unusable, not float32, or a row holding NaN or -inf (which the kernel drops)."""
    kern = _load_kernels()
    if kern is None or values.dtype != np.float32:
        return None
    n_rows = values.shape[0]
    users = np.arange(n_rows, dtype=np.int64)
    no_ptr, no_idx = np.zeros(n_rows + 1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    items = np.full((n_rows, k), -1, dtype=np.int32)
    hits = np.zeros((n_rows, k), dtype=bool)
    lengths = np.zeros(n_rows, dtype=np.int32)
    nan_rows = np.zeros(n_rows, dtype=bool)
    kern.topk_full(values, users, no_ptr, no_idx, no_ptr, no_idx, items, hits, lengths, nan_rows)
    if nan_rows.any() or (lengths < k).any():
        return None
    return items


def select_stored(m: sp.spmatrix | sp.sparray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` best stored entries of every column (``TIE_RULE``: lower row first).

    Only stored entries compete (implicit zeros do not), explicit zeros are dropped first.
    Returns a float32 CSR of the same shape.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    c = sp.csc_matrix(m, dtype=np.float32, copy=True)
    c.sum_duplicates()
    c.eliminate_zeros()
    counts = np.diff(c.indptr)
    if counts.size == 0 or counts.max(initial=0) <= k:
        return c.tocsr()
    cols = np.repeat(np.arange(c.shape[1]), counts)
    order = np.lexsort((c.indices, -c.data, cols))
    rank = np.arange(c.nnz) - c.indptr[cols[order]]
    keep = order[rank < k]
    out = sp.coo_matrix((c.data[keep], (c.indices[keep], cols[keep])), shape=c.shape)
    return out.tocsr()
