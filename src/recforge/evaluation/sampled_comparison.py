"""Full ranking, sampled and corrected-sampled metrics side by side, with the model orders.

:func:`compare_sampled` evaluates fitted models on one split three ways:

1. **full**: every item ranked, train items removed (the evaluator's full protocol);
2. **sampled**: each user's test item ranked among ``n_negatives`` sampled negatives
   (:func:`~recforge.evaluation.sampling.sampled_split`, the evaluator's candidate protocol),
   averaged over the sampling seeds;
3. **corrected**: the sampled ranks mapped through the Krichene–Rendle correction
   (:mod:`recforge.evaluation.correction`; needs one test item per user and uniform
   sampling), averaged over the same seeds.

Per metric column it reports each model's value and place under each of the three, the
Kendall tau-b of the sampled and of the corrected order against the full one, and the model
pairs whose order flips. Every evaluation goes through the one evaluator (same masking, top-k
and tie rule); the sampled rank of a user's single test item is read from the evaluator as
1 / MRR@(n_negatives + 1), its position in the ranked candidate set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from recforge._json import jsonable
from recforge.data.split import Split
from recforge.evaluation.correction import Correction, correct_sampled
from recforge.evaluation.evaluator import evaluate_split
from recforge.evaluation.sampling import SamplingMode, sampled_split
from recforge.models.base import Recommender
from recforge.stats import rank_correlations

__all__ = ["SampledComparison", "compare_sampled"]

VIEWS = ("full", "sampled", "corrected")


@dataclass
class SampledComparison:
    """Values ``values[view][column][label]`` for view in full / sampled / corrected.

    ``spread[view][column][label]``: standard deviation over sampling seeds (0 for full).
    ``orders[view][column]``: labels best first. ``tau[column]``: Kendall tau-b of the
    sampled and corrected orders against full. ``flips[column]``: model pairs ordered
    differently by sampled (resp. corrected) than by full.
    """

    labels: list[str]
    columns: list[str]
    values: dict[str, dict[str, dict[str, float]]]
    spread: dict[str, dict[str, dict[str, float]]]
    orders: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    tau: dict[str, dict[str, float]] = field(default_factory=dict)
    flips: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self.__dict__)  # type: ignore[no-any-return]

    def to_markdown(self) -> str:
        """One table per metric column: value (place) under each view, then tau and flips."""
        views = [v for v in VIEWS if v in self.values]
        lines: list[str] = []
        for col in self.columns:
            place = {v: {lab: i + 1 for i, lab in enumerate(self.orders[v][col])} for v in views}
            lines += [f"**{col}**", "", "| model | " + " | ".join(views) + " |",
                      "| --- | " + " | ".join("---:" for _ in views) + " |"]
            for lab in self.orders["full"][col]:
                cells = []
                for v in views:
                    sd = self.spread[v][col][lab]
                    txt = f"{self.values[v][col][lab]:.4f}"
                    if sd > 0:
                        txt += f" ±{sd:.4f}"
                    cells.append(f"{txt} ({place[v][lab]})")
                lines.append(f"| {lab} | " + " | ".join(cells) + " |")
            taus = ", ".join(f"{v} {self.tau[col][v]:+.3f}" for v in views if v != "full")
            lines += ["", f"Kendall tau vs full: {taus}."]
            for v in views[1:]:
                f = self.flips[col][v]
                if f:
                    shown = "; ".join(f"{a} / {b}" for a, b in f)
                    lines.append(f"Pairs {v} orders differently from full ({len(f)}): {shown}.")
            lines.append("")
        return "\n".join(lines)


def _order(vals: Mapping[str, float], labels: Sequence[str]) -> list[str]:
    # Best first; equal values keep the given label order (stable).
    return sorted(labels, key=lambda lab: -vals[lab])


def _flips(a: list[str], b: list[str]) -> list[list[str]]:
    pa = {lab: i for i, lab in enumerate(a)}
    pb = {lab: i for i, lab in enumerate(b)}
    return [[x, y] for x, y in combinations(a, 2) if (pa[x] - pa[y]) * (pb[x] - pb[y]) < 0]


def compare_sampled(
    models: Mapping[str, Recommender],
    split: Split,
    *,
    n_negatives: int = 100,
    mode: SamplingMode = "uniform",
    seeds: Sequence[int] = (0,),
    cutoffs: Sequence[int] = (5, 10, 20),
    metrics: Sequence[str] = ("HIT_RATE", "NDCG"),
    correction: Correction = "bv",
    gamma: float = 0.1,
    tie_rule: str = "lower-index",
    memory_budget_mb: float = 256,
    log: Callable[[str], None] | None = None,
) -> SampledComparison:
    """Evaluate fitted ``models`` on ``split.test`` by full ranking, sampled and corrected.

    ``correction="none"`` leaves the corrected view out (any split, any sampling mode);
    otherwise every evaluated user must have exactly one test item and ``mode`` must be
    "uniform" (checked before any work).
    """
    log = log or (lambda _m: None)
    if not models:
        raise ValueError("compare_sampled: give at least one fitted model")
    if not seeds:
        raise ValueError("compare_sampled: give at least one sampling seed")
    n_test = split.test.user_counts()
    if correction != "none":
        if mode != "uniform":
            raise ValueError(
                f"compare_sampled: the Krichene-Rendle correction assumes uniformly sampled "
                f"negatives; mode={mode!r} cannot be corrected (use correction='none')"
            )
        if n_test.max() > 1:
            many = int((n_test > 1).sum())
            raise ValueError(
                f"compare_sampled: the correction assumes one test item per user, but {many} "
                "users have more (use a leave_one_out split, or correction='none')"
            )
    labels = list(models)
    metric_names = [m.upper() for m in metrics]
    columns = [f"{m}@{k}" for m in metric_names for k in sorted(set(cutoffs))]
    m = int(n_negatives)
    rank_cut = m + 1
    kw: dict[str, Any] = {"tie_rule": tie_rule, "memory_budget_mb": memory_budget_mb}
    full: dict[str, dict[str, float]] = {c: {} for c in columns}
    for lab, model in models.items():
        log(f"full ranking: {lab}")
        res = evaluate_split(model, split, cutoffs=sorted(set(cutoffs)), metrics=metric_names,
                             **kw)
        for c in columns:
            full[c][lab] = float(res.summary[c])
    per_seed: dict[str, dict[str, dict[str, list[float]]]] = {
        v: {c: {lab: [] for lab in labels} for c in columns} for v in ("sampled", "corrected")
    }
    for seed in seeds:
        s = sampled_split(split, m, mode=mode, seed=int(seed), parts=("test",))
        for lab, model in models.items():
            log(f"sampled ({m} negatives, seed {seed}): {lab}")
            res = evaluate_split(model, s, cutoffs=sorted({*cutoffs, rank_cut}),
                                 metrics=[*metric_names, "MRR"], protocol="candidates", **kw)
            for c in columns:
                per_seed["sampled"][c][lab].append(float(res.summary[c]))
            if correction == "none":
                continue
            rr = res.per_user[f"MRR@{rank_cut}"]
            ranks = np.where(rr > 0, np.rint(1.0 / np.where(rr > 0, rr, 1.0)), 0).astype(np.int64)
            corr = correct_sampled(metric_names, sorted(set(cutoffs)), ranks,
                                   _n_rankable(s, res.users), m, method=correction, gamma=gamma)
            for c in columns:
                per_seed["corrected"][c][lab].append(float(corr[c].mean()))
    views = ["full", "sampled"] + ([] if correction == "none" else ["corrected"])
    values: dict[str, dict[str, dict[str, float]]] = {"full": full}
    spread: dict[str, dict[str, dict[str, float]]] = {
        "full": {c: dict.fromkeys(labels, 0.0) for c in columns}}
    for v in views[1:]:
        values[v] = {c: {lab: float(np.mean(per_seed[v][c][lab])) for lab in labels}
                     for c in columns}
        spread[v] = {c: {lab: float(np.std(per_seed[v][c][lab], ddof=1))
                         if len(seeds) > 1 else 0.0 for lab in labels} for c in columns}
    out = SampledComparison(labels=labels, columns=columns, values=values, spread=spread)
    for v in views:
        out.orders[v] = {c: _order(values[v][c], labels) for c in columns}
    for c in columns:
        base = np.array([values["full"][c][lab] for lab in labels])
        out.tau[c] = {v: rank_correlations(
            base, np.array([values[v][c][lab] for lab in labels]))["kendall"]
            for v in views[1:]}
        out.flips[c] = {v: _flips(out.orders["full"][c], out.orders[v][c]) for v in views[1:]}
    out.settings = {
        "n_negatives": m, "mode": mode, "seeds": [int(s) for s in seeds],
        "cutoffs": sorted(set(cutoffs)), "metrics": metric_names, "correction": correction,
        "gamma": gamma if correction == "bv" else None, "tie_rule": tie_rule,
        "n_users": int((n_test > 0).sum()), "split_fingerprint": split.fingerprint(),
        "data_checksum": split.train.checksum(),
    }
    return out


def _n_rankable(s: Split, users: np.ndarray) -> np.ndarray:
    """Items a full ranking ranks for each user: the negatives' pool plus the test item.

    The pool is what :func:`sampled_split` drew from (items outside train, validation,
    test and profiles), so the hypergeometric law of the correction holds exactly.
    """
    known = s.train.matrix.astype(np.float32)
    for part in (s.validation, s.test, s.test_profiles, s.validation_profiles):
        if part is not None:
            known = known.maximum(part.matrix.astype(np.float32))
    known = known.tocsr()
    known.data = np.abs(known.data)
    known.eliminate_zeros()
    pool = s.train.shape[1] - np.diff(known.indptr)
    return np.asarray(pool[users] + 1, dtype=np.int64)
