"""Significance marks and intervals of an experiment's results table.

Per metric column, the reference is the model with the best mean on the first seed. Every other
model is compared with it by a paired per-user test (Wilcoxon signed-rank by default, or a
paired t-test), and the p-values of one column are corrected together (Holm or
Benjamini-Hochberg). A cell is marked ``*`` when it differs significantly from the reference
after correction; the reference cell is marked ``^``. Each mean gets a bootstrap 95 % interval
over users (first seed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recforge.experiments.outcome import ExperimentOutcome

__all__ = ["build_significance"]


def build_significance(outcome: ExperimentOutcome) -> dict[str, dict[str, dict[str, Any]]]:
    from recforge.evaluation.significance import bootstrap_ci, correct_pvalues, paired_test

    spec = outcome.spec
    seed = spec.seeds[0]
    runs = outcome.runs[seed]
    labels = [m.display for m in spec.models]
    columns = [k for k in runs[labels[0]].per_user]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for col in columns:
        means = {lab: float(np.mean(runs[lab].per_user[col])) for lab in labels}
        ref = max(labels, key=lambda lab: means[lab])
        others = [lab for lab in labels if lab != ref]
        pvals = []
        for lab in others:
            a, b = runs[lab].per_user[col], runs[ref].per_user[col]
            pvals.append(
                paired_test(a, b, test=spec.report.significance_test).pvalue if a.size else 1.0
            )
        adj: np.ndarray = (
            correct_pvalues(np.asarray(pvals, dtype=np.float64), method=spec.report.correction)
            if pvals
            else np.zeros(0)
        )
        col_out: dict[str, dict[str, Any]] = {}
        for lab in labels:
            vals = runs[lab].per_user[col]
            lo, hi = bootstrap_ci(vals, n_boot=1000, alpha=0.05, seed=seed) if vals.size else (0, 0)
            entry: dict[str, Any] = {"mean": means[lab], "ci95": [float(lo), float(hi)]}
            if lab == ref:
                entry.update(reference=True, p=None, p_adjusted=None, significant=None)
            else:
                i = others.index(lab)
                p_adj = float(adj[i])
                entry.update(
                    reference=False,
                    p=float(pvals[i]),
                    p_adjusted=p_adj,
                    significant=bool(p_adj < spec.report.alpha),
                )
            col_out[lab] = entry
        out[col] = col_out
    return out
