"""A KNN entry listing several similarities: one search each, the best on validation kept,
every trial recorded under one numbering (the paper's way of searching a KNN)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_helpers import spec_dict, write_csv

from recforge.experiments.plan import make_plan
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import SpecError, parse_spec

SIMS = ["cosine", "jaccard", "asymmetric"]


def _entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {"model": "ItemKNNCF", "label": "ItemKNN",
                                "params": {"similarity": SIMS},
                                "search": {"n_trials": 3, "n_startup_trials": 2}}
    entry.update(over)
    return entry


def test_each_similarity_gets_its_search_and_the_best_is_kept(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "data.csv")
    spec = parse_spec(spec_dict(csv, seeds=[0], models=[{"model": "TopPopular"}, _entry()]))
    plan = make_plan(spec)
    assert plan.models[1].n_trials == 9  # 3 similarities x 3 trials
    lines: list[str] = []
    out = tmp_path / "out"
    run_experiment(spec, out, log=lines.append)

    trials = json.loads((out / "trials" / "ItemKNN__seed0.json").read_text())
    assert [t["number"] for t in trials] == list(range(9))
    assert [t["similarity"] for t in trials] == [s for s in SIMS for _ in range(3)]
    for t in trials:  # each search ran with its own similarity fixed
        assert t["params"]["similarity"] == t["similarity"]
        # every trial keeps the spec's report metrics at every report cut-off (validation)
        assert set(t["validation_summary"]) == {
            f"{m}@{k}" for m in ("RECALL", "NDCG", "PRECISION") for k in (5, 10)}
        assert t["validation_summary"]["RECALL@5"] == t["score"]
        assert t["validation_summary"]["RECALL@10"] >= t["validation_summary"]["RECALL@5"]
    tuning = json.loads((out / "best_configs.json").read_text())["ItemKNN"]["0"]["tuning"]
    per_sim = tuning["similarities"]
    assert list(per_sim) == SIMS
    for s in SIMS:
        scores = [t["score"] for t in trials if t["similarity"] == s]
        assert per_sim[s]["best_validation"] == max(scores)
        assert trials[per_sim[s]["best_trial"]]["score"] == max(scores)
    best_sim = max(SIMS, key=lambda s: (per_sim[s]["best_validation"], -SIMS.index(s)))
    assert tuning["best_similarity"] == best_sim
    assert tuning["best_validation"] == per_sim[best_sim]["best_validation"]
    assert tuning["n_trials"] == 9
    assert trials[tuning["best_trial"]]["similarity"] == best_sim
    params = json.loads((out / "best_configs.json").read_text())["ItemKNN"]["0"]["params"]
    assert params["similarity"] == best_sim
    assert params == trials[tuning["best_trial"]]["params"]
    # one numbering in the log too, counting across the three searches
    assert any("ItemKNN trial #8 (9/9)" in line for line in lines), lines
    assert any(f"best similarity {best_sim}" in line for line in lines)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(search=None), "needs a search block"),
        (_entry(params={"similarity": ["cosine", "nope"]}), "similarity 'nope'"),
        (_entry(params={"similarity": ["cosine", "cosine"]}), "distinct similarities"),
        (_entry(params={"similarity": []}), "distinct similarities"),
        (_entry(model="EASE", params={"similarity": ["cosine"]}), "EASE has no similarity"),
    ],
)
def test_a_bad_similarity_list_fails_at_load(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    csv = write_csv(tmp_path / "data.csv")
    with pytest.raises(SpecError, match=message):
        parse_spec(spec_dict(csv, models=[entry]))


def test_reproduce_searches_every_paper_similarity_when_asked() -> None:
    from recforge.experiments.paper.reproduce import build_table_spec
    from recforge.models.knn import SEARCHED_SIMILARITIES

    doc = build_table_spec("table7", fixed=False, budget=2, all_similarities=True)
    knn = [m for m in doc["models"] if "KNN" in m["label"]]
    assert knn and all(m["params"]["similarity"] == list(SEARCHED_SIMILARITIES) for m in knn)
    assert doc["name"].endswith("-allsim")
    spec = parse_spec(doc)  # each similarity's space checked at load
    assert all(m.similarities == list(SEARCHED_SIMILARITIES) for m in spec.models
               if "KNN" in m.display)
    plain = build_table_spec("table7", fixed=False, budget=2)
    assert all(m["params"]["similarity"] == "cosine" for m in plain["models"]
               if "KNN" in m["label"])
    with pytest.raises(ValueError, match="applies to a search"):
        build_table_spec("table7", fixed=True, all_similarities=True)
