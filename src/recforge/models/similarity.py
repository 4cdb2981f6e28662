"""Top-K neighbourhood similarity between the columns of a sparse matrix (paper §4.1-4.2).

Orientation: ``compute_similarity(X)`` compares the **columns** of ``X``. Pass the users x items
matrix ``R`` for item-item similarity and ``R.T`` for user-user similarity (an items x features
ICM is passed as ``ICM.T``). The result ``W`` is ``n x n`` (n = number of columns) and keeps, for
every *target* column ``j``, only its ``top_k`` largest non-zero similarities, stored as
``W[i, j]``; so ``score = profile @ W``.

Formulas (h = shrink; dots and norms over the rows of ``X``; ``j`` is the target column):

- cosine: ``x_i.x_j / (|x_i| |x_j| + h + 1e-6)``; with ``normalize=False``: ``x_i.x_j / h`` if
  ``h > 0`` else the raw dot product.
- adjusted: cosine after subtracting from each stored value its ROW's mean over the row's
  non-zeros; pearson: the same with each COLUMN's mean.
- asymmetric (Aiolli 2013): ``x_i.x_j / (|x_j|^(2a) |x_i|^(2(1-a)) + h + 1e-6)``; always
  normalised (``normalize`` is ignored, as the paper's search fixes it to True).
- jaccard: ``|i & j| / (|i| + |j| - |i & j| + h + 1e-6)`` on binarised data.
- dice: ``|i & j| / (|i| + |j| + h + 1e-6)`` on binarised data. The paper's code has **no factor
  2** (so the maximum is 0.5); ``dice_factor_two=True`` gives the textbook ``2|i & j| / ...``.
- tversky: ``|i & j| / (|i & j| + a (|j| - |i & j|) + b (|i| - |i & j|) + h + 1e-6)`` on
  binarised data, ``a = tversky_alpha`` weighting the unmatched part of the TARGET column ``j``
  and ``b = tversky_beta`` that of the neighbour ``i``, as in the paper's code.

jaccard, dice and tversky ignore ``normalize``. The diagonal is always 0.

Top-K rule: per target column, the ``top_k`` largest values of the full column (implicit zeros
included) are selected and then zeros are dropped, so negative similarities survive only when a
column has fewer than ``top_k`` non-negative entries. Ties at the cut are broken deterministically:
**the lower row index wins** (the paper's argpartition order is arbitrary).

Differences from the paper's code that only matter outside its searched settings: its Cython
version (used for sparse input) ranks only co-occurring columns and pads its candidate array with
stale ids, so with negative similarities (pearson, adjusted, negative IDF) it can keep entries
the Python version drops; we follow the Python version's rule above. The Cython version also
stores ``shrink`` as an int (the paper searched integer shrinks only). In both versions the
asymmetric cosine with ``normalize=False`` degenerates to the unnormalised dot product; we
always normalise it.

``tie_rule="numpy-legacy"`` reproduces the paper's choice among *tied* similarities instead of
"lower row index wins": like its ``Compute_Similarity`` it takes the Python route when ``x`` is
dense (stored fraction > 0.5: a target column's top-K is picked from all ``n`` values, zeros
and the zeroed diagonal included) and the Cython route otherwise (only co-occurring columns, in
the order they are first met walking the target's non-zero rows, zero-padded to ``n``), both with
numpy <= 1.24's ``argpartition`` + quicksort ``argsort`` (:mod:`recforge._kernels.legacy`). Only
the kept neighbours can differ, and only where values tie at the cut (e.g. the RecSys'19
MovieLens-100k ICM bug, whose 2-column ICM makes hundreds of items identical). It loops over
columns in Python (slow on large inputs); the Cython route's stale ids for negative values are
not reproduced (such entries are dropped).

Two engines compute the same thing in bounded memory:

- ``"scipy"``: blocks of target columns; ``X_block^T X`` by a sparse product into a dense
  ``block x n`` array (float64), per-column top-K by
  :func:`recforge._kernels.topk.select_rows`. The block size follows from
  ``memory_budget_mb``.
- ``"numba"``: a compiled kernel that accumulates each target column's dot products over the
  sparse structure (float64), applies the formula only to co-occurring pairs and keeps the top-K
  in a small heap; parallel over columns, blocks of columns sized by the memory budget.

``"auto"`` is numba. BLAS/OpenMP and numba threads are pinned to ``n_threads``
(default: the number of physical cores) for the duration of the call.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from threadpoolctl import ThreadpoolController

from recforge._kernels.heap import better, heap_push
from recforge._kernels.topk import select_rows, select_stored

__all__ = [
    "SIMILARITIES",
    "compute_similarity",
    "physical_cores",
    "pinned_threads",
    "sparse_dense_product",
    "top_k_per_column",
    "topk_product",
]

SIMILARITIES: tuple[str, ...] = (
    "cosine",
    "adjusted",
    "pearson",
    "asymmetric",
    "jaccard",
    "dice",
    "tversky",
)

# Transform modes shared by both engines: s = numer * v * col_weight[c] / den(v, a[r], b[c]).
MODE_SCALE = 0  # den = scale
MODE_PRODUCT = 1  # den = a[r] * b[c] + eps
MODE_JACCARD = 2  # den = a[r] + b[c] - v + eps
MODE_DICE = 3  # den = a[r] + b[c] + eps
MODE_TVERSKY = 4  # den = v + ta (a[r] - v) + tb (b[c] - v) + eps

_BYTES_PER_DENSE_CELL = 8 * 5  # float64 block + negated copy + temporaries of the top-K step


# ----------------------------------------------------------------------------- threads
@functools.cache
def physical_cores() -> int:
    """Physical CPU cores available to this process (falls back to logical CPUs); cached."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - non-Linux
        allowed = set(range(os.cpu_count() or 1))
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu, phys, core = None, "0", None
            for line in fh:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    cpu = int(value)
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    core = value
                elif not key and cpu is not None:
                    if cpu in allowed and core is not None:
                        cores.add((phys, core))
                    cpu, phys, core = None, "0", None
            if cpu is not None and cpu in allowed and core is not None:
                cores.add((phys, core))
    except OSError:
        pass
    return max(1, len(cores) if cores else len(allowed))


_CONTROLLER: ThreadpoolController | None = None


def _controller() -> ThreadpoolController:
    # Scanning the loaded libraries costs milliseconds; once per process is enough.
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


@contextmanager
def pinned_threads(n_threads: int | None) -> Iterator[int]:
    """Limit BLAS/OpenMP (threadpoolctl) and numba threads to ``n_threads`` inside the block."""
    n = physical_cores() if n_threads is None else int(n_threads)
    if n < 1:
        raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
    n = min(n, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with _controller().limit(limits=n):
            yield n
    finally:
        numba.set_num_threads(previous)


# ----------------------------------------------------------------------------- numba kernel
@numba.njit(cache=True, nogil=True, inline="always")
def accumulate_row(
    r: int, a_ptr: Any, a_idx: Any, a_val: Any, b_ptr: Any, b_idx: Any, b_val: Any,
    positive: bool, acc: Any, seen: Any, touched: Any,
) -> int:  # pragma: no cover - compiled
    """Row ``r`` of ``A @ B`` (CSR arrays) into the dense accumulator ``acc``; returns ``n``.

    The columns it touches first are appended to ``touched[:n]``; the caller resets ``acc``
    (and ``seen``) there. ``positive`` (every product > 0): ``acc[c] == 0`` marks a first
    touch, a branch-free append about 2x faster than testing ``seen`` (``touched`` needs one
    spare slot); otherwise ``seen`` marks them. Shared by the similarity and SLIM kernels.
    """
    nt = 0
    if positive:
        for p in range(a_ptr[r], a_ptr[r + 1]):
            u = a_idx[p]
            x = a_val[p]
            for q in range(b_ptr[u], b_ptr[u + 1]):
                c = b_idx[q]
                touched[nt] = c
                nt += acc[c] == 0.0
                acc[c] += x * b_val[q]
    else:
        for p in range(a_ptr[r], a_ptr[r + 1]):
            u = a_idx[p]
            x = a_val[p]
            for q in range(b_ptr[u], b_ptr[u + 1]):
                c = b_idx[q]
                if not seen[c]:
                    seen[c] = True
                    touched[nt] = c
                    nt += 1
                acc[c] += x * b_val[q]
    return nt


@numba.njit(cache=True, parallel=True)
def _topk_kernel(
    a_ptr: Any, a_idx: Any, a_val: Any, b_ptr: Any, b_idx: Any, b_val: Any,
    r0: int, r1: int, n_cols: int, k: int, square: bool,
    mode: int, sa: Any, sb: Any, colw: Any, scale: float, eps: float,
    ta: float, tb: float, numer: float, n_chunks: int, positive: bool,
    out_idx: Any, out_val: Any, out_cnt: Any,
) -> None:  # fmt: skip
    # Rows are dealt out round-robin: neighbouring ids often have similar (skewed) costs,
    # so contiguous ranges would load the threads unevenly.
    for chunk in numba.prange(n_chunks):
        acc = np.zeros(n_cols, dtype=np.float64)
        seen = np.zeros(n_cols, dtype=np.bool_)
        touched = np.empty(n_cols + 1, dtype=a_idx.dtype)
        vals = np.empty(n_cols, dtype=np.float64)
        hv = np.empty(k, dtype=np.float64)
        hi_ = np.empty(k, dtype=np.int64)
        for r in range(r0 + chunk, r1, n_chunks):
            nt = accumulate_row(r, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, positive,
                                acc, seen, touched)
            n_pos = 0
            n_neg = 0
            size = 0
            for t in range(nt):
                c = touched[t]
                v = acc[c]
                acc[c] = 0.0
                seen[c] = False
                s = 0.0
                if v != 0.0 and not (square and c == r):
                    if mode == 0:
                        s = v / scale
                    elif mode == 1:
                        s = v / (sa[r] * sb[c] + eps)
                    elif mode == 2:
                        s = v / (sa[r] + sb[c] - v + eps)
                    elif mode == 3:
                        s = v / (sa[r] + sb[c] + eps)
                    else:
                        s = v / (v + ta * (sa[r] - v) + tb * (sb[c] - v) + eps)
                    s = s * numer * colw[c]
                vals[t] = s
                if s > 0.0:
                    n_pos += 1
                    if size < k or better(s, c, hv[0], hi_[0]):
                        size = heap_push(hv, hi_, size, k, s, c)
                elif s < 0.0:
                    n_neg += 1
            # Negatives make the cut only when positives and zeros cannot fill top-k.
            n_neg_keep = k - n_pos - (n_cols - n_pos - n_neg)
            base = (r - r0) * k
            for t in range(size):
                out_idx[base + t] = hi_[t]
                out_val[base + t] = hv[t]
            cnt = size
            if n_neg_keep > 0:
                size = 0
                for t in range(nt):
                    if vals[t] < 0.0:
                        size = heap_push(hv, hi_, size, n_neg_keep, vals[t], touched[t])
                for t in range(size):
                    out_idx[base + cnt + t] = hi_[t]
                    out_val[base + cnt + t] = hv[t]
                cnt += size
            out_cnt[r - r0] = cnt


@numba.njit(cache=True, parallel=True)
def _scatter_kernel(
    a_ptr: Any, a_idx: Any, a_val: Any, b_ptr: Any, b_idx: Any, b_val: Any, out: Any
) -> None:
    for r in numba.prange(out.shape[0]):
        row = out[r]
        for p in range(a_ptr[r], a_ptr[r + 1]):
            i = a_idx[p]
            x = a_val[p]
            for q in range(b_ptr[i], b_ptr[i + 1]):
                row[b_idx[q]] += x * b_val[q]


def sparse_dense_product(
    a: sp.spmatrix | sp.sparray, b: sp.spmatrix | sp.sparray, n_threads: int | None = None
) -> np.ndarray:
    """``(a @ b)`` as a dense C-contiguous float32 array, without a sparse intermediate.

    Each output row is accumulated (in float32) by scattering the rows of ``b`` selected by the
    row of ``a``; rows run in parallel on ``n_threads`` (default: physical cores).
    """
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"inner dimensions differ: {a.shape} @ {b.shape}")
    a_ = sp.csr_matrix(a, dtype=np.float32)
    b_ = sp.csr_matrix(b, dtype=np.float32)
    out = np.zeros((a_.shape[0], b_.shape[1]), dtype=np.float32)
    if a_.nnz == 0 or b_.nnz == 0:
        return out
    with pinned_threads(n_threads):
        _scatter_kernel(a_.indptr, a_.indices, a_.data, b_.indptr, b_.indices, b_.data, out)
    return out


# ----------------------------------------------------------------------------- top-K product
def _transform_dense(
    dense: np.ndarray,
    rows: slice,
    mode: int,
    sa: np.ndarray,
    sb: np.ndarray,
    colw: np.ndarray,
    scale: float,
    eps: float,
    ta: float,
    tb: float,
    numer: float,
) -> np.ndarray:
    a = sa[rows][:, None]
    b = sb[None, :]
    if mode == MODE_SCALE:
        if scale != 1.0:
            dense /= scale
    elif mode == MODE_PRODUCT:
        den = a * b
        den += eps
        dense /= den
    elif mode == MODE_JACCARD:
        den = a + b
        den -= dense
        den += eps
        dense /= den
    elif mode == MODE_DICE:
        den = a + b
        den += eps
        dense /= den
    else:
        den = dense * (1.0 - ta - tb)
        den += ta * a
        den += tb * b
        den += eps
        np.divide(dense, den, out=dense, where=dense != 0)
    if numer != 1.0:
        dense *= numer
    if not np.all(colw == 1.0):
        dense *= colw[None, :]
    return dense


def topk_product(
    a: sp.csr_matrix,
    b: sp.csr_matrix,
    k: int,
    *,
    mode: int = MODE_SCALE,
    sa: np.ndarray | None = None,
    sb: np.ndarray | None = None,
    col_weight: np.ndarray | None = None,
    scale: float = 1.0,
    eps: float = 0.0,
    tversky: tuple[float, float] = (1.0, 1.0),
    numer: float = 1.0,
    zero_diagonal: bool = True,
    sort_indices: bool = True,
    memory_budget_mb: float = 512.0,
    engine: str = "auto",
    n_threads: int | None = None,
) -> sp.csr_matrix:
    """Row-wise top-k of ``f(A @ B)`` as float32 CSR (``A.shape[0] x B.shape[1]``).

    ``f`` is the element-wise similarity transform selected by ``mode`` (module constants), with
    per-row statistics ``sa`` (for the rows of A) and per-column ``sb`` (columns of B); the result
    is multiplied by ``col_weight[c]``. Rows are processed in blocks sized by the memory budget.
    ``sort_indices=False`` skips sorting the column indices of each row (for callers that
    transpose the result anyway).
    """
    if engine not in ("auto", "numba", "scipy"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'scipy', got {engine!r}")
    if memory_budget_mb <= 0:
        raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb!r}")
    n_rows, n_inner = a.shape
    if b.shape[0] != n_inner:
        raise ValueError(f"inner dimensions differ: {a.shape} @ {b.shape}")
    n_cols = b.shape[1]
    square = zero_diagonal and n_rows == n_cols
    k = int(min(k, n_cols))
    sa_ = np.ones(n_rows) if sa is None else np.asarray(sa, dtype=np.float64)
    sb_ = np.ones(n_cols) if sb is None else np.asarray(sb, dtype=np.float64)
    colw = np.ones(n_cols) if col_weight is None else np.asarray(col_weight, dtype=np.float64)
    ta, tb = float(tversky[0]), float(tversky[1])
    budget = memory_budget_mb * 2**20
    use_numba = engine in ("auto", "numba")
    if n_rows == 0 or n_cols == 0 or k == 0:
        return sp.csr_matrix((n_rows, n_cols), dtype=np.float32)

    out_counts: list[np.ndarray] = []
    out_cols: list[np.ndarray] = []
    out_vals: list[np.ndarray] = []
    with pinned_threads(n_threads) as n_thr:
        if use_numba:
            kernel = _topk_kernel
            a64 = sp.csr_matrix(a, dtype=np.float64)
            b64 = sp.csr_matrix(b, dtype=np.float64)
            # int32 indices halve the memory traffic of the inner loop where they fit.
            idx_t = np.int32 if max(a.shape + b.shape) < 2**31 - 1 else np.int64
            a_ptr, a_idx = a64.indptr.astype(np.int64), a64.indices.astype(idx_t)
            # With every product > 0 (checked on the smallest pair) a sum never returns to 0.
            a_min = float(a64.data.min()) if a64.nnz else 1.0
            b_min = float(b64.data.min()) if b64.nnz else 1.0
            positive = a_min > 0 and b_min > 0 and a_min * b_min > 0
            b_ptr, b_idx = b64.indptr.astype(np.int64), b64.indices.astype(idx_t)
            scratch = n_thr * n_cols * 32
            per_row = k * 16 + 8
            block = int(max(1, min(n_rows, (budget - scratch) // per_row)))
            for r0 in range(0, n_rows, block):
                r1 = min(n_rows, r0 + block)
                nb = r1 - r0
                idx = np.empty(nb * k, dtype=np.int64)
                val = np.empty(nb * k, dtype=np.float64)
                cnt = np.zeros(nb, dtype=np.int64)
                chunks = int(min(nb, n_thr))
                kernel(
                    a_ptr, a_idx, a64.data, b_ptr, b_idx, b64.data,
                    r0, r1, n_cols, k, square,
                    mode, sa_, sb_, colw, float(scale), float(eps),
                    ta, tb, float(numer), chunks, positive,
                    idx, val, cnt,
                )  # fmt: skip
                mask = np.arange(k)[None, :] < cnt[:, None]
                out_counts.append(cnt)
                out_cols.append(idx.reshape(nb, k)[mask])
                out_vals.append(val.reshape(nb, k)[mask].astype(np.float32))
        else:
            a64 = sp.csr_matrix(a, dtype=np.float64)
            b64 = sp.csr_matrix(b, dtype=np.float64)
            block = int(max(1, min(n_rows, budget // (n_cols * _BYTES_PER_DENSE_CELL))))
            for r0 in range(0, n_rows, block):
                r1 = min(n_rows, r0 + block)
                dense = (a64[r0:r1] @ b64).toarray()
                dense = _transform_dense(
                    dense, slice(r0, r1), mode, sa_, sb_, colw, scale, eps, ta, tb, numer
                )
                if square:
                    local = np.arange(r1 - r0)
                    dense[local, local + r0] = 0.0
                rr, cc, vv = select_rows(dense, k, drop_zeros=True)
                out_counts.append(np.bincount(rr, minlength=r1 - r0))
                out_cols.append(cc)
                out_vals.append(vv.astype(np.float32))
    counts = np.concatenate(out_counts)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    out = sp.csr_matrix(
        (np.concatenate(out_vals), np.concatenate(out_cols), indptr),
        shape=(n_rows, n_cols),
        dtype=np.float32,
    )
    out.eliminate_zeros()  # values below float32's range
    if sort_indices:
        out.sort_indices()
    return out


# ----------------------------------------------------------------------------- legacy ties
@numba.njit(cache=True)
def _first_met_order(
    c_ptr: Any, c_idx: Any, r_ptr: Any, r_idx: Any, j: int, seen: Any, out: Any
) -> int:
    # Columns sharing a row with column j, in the order the paper's Cython loop meets them.
    cnt = 0
    for p in range(c_ptr[j], c_ptr[j + 1]):
        i = c_idx[p]
        for q in range(r_ptr[i], r_ptr[i + 1]):
            c = r_idx[q]
            if c != j and not seen[c]:
                seen[c] = True
                out[cnt] = c
                cnt += 1
    for t in range(cnt):
        seen[out[t]] = False
    return cnt


def _legacy_topk(
    xm: sp.csr_matrix, xc: sp.csc_matrix, k: int, params: dict[str, Any],
    memory_budget_mb: float,
) -> sp.csr_matrix:
    """``W`` (n x n, float32) with the paper's tie order; see the module docstring."""
    from recforge._kernels.legacy import legacy_argpartition, legacy_argsort, legacy_top

    n_rows, n = xm.shape
    k = int(min(k, n))
    dense_route = xm.nnz / max(1, n_rows * n) > 0.5
    x64 = sp.csr_matrix(xm, dtype=np.float64)
    x64.sort_indices()
    xt = sp.csr_matrix(x64.T)  # row j = column j of x
    xt.sort_indices()
    sa = np.asarray(params.get("sa", np.ones(n)), dtype=np.float64)
    sb = np.asarray(params.get("sb", np.ones(n)), dtype=np.float64)
    ta, tb = params.get("tversky", (1.0, 1.0))
    seen = np.zeros(n, dtype=np.bool_)
    order = np.empty(n, dtype=np.int64)
    block = int(max(1, min(n, memory_budget_mb * 2**20 // (n * _BYTES_PER_DENSE_CELL))))
    out_r: list[np.ndarray] = []
    out_c: list[np.ndarray] = []
    out_v: list[np.ndarray] = []
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        dense = (xt[r0:r1] @ x64).toarray()
        local = np.arange(r1 - r0)
        dense[local, local + r0] = 0.0
        dense = _transform_dense(
            dense, slice(r0, r1), params.get("mode", MODE_SCALE), sa, sb, np.ones(n),
            float(params.get("scale", 1.0)), float(params.get("eps", 0.0)), float(ta),
            float(tb), float(params.get("numer", 1.0)),
        )  # fmt: skip
        for j in range(r0, r1):
            w = dense[j - r0]
            if dense_route:
                sel = legacy_top(w, k)
            else:
                cnt = _first_met_order(
                    xt.indptr, xt.indices, x64.indptr, x64.indices, j, seen, order
                )
                lk = min(k, cnt)
                if lk == 0:
                    continue
                neg = np.zeros(n)
                neg[:cnt] = -w[order[:cnt]]
                part = legacy_argpartition(neg, lk - 1)[:lk]
                part = part[legacy_argsort(neg[part])]
                sel = order[part[part < cnt]]
            v = w[sel]
            keep = v != 0
            out_r.append(sel[keep])
            out_c.append(np.full(int(keep.sum()), j, dtype=np.int64))
            out_v.append(v[keep])
    if not out_r:
        return sp.csr_matrix((n, n), dtype=np.float32)
    w_ = sp.csr_matrix(
        (np.concatenate(out_v).astype(np.float32),
         (np.concatenate(out_r), np.concatenate(out_c))),
        shape=(n, n), dtype=np.float32,
    )  # fmt: skip
    w_.eliminate_zeros()
    return w_


# ----------------------------------------------------------------------------- public API
def _column_stats(x: sp.csc_matrix) -> np.ndarray:
    sq = x.copy()
    sq.data = sq.data.astype(np.float64) ** 2
    return np.asarray(sq.sum(axis=0)).ravel()


def _center(x: sp.csr_matrix, axis: int) -> sp.csr_matrix:
    """Subtract from each stored value the mean of its row (axis=1) or column (axis=0)."""
    x = x.copy()
    if axis == 1:
        counts = np.diff(x.indptr)
        sums = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
        owner = np.repeat(np.arange(x.shape[0]), counts)
    else:
        counts = np.bincount(x.indices, minlength=x.shape[1])
        sums = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        owner = x.indices
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    x.data = (x.data.astype(np.float64) - means[owner]).astype(np.float32)
    return x


def compute_similarity(
    x: sp.spmatrix | sp.sparray | np.ndarray,
    similarity: str = "cosine",
    shrink: float = 0.0,
    top_k: int = 100,
    normalize: bool = True,
    asymmetric_alpha: float = 0.5,
    tversky_alpha: float = 1.0,
    tversky_beta: float = 1.0,
    *,
    dice_factor_two: bool = False,
    memory_budget_mb: float = 512.0,
    engine: str = "auto",
    n_threads: int | None = None,
    tie_rule: str = "lower-index",
) -> sp.csr_matrix:
    """Top-K similarity between the columns of ``x``; see the module docstring for the formulas.

    ``tie_rule``: "lower-index" (default) or "numpy-legacy" (the paper's order among tied
    values, see the module docstring; ``engine`` and ``n_threads`` are then ignored).

    Returns ``W`` (float32 CSR, ``n x n``, ``n = x.shape[1]``) with ``W[i, j]`` the similarity
    of neighbour ``i`` to target ``j``; each column holds at most ``top_k`` non-zeros and the
    diagonal is 0.
    """
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of {list(SIMILARITIES)}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if not (np.isfinite(shrink) and shrink >= 0):
        raise ValueError(f"shrink must be a finite number >= 0, got {shrink!r}")
    if not np.isfinite(asymmetric_alpha):
        raise ValueError(f"asymmetric_alpha must be finite, got {asymmetric_alpha!r}")
    for name, v in (("tversky_alpha", tversky_alpha), ("tversky_beta", tversky_beta)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if tie_rule not in ("lower-index", "numpy-legacy"):
        raise ValueError(
            f"tie_rule must be 'lower-index' or 'numpy-legacy', got {tie_rule!r}"
        )
    if sp.issparse(x):
        if x.ndim != 2:
            raise ValueError(f"x must be a 2-d matrix, got shape {x.shape}")
        xm = sp.csr_matrix(x, dtype=np.float32, copy=True)
    else:
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise ValueError(f"x must be a 2-d matrix, got shape {arr.shape}")
        xm = sp.csr_matrix(arr, dtype=np.float32)
    xm.sum_duplicates()
    if xm.nnz and not np.all(np.isfinite(xm.data)):
        raise ValueError("x holds non-finite values")

    if similarity == "adjusted":
        xm = _center(xm, axis=1)
    elif similarity == "pearson":
        xm = _center(xm, axis=0)
    elif similarity in ("jaccard", "dice", "tversky"):
        xm.data = np.ones_like(xm.data)

    xc = xm.tocsc()
    sumsq = _column_stats(xc)
    h = float(shrink)
    eps = h + 1e-6
    kwargs: dict[str, Any] = {}
    if similarity in ("jaccard", "dice", "tversky"):
        kwargs = {"sa": sumsq, "sb": sumsq, "eps": eps}
        kwargs["mode"] = {"jaccard": MODE_JACCARD, "dice": MODE_DICE, "tversky": MODE_TVERSKY}[
            similarity
        ]
        if similarity == "dice" and dice_factor_two:
            kwargs["numer"] = 2.0
        if similarity == "tversky":
            kwargs["tversky"] = (float(tversky_alpha), float(tversky_beta))
    elif similarity == "asymmetric":
        norms = np.sqrt(sumsq)
        a = float(asymmetric_alpha)
        kwargs = {
            "mode": MODE_PRODUCT,
            "sa": np.power(norms, 2 * a),
            "sb": np.power(norms, 2 * (1 - a)),
            "eps": eps,
        }
    elif normalize:
        norms = np.sqrt(sumsq)
        kwargs = {"mode": MODE_PRODUCT, "sa": norms, "sb": norms, "eps": eps}
    else:
        kwargs = {"mode": MODE_SCALE, "scale": h if h > 0 else 1.0}

    if tie_rule == "numpy-legacy":
        return _legacy_topk(xm, xc, top_k, kwargs, memory_budget_mb)
    # Row r of X^T X holds target column r's dot products with every column.
    xt = sp.csr_matrix((xc.data, xc.indices, xc.indptr), shape=(xm.shape[1], xm.shape[0]))
    w_t = topk_product(
        xt,
        xm,
        top_k,
        memory_budget_mb=memory_budget_mb,
        engine=engine,
        n_threads=n_threads,
        sort_indices=False,
        **kwargs,
    )
    # CSC -> CSR conversion of the transpose yields sorted indices.
    return w_t.T.tocsr()


def top_k_per_column(w: sp.spmatrix | sp.sparray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest stored values of every column (ties: lower row wins), zeros dropped.

    Only stored entries compete, so the caller must not rely on implicit zeros beating negative
    values (the graph models this serves are non-negative). Returns float32 CSR. The selection
    is :func:`recforge._kernels.topk.select_stored`.
    """
    return select_stored(w, k)
