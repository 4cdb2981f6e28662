"""CMN's row in Table 2, NeuMF's in Table 6, and NeuMF shown on ML-100k with NCF's protocol."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recforge.experiments.paper import numbers
from recforge.experiments.paper.reproduce import build_table_spec, reproduce_table
from recforge.experiments.spec import SpecError, parse_spec


def _entry(spec: dict[str, object], label: str) -> dict[str, object]:
    models = spec["models"]
    assert isinstance(models, list)
    return next(m for m in models if m["label"] == label)


def test_table2_and_table6_carry_their_neural_rows_with_the_paper_settings() -> None:
    cmn = _entry(build_table_spec("table2", fixed=True), "CMN")
    assert cmn["model"] == "CMN" and cmn["early_stopping"] == {}  # every 5, patience 5, HR@5
    assert cmn["params"] == {"hops": 3, "n_negatives": 4, "reg_l2": 0.1, "reg_l2_gmf": 1e-4,
                             "learning_rate": 1e-3, "epochs": 100, "epochs_gmf": 100,
                             "pretrain": True, "cache_pretraining": True, "factors": 50,
                             "batch_size": 128}
    assert _entry(build_table_spec("table2-pinterest", fixed=True), "CMN")["params"][
        "batch_size"] == 256  # type: ignore[index]
    for block in ("table6", "table6-pinterest"):
        neumf = _entry(build_table_spec(block, fixed=True), "NeuMF")
        assert neumf["params"]["preset"] == "apr2019"  # type: ignore[index]
        parse_spec(build_table_spec(block, fixed=True))
    capped = _entry(build_table_spec("table2", fixed=True, max_epochs=3), "CMN")
    assert capped["early_stopping"]["max_epochs"] == 3  # type: ignore[index]


def test_the_ml100k_substitute_is_no_paper_table_and_samples_99_negatives() -> None:
    with pytest.raises(ValueError, match="not a paper table"):
        build_table_spec("neumf-ml100k", fixed=True)
    spec = parse_spec(build_table_spec("neumf-ml100k", fixed=False, budget=2))
    assert spec.split.negatives == 99 and spec.protocol == "candidates"
    assert spec.split.params == {"mode": "latest"}
    with pytest.raises(SpecError, match=r"split\.negatives"):
        parse_spec({"name": "x", "dataset": {"name": "cmn-citeulike-a"},
                    "split": {"method": "predefined", "negatives": 99},
                    "models": [{"model": "TopPopular"}]})


@pytest.mark.paper_data("movielens-100k")
def test_neumf_on_ml100k_end_to_end(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not os.environ.get("CI"):  # CI installs torch: there a missing torch is an error
        pytest.importorskip("torch", reason="needs the recforge[torch] extra")
    small = {"factors": 4, "layers": [8, 4], "batch_size": 2048, "epochs": 2, "epochs_gmf": 2,
             "epochs_mlp": 2, "n_threads": 1}
    monkeypatch.setitem(numbers.PAPER_PARAMS, "neumf-ml100k", {"NeuMF": small})
    payload = reproduce_table("neumf-ml100k", fixed=False, budget=1, max_epochs=1,
                              models=["TopPop", "NeuMF"], out_dir=tmp_path / "out")
    rows = payload["rows"]
    assert set(rows) == {"TopPop", "NeuMF"}
    for label in rows:
        assert set(rows[label]) == {f"{m}@{k}" for m in ("HR", "NDCG") for k in (1, 5, 10)}
        assert 0.0 <= rows[label]["NDCG@10"] <= rows[label]["HR@10"] <= 1.0
    # 99 sampled negatives + the test item: a random ranking would hit the top 10 ~10% of users
    assert rows["TopPop"]["HR@10"] > 0.2
    assert payload["checks"] == []  # nothing to compare: ML-100k is not in the paper
    verdict = payload["conclusion"]["NeuMF"]
    assert {c["best_baseline"] for c in verdict["cells"]} == {"TopPop"}
    import json

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    training = results["training"]["NeuMF"]["0"]
    assert training["epochs_gmf_best"] == 1 and training["epochs_mlp_best"] == 1
    assert [h["epoch"] for h in training["pretrain_history"]["GMF"]] == [1]
    assert np.isfinite(training["history"][0]["loss"])
