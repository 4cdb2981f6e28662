"""Moved to :mod:`recforge._kernels._select_numba`; re-exported here for one release."""

from recforge._kernels._select_numba import topk_candidates, topk_full

__all__ = ["topk_candidates", "topk_full"]
