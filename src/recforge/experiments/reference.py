"""Checks of our numbers against reference values: the one pass rule, with statistics.

A *cell* is one (model, metric) value we measured and a reference value for it (a paper's,
or any value a spec's ``reference:`` block gives). Each cell reports: ours, the reference, the
delta, the relative delta, our (1 − alpha) interval of the mean and whether the reference lies
inside it, and whether the delta is within the tolerance. Two criteria, both stated:

- **tolerance**: ``|ours − ref| <= max(absolute, relative · |ref|)`` (defaults 0.01 and 3 %,
  the issue's original rule) — is the difference small in practice?
- **interval**: the reference lies inside our 95 % interval of the mean — is the difference
  within what the measurement itself can tell apart? The interval is a two-stage bootstrap
  (:func:`recforge.evaluation.significance.seeds_users_ci`): seeds with replacement, then users
  with replacement within each, so it holds the user sampling and, when several seeds run,
  the spread over seeds. Small metrics get narrow intervals, so this criterion catches the
  systematic shifts the tolerance floor cannot (MAP around 0.01 on Table 7's original split).

``mode="target"`` (reproducing with the reported settings): a cell passes when **both** hold;
a metric without per-user values (COVERAGE, GINI, ...) has no interval and is judged by the
tolerance alone (said in its note). ``mode="floor"`` (our own search against a reported
result): ours must reach ``ref − tolerance`` **and** the reference must not lie above our
interval (we are not significantly worse).

A spec carries references as::

    reference:
      source: RecSys'19 Table 7 (FULL_RESULTS.md, 024dc15)
      values: {TopPop: {RECALL@20: 0.1853, MAP@20: 0.0576}}
      tolerance: {absolute: 0.0, relative: 0.05}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from recforge.experiments.outcome import ExperimentOutcome

__all__ = [
    "Check", "ReferenceSpec", "Tolerance", "check_cell", "check_outcome", "check_spec_reference",
    "rule_text", "summarize",
]

Mode = Literal["target", "floor"]


class Tolerance(BaseModel):
    """``|ours − ref| <= max(absolute, relative · |ref|)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    absolute: float = Field(default=0.01, ge=0)
    relative: float = Field(default=0.03, ge=0)

    def of(self, reference: float) -> float:
        return max(self.absolute, self.relative * abs(reference))

    def describe(self) -> str:
        return f"max({self.absolute:g}, {self.relative:.0%} of the reference)"


class ReferenceSpec(BaseModel):
    """Reference values per model label and ``"METRIC@k"``, and how they are judged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: dict[str, dict[str, float]]
    tolerance: Tolerance = Field(default_factory=lambda: Tolerance())
    mode: Mode = "target"
    confidence: float = Field(default=0.95, gt=0, lt=1)
    n_boot: int = Field(default=1000, ge=100)
    source: str | None = None


def rule_text(mode: Mode, tolerance: Tolerance, confidence: float) -> str:
    """The pass rule in words (printed and stored with the checks)."""
    c = f"{confidence:.0%}"
    if mode == "target":
        return (f"pass = |ours - reference| <= {tolerance.describe()} AND the reference lies "
                f"inside our {c} interval (bootstrap over users and seeds); metrics without "
                "per-user values: tolerance only")
    return (f"pass = ours >= reference - {tolerance.describe()} AND the reference is not above "
            f"our {c} interval (not significantly worse); metrics without per-user values: "
            "tolerance only")


@dataclass
class Check:
    """One cell: ours vs the reference (``paper``), both criteria and the verdict ``ok``."""

    dataset: str
    model: str
    metric: str
    paper: float
    ours: float
    delta: float
    tolerance: float
    ok: bool
    spread: float | None = None
    note: str = ""
    kind: str = "baseline"  # "neural" / "stand-in": reported, not part of a table's all_ok
    rel_delta: float | None = None
    interval: list[float] | None = None
    confidence: float = 0.95
    in_interval: bool | None = None
    within_tolerance: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_cell(
    dataset: str, model: str, metric: str, reference: float, ours: float, *,
    mode: Mode = "target", tolerance: Tolerance | None = None,
    interval: tuple[float, float] | None = None, spread: float | None = None,
    confidence: float = 0.95,
) -> Check:
    """The one pass rule of a cell (module docstring); ``interval`` = our interval of the mean."""
    tol_rule = tolerance or Tolerance()
    tol = tol_rule.of(reference)
    delta = ours - reference
    within = abs(delta) <= tol if mode == "target" else ours >= reference - tol
    inside: bool | None = None
    if interval is not None:
        lo, hi = float(interval[0]), float(interval[1])
        inside = lo <= reference <= hi if mode == "target" else reference <= hi
    ok = within and inside is not False
    parts = ["within tolerance" if within else "outside tolerance"]
    if inside is None:
        parts.append("no per-user values: no interval")
    elif mode == "target":
        parts.append("reference inside our interval" if inside else
                     "reference outside our interval")
    else:
        parts.append("not significantly below" if inside else "significantly below")
    return Check(
        dataset=dataset, model=model, metric=metric, paper=reference, ours=round(ours, 6),
        delta=round(delta, 6), tolerance=tol, ok=bool(ok), spread=spread,
        note="; ".join(parts),
        rel_delta=None if reference == 0 else round(delta / abs(reference), 6),
        interval=None if interval is None else [round(float(interval[0]), 6),
                                                round(float(interval[1]), 6)],
        confidence=confidence, in_interval=inside, within_tolerance=bool(within),
    )


def _intervals(
    outcome: ExperimentOutcome, cells: Sequence[tuple[str, str]], confidence: float,
    n_boot: int,
) -> dict[tuple[str, str], tuple[float, float]]:
    """Two-stage bootstrap interval of every (label, metric) cell that has per-user values.

    Columns of models evaluated on the same users share the resamples (one resampler per
    seed and user set), which keeps the cost to a few matrix products per seed.
    """
    from recforge.evaluation.significance import seeds_users_ci

    seeds = outcome.spec.seeds
    wanted = [c for c in cells if all(c[1] in outcome.runs[s][c[0]].per_user for s in seeds)]
    if not wanted:
        return {}
    groups: dict[tuple[bytes, ...], list[tuple[str, str]]] = {}
    for label, metric in wanted:
        key = tuple(np.asarray(outcome.runs[s][label].users, np.int64).tobytes() for s in seeds)
        groups.setdefault(key, []).append((label, metric))
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for members in groups.values():
        per_seed = [np.column_stack([outcome.runs[s][lab].per_user[m] for lab, m in members])
                    for s in seeds]
        lo, hi = seeds_users_ci(per_seed, n_boot=n_boot, alpha=1 - confidence, seed=seeds[0])
        for j, cell in enumerate(members):
            out[cell] = (float(lo[j]), float(hi[j]))
    return out


def check_outcome(
    outcome: ExperimentOutcome,
    values: Mapping[str, Mapping[str, float]],
    *,
    mode: Mode | Mapping[str, Mode] = "target",
    tolerance: Tolerance | None = None,
    confidence: float = 0.95,
    n_boot: int = 1000,
    kinds: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every cell of ``outcome`` that ``values`` has a reference for, in row order.

    ``mode`` may differ per label (e.g. neural rows are targets while searched baselines are
    floors); ``kinds`` labels cells (default "baseline").
    """
    cells = [(label, metric) for label, row in outcome.rows.items() for metric in row
             if metric in values.get(label, {})]
    intervals = _intervals(outcome, cells, confidence, n_boot)
    checks = []
    for label, metric in cells:
        m = mode if isinstance(mode, str) else mode.get(label, "target")
        cell = check_cell(
            outcome.spec.dataset.label, label, metric, float(values[label][metric]),
            outcome.rows[label][metric], mode=m, tolerance=tolerance,
            interval=intervals.get((label, metric)),
            spread=outcome.spread[label].get(metric) if len(outcome.spec.seeds) > 1 else None,
            confidence=confidence,
        )
        cell.kind = (kinds or {}).get(label, "baseline")
        checks.append(cell)
    return checks


def summarize(checks: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of cells passing each criterion and both."""
    return {
        "cells": len(checks),
        "pass": sum(bool(c["ok"]) for c in checks),
        "within_tolerance": sum(bool(c["within_tolerance"]) for c in checks),
        "reference_in_interval": sum(c["in_interval"] is True for c in checks),
        "no_interval": sum(c["in_interval"] is None for c in checks),
    }


def check_spec_reference(outcome: ExperimentOutcome, ref: ReferenceSpec) -> dict[str, Any]:
    """The checks of a spec's ``reference:`` block, as stored in results.json."""
    checks = [c.to_dict() for c in check_outcome(
        outcome, ref.values, mode=ref.mode, tolerance=ref.tolerance,
        confidence=ref.confidence, n_boot=ref.n_boot)]
    return {
        "reference": {"source": ref.source, "mode": ref.mode,
                      "tolerance": ref.tolerance.model_dump(), "confidence": ref.confidence,
                      "rule": rule_text(ref.mode, ref.tolerance, ref.confidence)},
        "paper": {label: dict(v) for label, v in ref.values.items()},
        "checks": checks,
        "check_summary": summarize(checks),
        "reference_ok": all(c["ok"] for c in checks),
    }
