"""Sharded evaluation on a real local Ray cluster equals a single-process run, exactly.

The Ray head runs in a loopback-only network namespace (session fixture ``ray_head``,
tests/ray_netns.py); the scenario below runs as a script inside that namespace and prints
JSON, which the test asserts on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, also as a script
from ray_netns import GCS_ADDRESS, PY, RayHead, in_namespace


def scenario() -> dict[str, Any]:
    import numpy as np
    import scipy.sparse as sp

    from recforge.data import splitting
    from recforge.data.interactions import Interactions
    from recforge.evaluation import Evaluator, evaluate_split, sampled_split
    from recforge.evaluation.distributed import evaluate_on_ray
    from recforge.models import make_model

    m = sp.random(3000, 800, density=0.03, random_state=3, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    split = splitting.per_user_holdout(Interactions(m), test_fraction=0.2, seed=0)
    cand = sampled_split(split, 50, seed=1, parts=("test",))
    pop = split.train.item_counts()
    metrics = ["PRECISION", "RECALL", "NDCG", "MAP", "MRR", "COVERAGE", "GINI", "NOVELTY",
               "AVG_POP"]
    out: dict[str, Any] = {"cases": []}
    models = {
        "ItemKNNCF": make_model("ItemKNNCF", top_k=50).fit(split.train),
        "PureSVD": make_model("PureSVD", num_factors=20).fit(split.train),
        "TopPopular": make_model("TopPopular").fit(split.train),
    }
    for protocol in ("full", "candidates"):
        s = split if protocol == "full" else cand
        for name, model in models.items():
            kw: dict[str, Any] = {"cutoffs": [5, 20], "metrics": metrics,
                                  "item_popularity": pop, "memory_budget_mb": 0.4,
                                  "exclude": s.train}
            if protocol == "candidates":
                kw["candidates"] = s.test_negatives
            ev = Evaluator(s.test, **kw)
            single = ev.evaluate(model)
            sharded = evaluate_on_ray(ev, model, address=GCS_ADDRESS, n_workers=2,
                                      batches_per_block=3)
            same_users = bool(np.array_equal(single.users, sharded.users))
            same_per_user = all(np.array_equal(single.per_user[k], sharded.per_user[k])
                                for k in single.per_user)
            out["cases"].append({
                "protocol": protocol, "model": name, "same_users": same_users,
                "same_per_user": same_per_user, "same_summary": single.summary == sharded.summary,
                "n_batches": [single.meta["n_batches"], sharded.meta["n_batches"]],
                "distributed": sharded.meta["distributed"],
                "matches_evaluate_split": protocol == "candidates" or (
                    evaluate_split(model, s, cutoffs=[5, 20], metrics=["NDCG"],
                                   memory_budget_mb=0.4).per_user["NDCG@5"].tolist()
                    == sharded.per_user["NDCG@5"].tolist()),
            })
    return out


@pytest.mark.ray
def test_sharded_evaluation_equals_single_process(ray_head: RayHead) -> None:
    res = in_namespace(ray_head, [PY, __file__, "scenario"], timeout=600)
    assert res.returncode == 0, f"scenario failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(out["cases"]) == 6
    for case in out["cases"]:
        assert case["same_users"] and case["same_per_user"] and case["same_summary"], case
        assert case["matches_evaluate_split"], case
        single_batches, sharded_batches = case["n_batches"]
        assert single_batches == sharded_batches > 6  # many batches, over several blocks
        dist = case["distributed"]
        assert dist["workers"] == 2 and dist["blocks"] > 2
        assert len(set(dist["worker_pids"])) == 2  # two actors, each holding its own model


if __name__ == "__main__":
    print(json.dumps(globals()[sys.argv[1]]()))
