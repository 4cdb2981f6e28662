"""Numba kernel for SLIM ElasticNet's per-item regressions (imported lazily by
:mod:`recforge.models.slim`).

X is binary (every stored value 1; CSC and CSR index arrays, int32). Each item column j
solves scikit-learn's ElasticNet problem (no intercept, column j zeroed)

    min_w  0.5 * ||y - X w||^2 + l1 * ||w||_1 + 0.5 * l2 * ||w||^2,   y = X[:, j],  w_j = 0

(``l1 = alpha * l1_ratio * n_users``, ``l2 = alpha * (1 - l1_ratio) * n_users``: sklearn's
objective times ``n_users``) by cyclic coordinate descent on the residual ``R = y - X w`` with
active sets and Anderson extrapolation (see :func:`_solve`), ending by sklearn's criterion:
duality gap (sklearn's formula) at most ``tol * y @ y``.

Exact screening (``positive`` and ``l1 > 0``): coordinate k can only be non-zero at the
optimum if ``G[k, j] = X[:, k] @ y > l1``, because ``X[:, k] @ R = G[k, j] - (X^T X w)[k]`` and
the second term is non-negative. Only those candidates are swept, and the duality gap over them
equals the gap over all features (every other feature's ``X[:, k] @ R <= l1`` cannot raise the
dual norm above ``l1``). Without positivity, or without an L1 term, every non-empty column is a
candidate (no screening).

The kept coefficients are selected with the one top-k heap (:mod:`recforge._kernels.heap`);
the co-occurrence counts come from the similarity kernels' sparse accumulator
(:func:`recforge.models.similarity.accumulate_row`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

from recforge._kernels.heap import heap_push
from recforge.models.similarity import accumulate_row


@njit(cache=True, nogil=True)
def _candidates(j: int, x_ptr: Any, x_idx: Any, r_ptr: Any, r_idx: Any, ones: Any,
                norm2: Any, l1: float, screen: bool, acc: Any, seen: Any,
                touched: Any, cand: Any) -> int:  # pragma: no cover - compiled
    """Fill ``cand[:m]`` with item j's candidate coordinates, ascending; return m.

    ``acc`` collects the co-occurrence counts ``G[:, j]`` (``ones``: X's values, binary).
    """
    n_touched = accumulate_row(j, x_ptr, x_idx, ones, r_ptr, r_idx, ones, True, acc, seen,
                               touched)
    m = 0
    if screen:
        for t in range(n_touched):
            k = touched[t]
            if k != j and acc[k] > l1 and norm2[k] > 0.0:
                cand[m] = k
                m += 1
        cand[:m].sort()
    else:
        for k in range(norm2.shape[0]):
            if k != j and norm2[k] > 0.0:
                cand[m] = k
                m += 1
    for t in range(n_touched):
        acc[touched[t]] = 0.0
    return m


@njit(cache=True, nogil=True)
def _col_dot(k: int, x_ptr: Any, x_idx: Any, r: Any) -> float:  # pragma: no cover
    s = 0.0
    for p in range(x_ptr[k], x_ptr[k + 1]):
        s += r[x_idx[p]]
    return s


@njit(cache=True, nogil=True)
def _gap(j: int, m: int, cand: Any, w: Any, x_ptr: Any, x_idx: Any, r: Any,
         l1: float, l2: float, positive: bool, xtr: Any) -> float:  # pragma: no cover
    """sklearn's duality gap (formulation A; B when ``l1 == 0``) of the current ``w``.

    Leaves ``X[:, cand[c]] @ r`` in ``xtr[c]``.
    """
    r_norm2 = 0.0
    for u in range(r.shape[0]):
        r_norm2 += r[u] * r[u]
    ry = 0.0
    for p in range(x_ptr[j], x_ptr[j + 1]):
        ry += r[x_idx[p]]
    w1 = 0.0
    w2 = 0.0
    dual_norm = 0.0
    xtr2 = 0.0
    for c in range(m):
        wc = w[c]
        w1 += abs(wc)
        w2 += wc * wc
        g = _col_dot(cand[c], x_ptr, x_idx, r)
        xtr[c] = g
        xtr2 += g * g
        xta = g - l2 * wc
        v = xta if positive else abs(xta)
        if v > dual_norm:
            dual_norm = v
    if l1 == 0.0:  # ridge: sklearn's formulation B
        return r_norm2 + 0.5 * l2 * w2 - ry + xtr2 / (2.0 * l2)
    primal = 0.5 * (r_norm2 + l2 * w2) + l1 * w1
    scale = l1 / dual_norm if dual_norm > l1 else 1.0
    dual = -0.5 * scale * scale * (r_norm2 + l2 * w2) + scale * ry
    return primal - dual


@njit(cache=True, nogil=True)
def _sweep(order: Any, n: int, cand: Any, w: Any, x_ptr: Any, x_idx: Any,
           norm2: Any, r: Any, l1: float, l2: float,
           positive: bool) -> tuple[float, float]:  # pragma: no cover - compiled
    """One cyclic pass over ``order[:n]`` (positions in ``cand``); (max |dw|, max |w|)."""
    w_max = 0.0
    d_w_max = 0.0
    for o in range(n):
        c = order[o]
        k = cand[c]
        wk = w[c]
        tmp = _col_dot(k, x_ptr, x_idx, r) + wk * norm2[k]
        if positive and tmp < 0.0:
            new = 0.0
        else:
            new = np.sign(tmp) * max(abs(tmp) - l1, 0.0) / (norm2[k] + l2)
        if new != wk:
            d = wk - new
            for p in range(x_ptr[k], x_ptr[k + 1]):
                r[x_idx[p]] += d
            w[c] = new
        d_w_max = max(d_w_max, abs(new - wk))
        w_max = max(w_max, abs(new))
    return d_w_max, w_max


@njit(cache=True, nogil=True)
def _store(hist: Any, i: int, active: Any, n: int, w: Any) -> None:  # pragma: no cover
    for o in range(n):
        hist[i, o] = w[active[o]]


@njit(cache=True, nogil=True)
def _anderson_weights(hist: Any, n_k: int, n: int, diffs: Any,
                      coef: Any) -> bool:  # pragma: no cover - compiled
    """Anderson weights ``c`` (summing to 1) of the iterates ``hist[1:n_k + 1, :n]`` into
    ``coef[:n_k]``: ``c = z / sum(z)`` with ``(U^T U) z = 1``, U the successive differences.
    False when the system is degenerate (the caller then does not extrapolate)."""
    for i in range(n_k):
        for o in range(n):
            diffs[i, o] = hist[i + 1, o] - hist[i, o]
    c = np.zeros((n_k, n_k))
    for a in range(n_k):
        for b in range(a, n_k):
            s = 0.0
            for o in range(n):
                s += diffs[a, o] * diffs[b, o]
            c[a, b] = s
            c[b, a] = s
    big = 0.0
    for a in range(n_k):
        big = max(big, c[a, a])
    if big == 0.0:
        return False
    for a in range(n_k):
        c[a, a] += 1e-10 * big  # U^T U is often near-singular; a tiny ridge keeps z finite
    z = np.ones(n_k)
    for col in range(n_k):  # Gaussian elimination with partial pivoting (n_k is tiny)
        piv = col
        for row in range(col + 1, n_k):
            if abs(c[row, col]) > abs(c[piv, col]):
                piv = row
        if c[piv, col] == 0.0:
            return False
        if piv != col:
            for t in range(n_k):
                c[col, t], c[piv, t] = c[piv, t], c[col, t]
            z[col], z[piv] = z[piv], z[col]
        for row in range(col + 1, n_k):
            f = c[row, col] / c[col, col]
            for t in range(col, n_k):
                c[row, t] -= f * c[col, t]
            z[row] -= f * z[col]
    for row in range(n_k - 1, -1, -1):
        s = z[row]
        for t in range(row + 1, n_k):
            s -= c[row, t] * z[t]
        z[row] = s / c[row, row]
    total = z.sum()
    if total == 0.0 or not np.isfinite(total):
        return False
    for i in range(n_k):
        coef[i] = z[i] / total
    return True


@njit(cache=True, nogil=True)
def _extrapolate(hist: Any, n_k: int, n: int, coef: Any, active: Any, cand: Any, w: Any,
                 x_ptr: Any, x_idx: Any, r: Any, l1: float, l2: float,
                 positive: bool) -> bool:  # pragma: no cover - compiled
    """Move ``w[active[:n]]`` (and ``r``) to the Anderson point ``sum_i coef[i] hist[i + 1]``
    (clipped at 0 for ``positive``) when that lowers the objective; True if it moved.

    The objective change is summed exactly while ``r`` is updated; a rejected point is undone.
    """
    delta = 0.0
    for o in range(n):
        c = active[o]
        e = 0.0
        for i in range(n_k):
            e += coef[i] * hist[i + 1, o]
        if positive and e < 0.0:
            e = 0.0
        hist[0, o] = e  # row 0 (the oldest iterate) is no longer needed
        d = w[c] - e
        if d != 0.0:
            k = cand[c]
            for p in range(x_ptr[k], x_ptr[k + 1]):
                u = x_idx[p]
                delta += d * (r[u] + 0.5 * d)
                r[u] += d
        delta += 0.5 * l2 * (e * e - w[c] * w[c]) + l1 * (abs(e) - abs(w[c]))
    if delta < 0.0:
        for o in range(n):
            w[active[o]] = hist[0, o]
        return True
    for o in range(n):
        c = active[o]
        d = w[c] - hist[0, o]
        if d != 0.0:
            k = cand[c]
            for p in range(x_ptr[k], x_ptr[k + 1]):
                r[x_idx[p]] -= d
    return False


@njit(cache=True, nogil=True)
def _solve(j: int, m: int, cand: Any, w: Any, active: Any, xtr: Any, hist: Any, diffs: Any,
           coef: Any, n_k: int, x_ptr: Any, x_idx: Any, norm2: Any, r: Any, l1: float,
           l2: float, max_iter: int, tol: float,
           positive: bool) -> tuple[int, float]:  # pragma: no cover - compiled
    """Coordinate descent for item ``j`` over ``cand[:m]`` into ``w[:m]``; (rounds, gap).

    Active sets: one sweep over all candidates, then rounds of (sweeps over the active set,
    first the non-zero coordinates, until its largest change is at most ``tol / 10`` times its
    largest coefficient, at most ``max_iter`` sweeps) followed by one pass over all candidates
    that computes the duality gap and ``X[:, k] @ r``. (``tol / 10``: active sweeps are cheap
    next to a pass over all candidates; on ML-1M it cut the rounds from 3.5 to 2.4.)
    Every ``n_k`` active sweeps (``n_k > 0``) the last ``n_k + 1`` iterates are extrapolated
    (Anderson acceleration of coordinate descent, Bertrand & Massias 2021) and the point is
    taken when it lowers the objective; the stopping rule is unchanged, so the answer meets the
    same gap. (With 5 iterates: ML-1M 32.9 -> 21.4 active sweeps per item, CiteULike-a 108 -> 52.)
    The solve ends when the gap is at most ``tol * y @ y`` or after
    ``max_iter`` rounds; otherwise the next active set is the non-zero coordinates plus every
    zero one that violates its optimality condition (``X[:, k] @ r > l1``). ``r`` is all zeros
    on entry and on return.
    """
    yy = float(x_ptr[j + 1] - x_ptr[j])
    for p in range(x_ptr[j], x_ptr[j + 1]):
        r[x_idx[p]] = 1.0
    w[:m] = 0.0
    for c in range(m):
        active[c] = c
    _sweep(active, m, cand, w, x_ptr, x_idx, norm2, r, l1, l2, positive)
    n_active = 0
    for c in range(m):
        if w[c] != 0.0:
            active[n_active] = c
            n_active += 1
    gap = np.inf
    rounds = 0
    for it in range(max_iter):
        rounds = it + 1
        n_hist = 0
        if n_k > 0:
            _store(hist, 0, active, n_active, w)
        for _ in range(max_iter):
            d_w_max, w_max = _sweep(active, n_active, cand, w, x_ptr, x_idx, norm2, r,
                                    l1, l2, positive)
            if w_max == 0.0 or d_w_max / w_max <= 0.1 * tol:
                break
            if n_k > 0:
                n_hist += 1
                _store(hist, n_hist, active, n_active, w)
                if n_hist == n_k:
                    if _anderson_weights(hist, n_k, n_active, diffs, coef):
                        _extrapolate(hist, n_k, n_active, coef, active, cand, w, x_ptr,
                                     x_idx, r, l1, l2, positive)
                    n_hist = 0
                    _store(hist, 0, active, n_active, w)
        gap = _gap(j, m, cand, w, x_ptr, x_idx, r, l1, l2, positive, xtr)
        if gap <= tol * yy:
            break
        n_active = 0
        for c in range(m):
            g = xtr[c] if positive else abs(xtr[c])
            if w[c] != 0.0 or g > l1:
                active[n_active] = c
                n_active += 1
    r[:] = 0.0  # also clears rounding residue of coordinates that went back to zero
    return rounds, gap


@njit(cache=True, parallel=True, nogil=True)
def candidate_counts(items: Any, x_ptr: Any, x_idx: Any, r_ptr: Any, r_idx: Any,
                     ones: Any, norm2: Any, l1: float, screen: bool,
                     n_chunks: int) -> Any:  # pragma: no cover - compiled
    """How many candidate coordinates each target item's regression has."""
    n_items = norm2.shape[0]
    out = np.zeros(items.shape[0], dtype=np.int64)
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items)
        seen = np.zeros(0, dtype=np.bool_)  # unused: X is binary
        touched = np.empty(n_items + 1, dtype=np.int32)
        cand = np.empty(n_items, dtype=np.int64)
        for t in range(chunk, items.shape[0], n_chunks):
            out[t] = _candidates(items[t], x_ptr, x_idx, r_ptr, r_idx, ones, norm2,
                                 l1, screen, acc, seen, touched, cand)
    return out


@njit(cache=True, parallel=True, nogil=True)
def fit_columns(items: Any, x_ptr: Any, x_idx: Any, r_ptr: Any, r_idx: Any,
                ones: Any, norm2: Any, n_users: int, l1: float, l2: float, max_iter: int,
                tol: float, positive: bool, screen: bool, top_k: int, drop_smallest: bool,
                out_ptr: Any, out_rows: Any, out_vals: Any, n_kept: Any, sweeps: Any,
                gaps: Any, tols: Any, n_chunks: int,
                anderson: int) -> None:  # pragma: no cover - compiled
    """Solve every target item's regression and keep its ``top_k`` best non-zero coefficients.

    Target ``t`` writes its kept (row, value) pairs to ``out_*[out_ptr[t]:]`` (``n_kept[t]`` of
    them, unordered), its sweep count, final duality gap and gap tolerance ``tol * y @ y``.
    ``drop_smallest``: when an item has at most ``top_k`` non-zero coefficients, its worst one
    is dropped too (the paper's quirk). Targets are dealt to ``n_chunks`` chunks round-robin so
    that popular (slow) items spread over the threads. ``anderson``: history length of the
    extrapolation (0: plain coordinate descent).
    """
    n_items = norm2.shape[0]
    for chunk in prange(n_chunks):
        acc = np.zeros(n_items)
        seen = np.zeros(0, dtype=np.bool_)  # unused: X is binary
        touched = np.empty(n_items + 1, dtype=np.int32)
        cand = np.empty(n_items, dtype=np.int64)
        w = np.empty(n_items)
        active = np.empty(n_items, dtype=np.int64)
        xtr = np.empty(n_items)
        hist = np.empty((anderson + 1, n_items if anderson > 0 else 0))
        diffs = np.empty((anderson, n_items if anderson > 0 else 0))
        coef = np.empty(max(anderson, 1))
        r = np.zeros(n_users)
        hv = np.empty(max(top_k, 1))
        hi = np.empty(max(top_k, 1), dtype=np.int64)
        for t in range(chunk, items.shape[0], n_chunks):
            j = items[t]
            m = _candidates(j, x_ptr, x_idx, r_ptr, r_idx, ones, norm2, l1, screen,
                            acc, seen, touched, cand)
            n_sweeps, gap = _solve(j, m, cand, w, active, xtr, hist, diffs, coef, anderson,
                                   x_ptr, x_idx, norm2, r, l1, l2, max_iter, tol, positive)
            yy = float(x_ptr[j + 1] - x_ptr[j])
            sweeps[t] = n_sweeps
            gaps[t] = gap
            tols[t] = tol * yy
            size = 0
            nnz = 0
            for c in range(m):
                if w[c] != 0.0:
                    nnz += 1
                    size = heap_push(hv, hi, size, top_k, w[c], cand[c])
            first = 1 if (drop_smallest and 0 < nnz <= top_k) else 0  # the root is the worst
            base = out_ptr[t]
            for s in range(first, size):
                out_rows[base + s - first] = hi[s]
                out_vals[base + s - first] = hv[s]
            n_kept[t] = size - first
