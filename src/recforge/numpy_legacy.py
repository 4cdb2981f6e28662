"""Moved to :mod:`recforge._kernels.legacy`; re-exported here for one release."""

from recforge._kernels.legacy import legacy_argpartition, legacy_argsort, legacy_top

__all__ = ["legacy_argpartition", "legacy_argsort", "legacy_top"]
