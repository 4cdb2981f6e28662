"""Shared by the lab's experiment tests: a small synthetic CSV and a spec over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_csv(path: Path, seed: int = 0) -> Path:
    """Two user communities, each preferring its own half of the items, plus popularity."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,rating"]
    n_users, n_items = 120, 60
    for u in range(n_users):
        half = u % 2
        pool = np.arange(n_items // 2) + half * (n_items // 2)
        k = int(rng.integers(8, 16))
        weights = 1.0 / (1 + np.arange(pool.size))
        items = rng.choice(pool, size=k, replace=False, p=weights / weights.sum())
        for i in items:
            rows.append(f"u{u},i{i},{int(rng.integers(1, 6))}")
    path.write_text("\n".join(rows) + "\n")
    return path


def spec_dict(csv: Path, **over: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "synthetic",
        "dataset": {"file": str(csv), "rating_col": "rating", "id_type": "str"},
        "split": {
            "method": "per_user_holdout",
            "params": {"test_fraction": 0.2},
            "validation": {"mode": "per_user", "fraction": 0.2},
        },
        "optimize": {"metric": "RECALL", "cutoff": 5},
        "report": {"metrics": ["RECALL", "NDCG", "PRECISION"], "cutoffs": [5, 10]},
        "seeds": [0, 1],
        "models": [
            {"model": "TopPopular"},
            {"model": "Random"},
            {"model": "ItemKNNCF", "label": "ItemKNN fixed",
             "params": {"top_k": 20, "similarity": "cosine"}},
            {"model": "ItemKNNCF", "label": "ItemKNN tuned", "params": {"similarity": "cosine"},
             "search": {"n_trials": 3, "n_startup_trials": 2}},
        ],
    }
    spec.update(over)
    return spec
