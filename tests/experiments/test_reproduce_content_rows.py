"""Tables 4/5: the neural rows read item content; without the bag of words they run (with the
CBF/CFCBF rows) on the CiteULike tag matrix, labelled as stand-in runs and never judged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from recforge.experiments.paper import numbers, setups
from recforge.experiments.paper.reproduce import build_table_spec, reproduce_table
from recforge.experiments.paper.setups import TableSetup
from recforge.experiments.spec import parse_spec


def _entry(spec: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((m for m in spec["models"] if m["label"] == label), None)


def test_tables_4_and_5_carry_their_neural_rows_with_the_paper_settings() -> None:
    for block, label, model in (("table4", "CollaborativeVAE", "CVAE"),
                                ("table4-p1", "CollaborativeVAE", "CVAE"),
                                ("table5", "CollaborativeDL", "CDL"),
                                ("table5-p1", "CollaborativeDL", "CDL")):
        spec = build_table_spec(block, fixed=True, stand_in=True)
        assert spec["dataset"]["options"]["item_features"] == "tags"
        assert spec["name"] == f"{block}-fixed-tags"
        row = _entry(spec, label)
        assert row is not None and row["model"] == model
        assert {c["label"] for c in spec["models"]} >= {"ItemKNN CBF", "ItemKNN CFCBF"}
        parse_spec(spec)
        ref = numbers.REFERENCE_ROWS[block][label]
        assert list(ref) == [f"RECALL@{k}" for k in (50, 100, 150, 200, 250, 300)]
    cvae = _entry(build_table_spec("table4", fixed=True, stand_in=True), "CollaborativeVAE")
    assert cvae is not None and cvae["early_stopping"] == {}  # every 5, patience 5, RECALL@150
    assert cvae["params"]["epochs"] == 200 and cvae["params"]["epochs_vae"] == [50, 50]
    cdl = _entry(build_table_spec("table5", fixed=True, stand_in=True), "CollaborativeDL")
    assert cdl is not None and cdl["early_stopping"] is None  # one fixed run, as RecSys'19
    assert (cdl["params"]["epochs"], cdl["params"]["epochs_dae"]) == (200, 200)
    assert numbers.REFERENCE_ROWS["table5-p1"]["CollaborativeDL"]["RECALL@300"] == 0.2477
    # without any content the neural row cannot run and is left out of the spec
    plain = build_table_spec("table4", fixed=True)
    assert _entry(plain, "CollaborativeVAE") is None and "item_features" not in (
        plain["dataset"]["options"])
    capped = build_table_spec("table5", fixed=True, stand_in=True, max_epochs=3)
    assert _entry(capped, "CollaborativeDL")["params"]["epochs"] == 3  # type: ignore[index]
    with pytest.raises(ValueError, match="no stand-in"):
        build_table_spec("table3", fixed=True, stand_in=True)


@pytest.mark.paper_data("mcrec-ml-100k")
def test_content_rows_fall_back_to_the_stand_in_and_are_not_judged(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not os.environ.get("CI"):  # CI installs torch: there a missing torch is an error
        pytest.importorskip("torch", reason="needs the recforge[torch] extra")
    # ML-100k's genre matrix plays the stand-in; the block's own content file is not at hand
    block = TableSetup(
        dataset="mcrec-ml-100k",
        split={"method": "predefined", "validation": {"mode": "per_user", "fraction": 0.1}},
        optimize=("PRECISION", 10), metrics=("PRECISION",), cutoffs=(10,),
        labels=("TopPop",), content_labels=("ItemKNN CBF",),
        content_options={"item_features": "words"},
        content_requires=(("cvae-citeulike-a", "mult_nor.mat"),),
        neural_labels=("CollaborativeDL",), neural_needs_content=True,
        early_stopping={"CollaborativeDL": None},
        stand_in_options={"with_genres": True}, stand_in_name="genres",
    )
    monkeypatch.setitem(setups.SETUPS, "tcontent", block)
    monkeypatch.setitem(numbers.PAPER_TABLES, "tcontent", {
        "TopPop": {"PRECISION@10": 0.1907}, "ItemKNN CBF": {"PRECISION@10": 0.9}})
    monkeypatch.setitem(numbers.REFERENCE_ROWS, "tcontent",
                        {"CollaborativeDL": {"PRECISION@10": 0.2}})
    monkeypatch.setitem(numbers.PAPER_PARAMS, "tcontent", {
        "ItemKNN CBF": dict(numbers.PAPER_PARAMS["table3"]["ItemKNN CBF"]),
        "CollaborativeDL": {"epochs": 2, "epochs_dae": 1, "num_factors": 4, "hidden_dims": [8],
                            "batch_size": 64, "final_als_iterations": 3, "n_threads": 1},
    })
    lines: list[str] = []
    payload = reproduce_table("tcontent", fixed=True, log=lines.append)
    assert "genres stand in for mult_nor.mat" in payload["notes"][0]
    assert payload["item_content"] == "genres"
    kinds = {c["model"]: c["kind"] for c in payload["checks"]}
    assert kinds == {"TopPop": "baseline", "ItemKNN CBF": "stand-in",
                     "CollaborativeDL": "neural"}
    cbf = next(c for c in payload["checks"] if c["model"] == "ItemKNN CBF")
    top = next(c for c in payload["checks"] if c["model"] == "TopPop")
    assert not cbf["ok"] and payload["all_ok"] is top["ok"]  # CBF reported, not judged
    assert payload["name"] == "tcontent-fixed-genres"
    assert payload["conclusion"]["CollaborativeDL"]["cells"][0]["best_baseline"] in (
        "TopPop", "ItemKNN CBF")
    # content switched off: the neural row is left out and a note says why
    off = reproduce_table("tcontent", fixed=True, with_content=False)
    assert set(off["rows"]) == {"TopPop"}
    assert any("CollaborativeDL not run: they read the item content" in n for n in off["notes"])
