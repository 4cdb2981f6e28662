"""Validation callbacks for early stopping: the evaluator scores, the model only trains.

:func:`validation_callback` turns a split's validation part, a metric and a cut-off into the
``callback(model) -> float`` that :mod:`recforge.models.iterative` calls between epochs. It
uses :func:`~recforge.evaluation.evaluator.evaluate_split` with ``on="validation"``, so the
protocol (full ranking or the validation negatives), the masking of training items and the
fold-in profiles of held-out-user splits are exactly those of tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recforge.data.split import Split
from recforge.evaluation.metrics import check_metric_names
from recforge.models.base import Recommender

__all__ = ["SplitValidation", "validation_callback"]


@dataclass
class SplitValidation:
    """``callback(model) -> float``: ``metric@cutoff`` of ``model`` on ``split.validation``.

    ``calls`` counts evaluations and ``seconds`` their total wall time (for reports).
    """

    split: Split
    metric: str
    cutoff: int
    protocol: str = "full"
    tie_rule: str = "lower-index"
    memory_budget_mb: float | None = None
    calls: int = field(default=0, init=False)
    seconds: float = field(default=0.0, init=False)

    @property
    def name(self) -> str:
        return f"{self.metric}@{self.cutoff}"

    def __call__(self, model: Recommender) -> float:
        from recforge.evaluation.evaluator import evaluate_split

        kw: dict[str, Any] = {"tie_rule": self.tie_rule}
        if self.memory_budget_mb is not None:
            kw["memory_budget_mb"] = self.memory_budget_mb
        res = evaluate_split(
            model, self.split, cutoffs=[self.cutoff], metrics=[self.metric], on="validation",
            protocol=self.protocol, exclude_train=True, **kw,
        )
        self.calls += 1
        self.seconds += float(res.meta.get("seconds", 0.0))
        return float(res.summary[self.name])


def validation_callback(
    split: Split,
    metric: str,
    cutoff: int,
    *,
    protocol: str = "full",
    tie_rule: str = "lower-index",
    memory_budget_mb: float | None = None,
) -> SplitValidation:
    """The early-stopping callback for ``split``; checks its arguments before any training."""
    metric = str(metric).upper()
    check_metric_names([metric])
    if isinstance(cutoff, bool) or not isinstance(cutoff, int) or cutoff < 1:
        raise ValueError(f"validation_callback: cutoff must be a positive integer, got {cutoff!r}")
    if split.validation is None:
        raise ValueError("validation_callback: the split has no validation part")
    if protocol not in ("full", "candidates"):
        raise ValueError(
            f"validation_callback: protocol must be 'full' or 'candidates', got {protocol!r}"
        )
    if protocol == "candidates" and split.validation_negatives is None:
        raise ValueError("validation_callback: protocol='candidates' needs "
                         "split.validation_negatives")
    return SplitValidation(split, metric, int(cutoff), protocol, tie_rule, memory_budget_mb)
