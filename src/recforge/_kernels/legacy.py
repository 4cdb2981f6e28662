"""numpy's classic (pre-SIMD) ``argpartition`` / ``argsort`` order, reproduced exactly.

The RecSys'19 code picks every top-K list (neighbours in a similarity column, items in a
recommendation list) with ``argpartition`` on the negated values followed by ``argsort``
(quicksort) of the kept part. Among *equal* values the winner is whatever those algorithms leave
in front: deterministic, but neither "lower index first" nor random. numpy up to 1.24 used an
introselect (median-of-3 pivots, median-of-5 fallback) and an introsort (median-of-3 quicksort,
insertion sort below 16 elements, heapsort fallback); numpy >= 1.25/2.0 may dispatch to SIMD
kernels on AVX-512 machines, which order ties differently. When ties dominate (a 2-column ICM,
integer co-occurrence scores) that order moves the metrics far beyond the paper's precision, so
this module re-implements the classic algorithms to reproduce the paper's lists on any numpy.

Only the *comparison order* matters: values are compared with ``<`` (no NaN support: callers
reject NaN). The functions operate on one 1-d array and return int64 positions.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["legacy_argpartition", "legacy_argsort", "legacy_top"]

_SMALL_SORT = 15  # partitions of at most this many + 1 elements are insertion-sorted


@numba.njit(cache=True, inline="always")
def _swap(idx: np.ndarray, i: int, j: int) -> None:
    t = idx[i]
    idx[i] = idx[j]
    idx[j] = t


@numba.njit(cache=True)
def _msb(n: int) -> int:
    depth = 0
    n >>= 1
    while n > 0:
        depth += 1
        n >>= 1
    return depth


@numba.njit(cache=True)
def _min_scan_select(v: np.ndarray, idx: np.ndarray, lo: int, num: int, kth: int) -> None:
    # Selection by repeated minimum scans: positions lo..lo+kth get their final values.
    for i in range(kth + 1):
        best = lo + i
        best_v = v[idx[best]]
        for k in range(lo + i + 1, lo + num):
            if v[idx[k]] < best_v:
                best = k
                best_v = v[idx[k]]
        _swap(idx, lo + i, best)


@numba.njit(cache=True)
def _median5(v: np.ndarray, idx: np.ndarray, s: int) -> int:
    # Partial sorting network on idx[s:s+5]; returns the offset (1, 2 or 3) of the median.
    if v[idx[s + 1]] < v[idx[s]]:
        _swap(idx, s + 1, s)
    if v[idx[s + 4]] < v[idx[s + 3]]:
        _swap(idx, s + 4, s + 3)
    if v[idx[s + 3]] < v[idx[s]]:
        _swap(idx, s + 3, s)
    if v[idx[s + 4]] < v[idx[s + 1]]:
        _swap(idx, s + 4, s + 1)
    if v[idx[s + 2]] < v[idx[s + 1]]:
        _swap(idx, s + 2, s + 1)
    if v[idx[s + 3]] < v[idx[s + 2]]:
        if v[idx[s + 3]] < v[idx[s + 1]]:
            return 1
        return 3
    return 2


@numba.njit(cache=True)
def _select(v: np.ndarray, idx: np.ndarray, base: int, num: int, kth: int) -> None:
    """Introselect on idx[base:base+num] so that position base+kth holds its sorted value."""
    low = 0
    high = num - 1
    if kth - low < 3:
        _min_scan_select(v, idx, base + low, high - low + 1, kth - low)
        return
    if kth == num - 1:
        # numpy's shortcut for the last position (the running maximum, later ones win ties).
        best = low
        best_v = v[idx[base + low]]
        for k in range(low + 1, num):
            if not (v[idx[base + k]] < best_v):
                best = k
                best_v = v[idx[base + k]]
        _swap(idx, base + kth, base + best)
        return
    depth = _msb(num) * 2
    while low + 1 < high:
        ll = low + 1
        hh = high
        if depth > 0 or hh - ll < 5:
            mid = low + (high - low) // 2
            # Median of three into `low`, the smallest of the three into low + 1.
            if v[idx[base + high]] < v[idx[base + mid]]:
                _swap(idx, base + high, base + mid)
            if v[idx[base + high]] < v[idx[base + low]]:
                _swap(idx, base + high, base + low)
            if v[idx[base + low]] < v[idx[base + mid]]:
                _swap(idx, base + low, base + mid)
            _swap(idx, base + mid, base + low + 1)
        else:
            # Linear-time fallback: median of the medians of groups of five.
            sub = base + ll
            n_sub = hh - ll
            n_med = n_sub // 5
            for g in range(n_med):
                m = _median5(v, idx, sub + 5 * g)
                _swap(idx, sub + 5 * g + m, sub + g)
            if n_med > 2:
                _select(v, idx, sub, n_med, n_med // 2)
            mid = ll + n_med // 2
            _swap(idx, base + mid, base + low)
            ll -= 1
            hh += 1
        depth -= 1
        pivot = v[idx[base + low]]
        while True:
            ll += 1
            while v[idx[base + ll]] < pivot:
                ll += 1
            hh -= 1
            while pivot < v[idx[base + hh]]:
                hh -= 1
            if hh < ll:
                break
            _swap(idx, base + ll, base + hh)
        _swap(idx, base + low, base + hh)
        if hh >= kth:
            high = hh - 1
        if hh <= kth:
            low = ll
    if low + 1 == high and v[idx[base + high]] < v[idx[base + low]]:
        _swap(idx, base + high, base + low)


@numba.njit(cache=True)
def _heapsort(v: np.ndarray, idx: np.ndarray, lo: int, n: int) -> None:
    # 1-based heap over idx[lo:lo+n]; a[i] is idx[lo + i - 1].
    off = lo - 1
    top = n >> 1
    while top > 0:
        tmp = idx[off + top]
        i = top
        j = top << 1
        while j <= n:
            if j < n and v[idx[off + j]] < v[idx[off + j + 1]]:
                j += 1
            if v[tmp] < v[idx[off + j]]:
                idx[off + i] = idx[off + j]
                i = j
                j += j
            else:
                break
        idx[off + i] = tmp
        top -= 1
    while n > 1:
        tmp = idx[off + n]
        idx[off + n] = idx[off + 1]
        n -= 1
        i = 1
        j = 2
        while j <= n:
            if j < n and v[idx[off + j]] < v[idx[off + j + 1]]:
                j += 1
            if v[tmp] < v[idx[off + j]]:
                idx[off + i] = idx[off + j]
                i = j
                j += j
            else:
                break
        idx[off + i] = tmp


@numba.njit(cache=True)
def _introsort(v: np.ndarray, idx: np.ndarray) -> None:
    num = idx.size
    if num < 2:
        return
    stack = np.empty(256, dtype=np.int64)
    depths = np.empty(128, dtype=np.int64)
    sp_ = 0
    dp = 0
    pl = 0
    pr = num - 1
    cdepth = _msb(num) * 2
    while True:
        if cdepth < 0:
            _heapsort(v, idx, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL_SORT:
                pm = pl + ((pr - pl) >> 1)
                if v[idx[pm]] < v[idx[pl]]:
                    _swap(idx, pm, pl)
                if v[idx[pr]] < v[idx[pm]]:
                    _swap(idx, pr, pm)
                if v[idx[pm]] < v[idx[pl]]:
                    _swap(idx, pm, pl)
                vp = v[idx[pm]]
                pi = pl
                pj = pr - 1
                _swap(idx, pm, pj)
                while True:
                    pi += 1
                    while v[idx[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[idx[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    _swap(idx, pi, pj)
                _swap(idx, pi, pr - 1)
                # Continue on the smaller side, remember the larger one.
                if pi - pl < pr - pi:
                    stack[sp_] = pi + 1
                    stack[sp_ + 1] = pr
                    pr = pi - 1
                else:
                    stack[sp_] = pl
                    stack[sp_ + 1] = pi - 1
                    pl = pi + 1
                sp_ += 2
                cdepth -= 1
                depths[dp] = cdepth
                dp += 1
            for pi in range(pl + 1, pr + 1):
                vi = idx[pi]
                vv = v[vi]
                pj = pi
                while pj > pl and vv < v[idx[pj - 1]]:
                    idx[pj] = idx[pj - 1]
                    pj -= 1
                idx[pj] = vi
        if sp_ == 0:
            break
        sp_ -= 2
        pl = stack[sp_]
        pr = stack[sp_ + 1]
        dp -= 1
        cdepth = depths[dp]


def _as_1d(values: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(values)
    if v.ndim != 1:
        raise ValueError(f"expected a 1-d array, got shape {v.shape}")
    if v.dtype.kind != "f" and v.dtype.kind not in "iu":
        raise ValueError(f"expected a numeric array, got dtype {v.dtype}")
    if v.dtype.kind == "f" and np.isnan(v).any():
        raise ValueError("NaN values are not supported")
    return v


def legacy_argpartition(values: np.ndarray, kth: int) -> np.ndarray:
    """``np.argpartition(values, kth)`` as numpy <= 1.24 computes it (same tie order)."""
    v = _as_1d(values)
    if not 0 <= kth < v.size:
        raise ValueError(f"kth={kth} out of range for {v.size} values")
    idx = np.arange(v.size, dtype=np.int64)
    _select(v, idx, 0, v.size, int(kth))
    return idx


def legacy_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` (default quicksort) as numpy <= 1.24 computes it."""
    v = _as_1d(values)
    idx = np.arange(v.size, dtype=np.int64)
    _introsort(v, idx)
    return idx


def legacy_top(values: np.ndarray, k: int, kth: int | None = None) -> np.ndarray:
    """The paper's top-k: ``p = argpartition(-values, kth)[:k]; p[argsort(-values[p])]``.

    ``kth`` defaults to ``k - 1`` (the similarity code); the evaluator used ``kth = k``.
    Returns positions, best first.
    """
    v = _as_1d(values)
    neg = -v
    k = min(int(k), v.size)
    kth = k - 1 if kth is None else min(int(kth), v.size - 1)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = legacy_argpartition(neg, kth)[:k]
    return part[legacy_argsort(neg[part])]
