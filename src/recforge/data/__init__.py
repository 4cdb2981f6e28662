"""Datasets, the Interactions type, filters, the dataset registry and splits."""

from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = ["Interactions", "Split"]
