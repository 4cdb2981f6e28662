"""Moved to :mod:`recforge._kernels.topk` (the one top-k); re-exported here for one release."""

from recforge._kernels.topk import (
    TIE_RULE,
    TIE_RULES,
    Backend,
    TieRule,
    TopK,
    gather_rows,
    numba_available,
    resolve_backend,
    select_topk,
)

__all__ = [
    "TIE_RULE",
    "TIE_RULES",
    "Backend",
    "TieRule",
    "TopK",
    "gather_rows",
    "numba_available",
    "resolve_backend",
    "select_topk",
]
