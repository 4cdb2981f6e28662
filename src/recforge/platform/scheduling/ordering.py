"""Ordering quantities: a gang's dominant share, a queue's weighted fair share, and which
cluster a starving job reserves."""

from __future__ import annotations

import math
from collections.abc import Sequence

from recforge.platform.scheduling.quota import QuotaBook

__all__ = ["dominant_share", "reservation_cluster"]


def dominant_share(vec: Sequence[int], total: Sequence[int]) -> float:
    """The largest fraction of the total capacity ``vec`` takes of any resource (DRF)."""
    share = 0.0
    for x, t in zip(vec, total, strict=True):
        if t > 0 and x / t > share:
            share = x / t
    return share


def reservation_cluster(
    book: QuotaBook, group: str, gang: Sequence[int], candidates: Sequence[str]
) -> str:
    """The candidate where the gang misses the least (capacity-normalised), first on ties."""
    best, best_gap = candidates[0], math.inf
    for c in candidates:
        avail = book.available_vec(group, c)
        cap = book.cluster_cap_vec(c)
        gap = sum(
            (n - a) / t if t else math.inf
            for n, a, t in zip(gang, avail, cap, strict=True)
            if n > a
        )
        if gap < best_gap:
            best, best_gap = c, gap
    return best
