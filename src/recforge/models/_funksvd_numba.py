"""Numba kernel for FunkSVD's epoch (imported lazily by :mod:`recforge.models.funksvd`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from recforge.models._sgd_numba import adapted_row


@njit(cache=True)
def funk_svd_epoch(users: np.ndarray, items: np.ndarray, targets: np.ndarray, batch_size: int,
                   p: np.ndarray, n_users: int, k: int, use_bias: bool, lr: float,
                   reg_user: float, reg_item: float, reg_bias: float, mode: int,
                   c1: np.ndarray, c2: np.ndarray, acc: np.ndarray, touched: np.ndarray,
                   rows: np.ndarray, t0: int, b1: float, b2: float,
                   eps: float) -> tuple[float, int]:  # pragma: no cover - compiled
    """Minibatch SGD over the samples in order; returns the summed squared error and the step.

    ``p`` is one parameter table: rows ``[0, n_users)`` are users ``[x_u, b_u]``, the next
    ``n_items`` rows items ``[y_i, b_i]``, the last row the global bias in column 0. Every
    sample's gradient of ``(r - pred)^2 / 2 + reg/2 |param|^2`` is taken at the minibatch's
    starting parameters and summed per row (``acc``); then each touched entry takes one step
    (state slot ``row * (k + 1) + col`` of the flat ``c1``/``c2``).
    """
    width = k + 1
    g_row = p.shape[0] - 1
    total = 0.0
    t = t0
    n = users.size
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        n_rows = 0
        for s in range(start, stop):
            u = users[s]
            i = n_users + items[s]
            pred = 0.0
            for f in range(k):
                pred += p[u, f] * p[i, f]
            if use_bias:
                pred += p[u, k] + p[i, k] + p[g_row, 0]
            e = targets[s] - pred
            total += e * e
            for f in range(k):
                acc[u, f] += reg_user * p[u, f] - e * p[i, f]
                acc[i, f] += reg_item * p[i, f] - e * p[u, f]
            if use_bias:
                acc[u, k] += reg_bias * p[u, k] - e
                acc[i, k] += reg_bias * p[i, k] - e
                acc[g_row, 0] -= e
            for r in (u, i, g_row):
                if r == g_row and not use_bias:
                    continue
                if not touched[r]:
                    touched[r] = True
                    rows[n_rows] = r
                    n_rows += 1
        t += 1
        for q in range(n_rows):
            r = rows[q]
            hi = 1 if r == g_row else (k + 1 if use_bias else k)
            adapted_row(p[r, :hi], acc[r, :hi], r * width, mode, c1, c2, t, b1, b2, eps, lr)
            acc[r, :hi] = 0.0
            touched[r] = False
    return total, t
