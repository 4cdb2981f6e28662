"""Numba kernels: fused mask -> top-k selection -> hit lookup over a dense score block.

Imported lazily by :mod:`recforge.evaluation.topk`; importing this module compiles (or loads
from numba's on-disk cache) one specialisation per kernel, so callers pay the cost once.

Ranking key: higher score first; among equal scores the lower item index first. Items whose
score is -inf are dropped. NaN scores are reported through ``nan_rows`` so the caller can raise.
Each row keeps a min-heap of its current k best entries whose root is the *worst* kept entry;
items are scanned in increasing index order, so an equal-scored newcomer always has a larger
index than everything kept and can never displace it: a strict ``score > root`` test suffices.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types

_F32_2D = types.Array(types.float32, 2, "A", readonly=True)
_I64_1D = types.Array(types.int64, 1, "A", readonly=True)
_I32_1D = types.Array(types.int32, 1, "A", readonly=True)
_OUT_I32_2D = types.Array(types.int32, 2, "C")
_OUT_B_2D = types.Array(types.boolean, 2, "C")
_OUT_I32_1D = types.Array(types.int32, 1, "C")
_OUT_B_1D = types.Array(types.boolean, 1, "C")


@njit(inline="always")
def _worse(s_a: float, i_a: int, s_b: float, i_b: int) -> bool:
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@njit(inline="always")
def _sift_down(hs: np.ndarray, hi: np.ndarray, n: int, pos: int) -> None:
    while True:
        child = 2 * pos + 1
        if child >= n:
            return
        right = child + 1
        if right < n and _worse(hs[right], hi[right], hs[child], hi[child]):
            child = right
        if _worse(hs[child], hi[child], hs[pos], hi[pos]):
            hs[pos], hs[child] = hs[child], hs[pos]
            hi[pos], hi[child] = hi[child], hi[pos]
            pos = child
        else:
            return


@njit(inline="always")
def _sift_up(hs: np.ndarray, hi: np.ndarray, pos: int) -> None:
    while pos > 0:
        parent = (pos - 1) // 2
        if _worse(hs[pos], hi[pos], hs[parent], hi[parent]):
            hs[pos], hs[parent] = hs[parent], hs[pos]
            hi[pos], hi[parent] = hi[parent], hi[pos]
            pos = parent
        else:
            return


@njit(inline="always")
def _push(hs: np.ndarray, hi: np.ndarray, cnt: int, k: int, s: float, j: int) -> int:
    """Offer (s, j) to the heap holding ``cnt`` entries; returns the new count."""
    if cnt < k:
        hs[cnt] = s
        hi[cnt] = j
        _sift_up(hs, hi, cnt)
        return cnt + 1
    hs[0] = s
    hi[0] = j
    _sift_down(hs, hi, k, 0)
    return cnt


@njit(inline="always")
def _drain(
    hs: np.ndarray,
    hi: np.ndarray,
    cnt: int,
    row: int,
    user: int,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    out_items: np.ndarray,
    out_hits: np.ndarray,
) -> None:
    """Heap-sort the kept entries into ``out_items[row]`` (best first) and mark test hits."""
    n = cnt
    while n > 0:
        out_items[row, n - 1] = hi[0]
        n -= 1
        hs[0] = hs[n]
        hi[0] = hi[n]
        _sift_down(hs, hi, n, 0)
    lo0 = t_ptr[user]
    hi0 = t_ptr[user + 1]
    for pos in range(cnt):
        item = out_items[row, pos]
        lo = lo0
        hi_ = hi0
        while lo < hi_:  # binary search in the user's sorted test items
            mid = (lo + hi_) >> 1
            if t_idx[mid] < item:
                lo = mid + 1
            else:
                hi_ = mid
        out_hits[row, pos] = lo < hi0 and t_idx[lo] == item


@njit(
    types.void(
        _F32_2D, _I64_1D, _I64_1D, _I32_1D, _I64_1D, _I32_1D,
        _OUT_I32_2D, _OUT_B_2D, _OUT_I32_1D, _OUT_B_1D,
    ),
    parallel=True,
    cache=True,
    nogil=True,
)
def topk_full(
    scores: np.ndarray,
    users: np.ndarray,
    ex_ptr: np.ndarray,
    ex_idx: np.ndarray,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    out_items: np.ndarray,
    out_hits: np.ndarray,
    out_len: np.ndarray,
    nan_rows: np.ndarray,
) -> None:
    """Top-k over all items of each row, skipping the row user's excluded (sorted) items."""
    n_rows, n_items = scores.shape
    k = out_items.shape[1]
    neg_inf = np.float32(-np.inf)
    for row in prange(n_rows):
        user = users[row]
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int32)
        e = ex_ptr[user]
        e_end = ex_ptr[user + 1]
        next_ex = ex_idx[e] if e < e_end else n_items
        cnt = 0
        thr = neg_inf
        has_nan = False
        for j in range(n_items):
            if j == next_ex:
                e += 1
                next_ex = ex_idx[e] if e < e_end else n_items
                continue
            s = scores[row, j]
            if s > thr:
                cnt = _push(hs, hi, cnt, k, s, j)
                if cnt == k:
                    thr = hs[0]
            elif s != s:
                has_nan = True
        nan_rows[row] = has_nan
        out_len[row] = cnt
        _drain(hs, hi, cnt, row, user, t_ptr, t_idx, out_items, out_hits)


@njit(
    types.void(
        _F32_2D, _I64_1D, _I64_1D, _I32_1D, _I64_1D, _I32_1D,
        _OUT_I32_2D, _OUT_B_2D, _OUT_I32_1D, _OUT_B_1D,
    ),
    parallel=True,
    cache=True,
    nogil=True,
)
def topk_candidates(
    scores: np.ndarray,
    users: np.ndarray,
    c_ptr: np.ndarray,
    c_idx: np.ndarray,
    t_ptr: np.ndarray,
    t_idx: np.ndarray,
    out_items: np.ndarray,
    out_hits: np.ndarray,
    out_len: np.ndarray,
    nan_rows: np.ndarray,
) -> None:
    """Top-k restricted to each row user's candidate items (sorted, de-duplicated)."""
    n_rows = scores.shape[0]
    k = out_items.shape[1]
    neg_inf = np.float32(-np.inf)
    for row in prange(n_rows):
        user = users[row]
        hs = np.empty(k, dtype=np.float32)
        hi = np.empty(k, dtype=np.int32)
        cnt = 0
        thr = neg_inf
        has_nan = False
        for p in range(c_ptr[user], c_ptr[user + 1]):
            j = c_idx[p]
            s = scores[row, j]
            if s > thr:
                cnt = _push(hs, hi, cnt, k, s, j)
                if cnt == k:
                    thr = hs[0]
            elif s != s:
                has_nan = True
        nan_rows[row] = has_nan
        out_len[row] = cnt
        _drain(hs, hi, cnt, row, user, t_ptr, t_idx, out_items, out_hits)
