"""Hyper-parameter tuning with the RecSys'19 protocol on optuna (see :mod:`.engine`)."""

from recforge.tuning.engine import (
    WORST_SCORE,
    EarlyStopping,
    TrialRecord,
    TuningResult,
    default_search_space,
    tune,
)
from recforge.tuning.memory import PeakMemory
from recforge.tuning.protocols import PRESETS, ProtocolPreset, get_preset
from recforge.tuning.space import SearchSpace, to_distribution, to_distributions, validate_space

__all__ = [
    "PRESETS",
    "WORST_SCORE",
    "EarlyStopping",
    "PeakMemory",
    "ProtocolPreset",
    "SearchSpace",
    "TrialRecord",
    "TuningResult",
    "default_search_space",
    "get_preset",
    "to_distribution",
    "to_distributions",
    "tune",
    "validate_space",
]
