"""Deprecated: the built-in datasets moved to :mod:`recforge.data.catalog` (one module per
source). This module re-exports its former public names for one release."""

from __future__ import annotations

import warnings

from recforge.data.catalog.grouplens import ML100K_GENRES, genre_icm

__all__ = ["ML100K_GENRES", "genre_icm"]

warnings.warn(
    "recforge.data.datasets is deprecated; import from recforge.data.catalog.grouplens "
    "(genre_icm, ML100K_GENRES) instead",
    DeprecationWarning,
    stacklevel=2,
)
