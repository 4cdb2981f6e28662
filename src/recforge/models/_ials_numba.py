"""Numba kernel for iALS's exact half-epoch (imported lazily by :mod:`recforge.models.ials`)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def exact_rows(indptr: np.ndarray, indices: np.ndarray, conf: np.ndarray, y: np.ndarray,
               base: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Row u of ``out`` := x solving ``(base + sum_i (c_ui - 1) y_i y_i^T) x = sum_i c_ui y_i``.

    By a Cholesky factorisation (float64) of the lower triangle; ``base = Y^T Y + reg I``.
    Raises ValueError on a non-positive pivot.
    """
    k = y.shape[1]
    a = np.empty((k, k))
    b = np.empty(k)
    for u in range(len(indptr) - 1):
        a[:, :] = base
        b[:] = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            i = indices[p]
            c = conf[p]
            w = c - 1.0
            for s in range(k):
                ys = y[i, s]
                b[s] += c * ys
                for t in range(s + 1):
                    a[s, t] += w * ys * y[i, t]
        # in-place Cholesky of the lower triangle: a = L L^T
        for j in range(k):
            d = a[j, j]
            for t in range(j):
                d -= a[j, t] * a[j, t]
            if d <= 0.0:
                raise ValueError("IALS: the normal equations are not positive definite")
            d = np.sqrt(d)
            a[j, j] = d
            for s in range(j + 1, k):
                v = a[s, j]
                for t in range(j):
                    v -= a[s, t] * a[j, t]
                a[s, j] = v / d
        # L z = b, then L^T x = z
        for s in range(k):
            v = b[s]
            for t in range(s):
                v -= a[s, t] * b[t]
            b[s] = v / a[s, s]
        for s in range(k - 1, -1, -1):
            v = b[s]
            for t in range(s + 1, k):
                v -= a[t, s] * b[t]
            b[s] = v / a[s, s]
        for s in range(k):
            out[u, s] = b[s]
