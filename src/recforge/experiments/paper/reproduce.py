"""One-command reproductions of the RecSys 2019 paper's baseline tables.

``toppop-checks`` pins the evaluator and splits against two published TopPopular/Random cells.
``table3``, ``table7``, ``table4`` and ``table5`` run the full protocol of those tables (the
CiteULike-a tables on the P=10 split; ``-p1`` variants for P=1) with either the paper's reported
best hyper-parameters (``fixed=True``) or our own seeded Bayesian search.

Protocol decisions, per table, follow ``shared/docs/paper-protocols.md``:
- Table 3: MCRec's ML-100k split, full ranking excluding train items (equivalent to MCRec's
  negative file), PRECISION@10 tuned on a clean 10% per-user validation, final models refitted
  on the full train (the paper added validation back into train, which leaks into tuning);
  ItemKNN-CBF/CFCBF on the genre ICM *with the paper's bug* unless
  ``correct_genres=True``.
- Table 7: the 226,310 5-star ML-1M pairs re-split per user 80/20, 10% of train per user as
  validation, RECALL@50 on validation, RECALL/MAP at 20..100 on test.
- Tables 4/5: CVAE's CiteULike-a split, 20% of all train pairs (global) as validation,
  RECALL@150, RECALL at 50..300. Only the CF rows: the title+abstract ICM is not obtainable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recforge.experiments.paper.numbers import PAPER_PARAMS, PAPER_TABLES, REFERENCE_ROWS

__all__ = ["TABLES", "Check", "reproduce_table", "tolerance", "toppop_checks"]


@dataclass
class Check:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tolerance(paper: float) -> float:
    """Issue rule: 0.01 absolute or 3% relative, whichever is larger."""
    return max(0.01, 0.03 * abs(paper))


def _check(dataset: str, model: str, metric: str, paper: float, values: list[float],
           tol: float, note: str = "") -> Check:
    arr = np.asarray(values, dtype=np.float64)
    ours = float(arr.mean())
    return Check(
        dataset=dataset,
        model=model,
        metric=metric,
        paper=paper,
        ours=round(ours, 6),
        delta=round(ours - paper, 6),
        tolerance=tol,
        ok=bool(abs(ours - paper) <= tol),
        spread=float(arr.std(ddof=1)) if arr.size > 1 else None,
        note=note,
    )


def toppop_checks(n_seeds_ml1m: int = 5, n_seeds_random: int = 10,
                  log: Any = None) -> list[Check]:
    """The foundation issue's acceptance checks (TopPopular and Random)."""
    from recforge.data import splitting
    from recforge.data.registry import load_dataset
    from recforge.evaluation import evaluate_split
    from recforge.models import make_model

    log = log or (lambda _m: None)
    checks: list[Check] = []

    log("mcrec-ml-100k: TopPopular, full ranking excluding train items, cut-off 10")
    split = load_dataset("mcrec-ml-100k")
    top = make_model("TopPopular").fit(split.train)
    res = evaluate_split(top, split, cutoffs=[10], metrics=["PRECISION", "RECALL", "NDCG"])
    for metric, paper in (("PRECISION@10", 0.1907), ("RECALL@10", 0.1180), ("NDCG@10", 0.1361)):
        checks.append(_check("mcrec-ml-100k", "TopPopular", metric, paper,
                             [res.summary[metric]], 0.001))
    log(f"mcrec-ml-100k: Random, {n_seeds_random} seeds")
    precs = []
    for seed in range(n_seeds_random):
        rnd = make_model("Random", seed=seed).fit(split.train)
        r = evaluate_split(rnd, split, cutoffs=[10], metrics=["PRECISION"])
        precs.append(r.summary["PRECISION@10"])
    checks.append(_check("mcrec-ml-100k", "Random", "PRECISION@10", 0.0141, precs, 0.002,
                         note=f"mean of {n_seeds_random} seeds"))

    log(f"spectralcf-ml-1m (226,310 5-star pairs): per-user 80/20 + 10% validation, "
        f"{n_seeds_ml1m} seeds")
    pairs = load_dataset("spectralcf-ml-1m", part="all")
    rec, mapk = [], []
    for seed in range(n_seeds_ml1m):
        sp_ = splitting.per_user_holdout(pairs, test_fraction=0.2, seed=seed)
        sp_ = splitting.carve_validation(sp_, fraction=0.1, seed=seed, mode="per_user")
        model = make_model("TopPopular").fit(sp_.train)
        r = evaluate_split(model, sp_, cutoffs=[20], metrics=["RECALL", "MAP"])
        rec.append(r.summary["RECALL@20"])
        mapk.append(r.summary["MAP@20"])
    note = f"mean of {n_seeds_ml1m} seeds"
    checks.append(_check("spectralcf-ml-1m", "TopPopular", "RECALL@20", 0.1853, rec, 0.005, note))
    checks.append(_check("spectralcf-ml-1m", "TopPopular", "MAP@20", 0.0576, mapk, 0.003, note))
    return checks


# ---------------------------------------------------------------------------- tables
_CF_LABELS = {
    "TopPop": "TopPopular",
    "Random": "Random",
    "UserKNN CF": "UserKNNCF",
    "ItemKNN CF": "ItemKNNCF",
    "P3alpha": "P3alpha",
    "RP3beta": "RP3beta",
    "PureSVD": "PureSVD",
    "ItemKNN CBF": "ItemKNNCBF",
    "ItemKNN CFCBF": "ItemKNNCFCBF",
}


def _table_setup(name: str, correct_genres: bool) -> dict[str, Any]:
    if name == "table3":
        return {
            "dataset": {"name": "mcrec-ml-100k",
                        "options": {"with_genres": True, "genre_bug": not correct_genres}},
            # The paper tuned on validation pairs it had added back into train (leaky) and
            # trained final models on the full 80% train. We tune on a clean 10% per-user
            # validation and refit the final model on train + validation: same final training
            # data, no leak in the objective.
            "split": {"method": "predefined",
                      "validation": {"mode": "per_user", "fraction": 0.1, "refit": True}},
            "optimize": {"metric": "PRECISION", "cutoff": 10},
            "report": {"metrics": ["PRECISION", "RECALL", "NDCG"], "cutoffs": [10]},
            "labels": ["Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta",
                       "PureSVD", "ItemKNN CBF", "ItemKNN CFCBF"],
        }
    if name == "table7":
        return {
            "dataset": {"name": "spectralcf-ml-1m", "options": {"part": "all"}},
            "split": {"method": "per_user_holdout", "params": {"test_fraction": 0.2},
                      "validation": {"mode": "per_user", "fraction": 0.1}},
            "optimize": {"metric": "RECALL", "cutoff": 50},
            "report": {"metrics": ["RECALL", "MAP"], "cutoffs": [20, 40, 60, 80, 100]},
            "labels": ["Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta",
                       "PureSVD"],
        }
    if name in ("table4", "table5", "table4-p1", "table5-p1"):
        p = 1 if name.endswith("-p1") else 10
        return {
            "dataset": {"name": "cvae-citeulike-a", "options": {"p": p}},
            "split": {"method": "predefined",
                      "validation": {"mode": "global", "fraction": 0.2}},
            "optimize": {"metric": "RECALL", "cutoff": 150},
            "report": {"metrics": ["RECALL"], "cutoffs": [50, 100, 150, 200, 250, 300]},
            "labels": ["Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta",
                       "PureSVD"],
        }
    raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")


TABLES = ("table3", "table7", "table4", "table5", "table4-p1", "table5-p1")


def build_table_spec(name: str, *, fixed: bool, budget: int = 35, seeds: list[int] | None = None,
                     correct_genres: bool = False, models: list[str] | None = None,
                     n_jobs: int = 1, paper_ties: bool = False) -> dict[str, Any]:
    """The experiment spec (as a dict) that reproduces one table.

    ``paper_ties``: break ties among equal scores/similarities as the paper's numpy did
    (``tie_rule="numpy-legacy"`` for the evaluator and the KNN neighbour selection) instead of
    lower-index-first; needed where ties dominate (Table 3 ItemKNN CBF, Table 4 UserKNN).
    """
    setup = _table_setup(name, correct_genres)
    params = PAPER_PARAMS.get(name, {})
    entries = []
    for label in setup.pop("labels"):
        if models and label not in models and _CF_LABELS[label] not in models:
            continue
        entry: dict[str, Any] = {"model": _CF_LABELS[label], "label": label}
        if label in ("TopPop", "Random"):
            pass
        elif fixed:
            if label not in params:
                raise KeyError(f"no reported hyper-parameters for {label} in {name}")
            entry["params"] = dict(params[label])
            if paper_ties and "KNN" in label:
                entry["params"]["tie_rule"] = "numpy-legacy"
        else:
            fixed_part = {"similarity": "cosine"} if "KNN" in label else {}
            if paper_ties and "KNN" in label:
                fixed_part["tie_rule"] = "numpy-legacy"
            entry["params"] = fixed_part
            entry["search"] = {"n_trials": budget, "n_startup_trials": min(5, budget)}
        entries.append(entry)
    return {
        "name": f"{name}-{'fixed' if fixed else f'search{budget}'}",
        **setup,
        "protocol": "full",
        "seeds": seeds or [0],
        "models": entries,
        "n_jobs": n_jobs,
        "tie_rule": "numpy-legacy" if paper_ties else "lower-index",
    }


def reproduce_table(name: str, *, fixed: bool = False, budget: int = 35,
                    seeds: list[int] | None = None, out_dir: str | Path | None = None,
                    correct_genres: bool = False, models: list[str] | None = None,
                    n_jobs: int = 1, log: Any = None,
                    paper_ties: bool = False) -> dict[str, Any]:
    """Run one table and compare with the paper; returns the ``results.json`` content."""
    from recforge.experiments.runner import run_experiment, write_outputs
    from recforge.experiments.spec import parse_spec

    spec = parse_spec(
        build_table_spec(name, fixed=fixed, budget=budget, seeds=seeds,
                         correct_genres=correct_genres, models=models, n_jobs=n_jobs,
                         paper_ties=paper_ties),
        source=f"reproduce {name}",
    )
    outcome = run_experiment(spec, None, log=log)
    paper = PAPER_TABLES[name]
    checks = []
    for label, row in outcome.rows.items():
        for metric, ours in row.items():
            if label in paper and metric in paper[label]:
                pv = paper[label][metric]
                tol = tolerance(pv)
                # Without search the paper value is a target; with search it is a floor.
                ok = abs(ours - pv) <= tol if fixed else ours >= pv - tol
                checks.append(Check(
                    dataset=spec.dataset.label, model=label, metric=metric, paper=pv,
                    ours=round(ours, 6), delta=round(ours - pv, 6), tolerance=tol, ok=ok,
                    spread=outcome.spread[label].get(metric),
                    note="within tolerance" if fixed else "at least paper - tolerance",
                ).to_dict())
    extra = {
        "paper": paper,
        "paper_reference_rows": REFERENCE_ROWS.get(name, {}),
        "checks": checks,
        "mode": "fixed" if fixed else f"search ({budget} trials per model)",
        "all_ok": all(c["ok"] for c in checks),
    }
    if out_dir is not None:
        write_outputs(outcome, Path(out_dir), extra)
    return {"name": spec.name, "rows": outcome.rows, "spread": outcome.spread, **extra}
