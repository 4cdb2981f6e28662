"""A compiled bounded min-heap that keeps the k best (value, index) pairs, in the one tie order.

"Better" means a higher value, or an equal value with a lower index (``TIE_RULE`` of
:mod:`recforge._kernels.topk`). The root holds the worst kept entry, so a candidate only enters
when it beats the root. Used by kernels that fuse selection into their own accumulation loop.
"""

from __future__ import annotations

from typing import Any

import numba

__all__ = ["better", "heap_push"]


@numba.njit(cache=True, inline="always")
def better(v1: float, i1: int, v2: float, i2: int) -> bool:
    """Whether (v1, i1) ranks before (v2, i2)."""
    return v1 > v2 or (v1 == v2 and i1 < i2)


@numba.njit(cache=True)
def heap_push(hv: Any, hi: Any, size: int, cap: int, v: float, i: int) -> int:
    """Offer (v, i) to the heap ``hv``/``hi`` holding ``size`` of at most ``cap``; new size."""
    if size < cap:
        pos = size
        size += 1
        while pos > 0:
            parent = (pos - 1) // 2
            if better(hv[parent], hi[parent], v, i):
                hv[pos] = hv[parent]
                hi[pos] = hi[parent]
                pos = parent
            else:
                break
        hv[pos] = v
        hi[pos] = i
        return size
    if not better(v, i, hv[0], hi[0]):
        return size
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= size:
            break
        child = left
        right = left + 1
        if right < size and better(hv[left], hi[left], hv[right], hi[right]):
            child = right
        if better(v, i, hv[child], hi[child]):
            hv[pos] = hv[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hv[pos] = v
    hi[pos] = i
    return size
