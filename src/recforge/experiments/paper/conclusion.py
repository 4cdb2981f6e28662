"""The paper's conclusion, checked per table: does the best baseline still beat the neural model?

For every reported metric cell (``"NDCG@100"``...) and every neural row, the best baseline is
the baseline row with the highest mean over seeds (ours), the comparison is a paired test on
the per-user values of the first seed (:func:`recforge.evaluation.significance.paired_test`,
the spec's test; Holm-adjusted over the block's cells per neural row), and the paper's side is
the same question asked of the paper's numbers: its best baseline among the rows we ran against
its number for the neural model. The conclusion *holds* in a cell when both answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recforge.evaluation.significance import correct_pvalues, paired_test
from recforge.experiments.outcome import ExperimentOutcome

__all__ = ["check_conclusion"]


def _best(rows: Mapping[str, Mapping[str, float]], labels: Sequence[str],
          metric: str) -> str | None:
    have = [lab for lab in labels if metric in rows.get(lab, {})]
    return max(have, key=lambda lab: rows[lab][metric]) if have else None


def check_conclusion(
    outcome: ExperimentOutcome,
    neural_labels: Sequence[str],
    paper_baselines: Mapping[str, Mapping[str, float]],
    paper_neural: Mapping[str, Mapping[str, float]],
) -> dict[str, Any]:
    """Per neural row: one entry per metric cell plus a summary (see the module docstring).

    ``paper_baselines``: the paper's numbers of the baseline rows; ``paper_neural``: its numbers
    of the neural rows. Returns ``{label: {"cells": [...], "summary": {...}}}``.
    """
    spec = outcome.spec
    seed = spec.seeds[0]
    runs = outcome.runs[seed]
    present = [lab for lab in neural_labels if lab in runs]
    baselines = [m.display for m in spec.models if m.display not in neural_labels]
    alpha = spec.report.alpha
    out: dict[str, Any] = {}
    for neural in present:
        cells: list[dict[str, Any]] = []
        for metric in runs[neural].per_user:
            best = _best(outcome.rows, baselines, metric)
            if best is None:
                continue
            a, b = runs[best].per_user[metric], runs[neural].per_user[metric]
            if not np.array_equal(runs[best].users, runs[neural].users):
                raise ValueError(
                    f"conclusion: {best} and {neural} were evaluated on different users"
                )
            p = paired_test(a, b, test=spec.report.significance_test).pvalue if a.size else 1.0
            ours_best, ours_neural = outcome.rows[best][metric], outcome.rows[neural][metric]
            paper_best = _best(paper_baselines, baselines, metric)
            paper_value = paper_neural.get(neural, {}).get(metric)
            paper_wins: bool | None = None
            if paper_best is not None and paper_value is not None:
                paper_wins = bool(paper_baselines[paper_best][metric] > paper_value)
            wins = bool(ours_best > ours_neural)
            cells.append({
                "metric": metric,
                "best_baseline": best,
                "best_baseline_value": ours_best,
                "neural_value": ours_neural,
                "baseline_beats_neural": wins,
                "p": float(p),
                "paper_best_baseline": paper_best,
                "paper_best_baseline_value": (
                    None if paper_best is None else paper_baselines[paper_best][metric]),
                "paper_neural_value": paper_value,
                "paper_baseline_beats_neural": paper_wins,
                "holds": None if paper_wins is None else paper_wins == wins,
            })
        adjusted = correct_pvalues([c["p"] for c in cells], method=spec.report.correction)
        for cell, p_adj in zip(cells, adjusted, strict=True):
            cell["p_adjusted"] = float(p_adj)
            cell["significant"] = bool(p_adj < alpha)
        out[neural] = {"cells": cells, "summary": _summary(neural, cells, spec, alpha)}
    return out


def _summary(neural: str, cells: list[dict[str, Any]], spec: Any, alpha: float) -> dict[str, Any]:
    n = len(cells)
    wins = [c for c in cells if c["baseline_beats_neural"]]
    sig_wins = [c for c in wins if c["significant"]]
    sig_losses = [c for c in cells if not c["baseline_beats_neural"] and c["significant"]]
    compared = [c for c in cells if c["holds"] is not None]
    paper_wins = sum(bool(c["paper_baseline_beats_neural"]) for c in compared)
    holds = sum(bool(c["holds"]) for c in compared)
    if n == 0:
        # e.g. `--models <neural row>` alone: "0/0 cells" would read like a verdict
        text = (f"not checked for {neural}: no baseline row ran beside it "
                f"(run the table without --models, or name baselines too)")
    else:
        text = (
            f"best baseline beats {neural} in {len(wins)}/{n} cells "
            f"({len(sig_wins)} significant, {len(sig_losses)} significantly worse; "
            f"{spec.report.significance_test}, {spec.report.correction}-adjusted, alpha {alpha})"
        )
    if compared:
        text += (f"; paper: baseline ahead in {paper_wins}/{len(compared)}; the paper's "
                 f"conclusion holds in {holds}/{len(compared)} cells")
    return {
        "cells": n,
        "baseline_wins": len(wins),
        "baseline_wins_significant": len(sig_wins),
        "neural_wins_significant": len(sig_losses),
        "paper_cells": len(compared),
        "paper_baseline_wins": paper_wins,
        "holds": holds,
        "text": text,
    }
