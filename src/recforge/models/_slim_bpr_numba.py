"""Numba kernel for SLIM BPR's epoch (imported lazily by :mod:`recforge.models.slim_bpr`)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from recforge.models._sgd_numba import adapted


@njit(cache=True)
def slim_bpr_epoch(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray,
                   pos: np.ndarray, neg: np.ndarray, s: np.ndarray, symmetric: bool,
                   lr: float, lambda_i: float, lambda_j: float, mode: int, c1: np.ndarray,
                   c2: np.ndarray, t0: int, b1: float, b2: float,
                   eps: float) -> tuple[float, int]:  # pragma: no cover - compiled
    """One SGD step per sampled triple (u, i, j) on the dense target x source matrix ``s``.

    ``x_uij = sum_{k in I_u} s[i, k] - s[j, k]``; with ``g = sigmoid(-x_uij)`` and the target's
    adapted step ``a``: ``s[i, k] += lr (a_i - lambda_i s[i, k])`` for every seen k != i and
    ``s[j, k] -= lr (a_j + lambda_j s[j, k])``; ``symmetric`` mirrors each write to ``s[k, .]``.
    Returns the summed BPR loss ``-ln sigmoid(x_uij)`` and the step counter after the epoch.
    """
    total = 0.0
    t = t0
    for n in range(users.size):
        u, i, j = users[n], pos[n], neg[n]
        a, b = indptr[u], indptr[u + 1]
        x = 0.0
        for p in range(a, b):
            k = indices[p]
            x += s[i, k] - s[j, k]
        # softplus(-x) without overflow
        total += max(-x, 0.0) + math.log1p(math.exp(-abs(x)))
        g = 1.0 / (1.0 + math.exp(x)) if x > -700.0 else 1.0
        t += 1
        gi = adapted(g, i, mode, c1, c2, t, b1, b2, eps)
        gj = adapted(g, j, mode, c1, c2, t, b1, b2, eps)
        for p in range(a, b):
            k = indices[p]
            if k != i:
                v = s[i, k] + lr * (gi - lambda_i * s[i, k])
                s[i, k] = v
                if symmetric:
                    s[k, i] = v
            # j is never a seen item, so k != j
            v = s[j, k] - lr * (gj + lambda_j * s[j, k])
            s[j, k] = v
            if symmetric:
                s[k, j] = v
    return total, t
