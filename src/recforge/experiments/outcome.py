"""What an experiment run produces: one :class:`ModelRun` per (seed, model) and the
:class:`ExperimentOutcome` around them.

These are plain result types, read by the report and written by the runner; they live here so
neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recforge.experiments.spec import ExperimentSpec

__all__ = ["ExperimentOutcome", "ModelRun", "SearchFailedError"]


class SearchFailedError(RuntimeError):
    """Every trial of a search failed; the message holds the first trial's traceback."""


@dataclass
class ModelRun:
    """One model on one seed's split: its chosen parameters, test summary and per-user values.

    ``per_user`` maps ``"METRIC@k"`` to one value per evaluated user (internal ids in
    ``users``); ``trials`` and ``tuning`` are filled when the entry had a search.
    """

    label: str
    model: str
    params: dict[str, Any]
    summary: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    fit_seconds: float
    eval_seconds: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    tuning: dict[str, Any] | None = None
    #: iterative models: epochs_best, epochs_run, best_validation, stop_reason, history.
    training: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    #: external ids of ``users`` (the data's ``user_ids``), for exports
    user_ids: np.ndarray | None = None
    #: coverage and popularity of the test recommendations
    #: (:func:`recforge.experiments.report.recommendation_profile`)
    recommended: dict[str, Any] | None = None
    #: the final fit's peak memory (:class:`recforge.tuning.memory.PeakMemory`): ``peak_rss_mb``
    #: (the process's high-water mark), ``added_mb`` (above its size before the fit), ``method``
    fit_memory: dict[str, Any] | None = None


@dataclass
class ExperimentOutcome:
    """A whole run: the spec, mean rows over seeds, their spread, every run and data identity."""

    spec: ExperimentSpec
    rows: dict[str, dict[str, float]]
    spread: dict[str, dict[str, float]]
    runs: dict[int, dict[str, ModelRun]]
    data: dict[str, Any]
    out_dir: Path | None = None
    #: cells checked against the spec's ``reference:`` block (recforge.experiments.reference).
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """Every run's warnings (e.g. failed trials), prefixed with seed and label."""
        return [f"seed {seed}, {label}: {w}" for seed, by_label in self.runs.items()
                for label, run in by_label.items() for w in run.warnings]
