"""Planted two-block preference data for model tests (imported by the test modules here)."""

from __future__ import annotations

import numpy as np


def planted_blocks(n_users: int = 40, n_items: int = 30, seed: int = 0, *,
                   inside: float = 0.5, outside: float = 0.03) -> np.ndarray:
    """0/1 users x items: each half of the users picks items of its own half with ``inside``
    probability and the other half's with ``outside``."""
    rng = np.random.default_rng(seed)
    p = np.full((n_users, n_items), outside)
    p[: n_users // 2, : n_items // 2] = inside
    p[n_users // 2 :, n_items // 2 :] = inside
    return (rng.random((n_users, n_items)) < p).astype(np.float32)


def own_block_wins(scores: np.ndarray, r: np.ndarray) -> float:
    """Share of users whose unseen own-block items score higher on average than the others."""
    n_users, n_items = r.shape
    own = np.zeros_like(r, dtype=bool)
    own[: n_users // 2, : n_items // 2] = True
    own[n_users // 2 :, n_items // 2 :] = True
    unseen = r == 0
    return float(np.mean([
        scores[u, unseen[u] & own[u]].mean() > scores[u, unseen[u] & ~own[u]].mean()
        for u in range(n_users)
    ]))
