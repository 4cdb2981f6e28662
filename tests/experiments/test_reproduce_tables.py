"""Table 2 (CMN, CiteULike-a) and Table 7 on SpectralCF's original split, baseline rows with the
paper's best hyper-parameters. Expected values are the paper's (FULL_RESULTS, paper-protocols
§3), written here independently of the code's own tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paper_cells import (
    TABLE2_CITEULIKE,
    TABLE2_METRICS,
    TABLE7_METRICS,
    TABLE7_ORIGINAL,
    cells,
    compare_fixed,
    interval_misses,
)
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.experiments.paper.reproduce import build_table_spec, reproduce_table
from recforge.experiments.spec import parse_spec

# The paper-data guard (tests/conftest.py): skipped locally without the mirror, an error under CI.
needs_data = pytest.mark.paper_data("cmn-citeulike-a", "spectralcf-ml-1m")


@pytest.fixture
def mirror(paper_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(paper_data))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))


def test_table2_protocol_is_the_papers() -> None:
    spec = parse_spec(build_table_spec("table2", fixed=True), source="table2")
    assert spec.dataset.name == "cmn-citeulike-a"
    assert spec.protocol == "candidates"
    assert spec.split.validation is not None and spec.split.validation.mode == "leave_one_out"
    assert (spec.optimize.metric, spec.optimize.cutoff) == ("HR", 5)
    assert spec.report.cutoffs == [5, 10] and spec.report.metrics == ["HR", "NDCG"]
    labels = [m.display for m in spec.models]
    assert labels == ["Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta",
                      "PureSVD", "CMN"]
    rp3 = next(m for m in spec.models if m.display == "RP3beta")
    assert rp3.params["top_k"] == 800 and rp3.params["beta"] == 0.1262


def test_table7_original_protocol_is_the_papers() -> None:
    spec = parse_spec(build_table_spec("table7-original", fixed=True), source="t7o")
    assert spec.dataset.options == {"part": "original"}
    assert spec.split.method == "predefined" and spec.protocol == "full"
    assert spec.split.validation is not None
    assert (spec.split.validation.mode, spec.split.validation.fraction) == ("per_user", 0.1)
    assert spec.seeds == [0, 1, 2, 3, 4]
    user = next(m for m in spec.models if m.display == "UserKNN CF")
    assert (user.params["top_k"], user.params["shrink"], user.params["normalize"]) == (
        800, 965, False)


@needs_data
def test_table2_fixed_matches_the_paper(mirror: None) -> None:
    models = ["TopPop", "ItemKNN CF"]  # two rows keep the test short; every cell is compared
    res = reproduce_table("table2", fixed=True, paper_ties=True, models=models)
    assert set(res["rows"]) == set(models)
    expected = {k: v for k, v in cells(TABLE2_CITEULIKE, TABLE2_METRICS).items()
                if k[0] in models}
    assert compare_fixed(res["checks"], expected, res["rows"]) == []
    assert len(res["checks"]) == 8
    assert res["all_ok"] is not interval_misses(res["checks"])


def test_reproduce_variant_options_are_checked() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "table7", "--split", "nope"])
    assert res.exit_code == 2 and "original" in res.output and "ours" in res.output
    res = runner.invoke(app, ["reproduce", "table3", "--split", "original"])
    assert res.exit_code == 2 and "no variants" in res.output
    res = runner.invoke(app, ["reproduce", "table2", "--split", "a", "--dataset", "b"])
    assert res.exit_code == 2 and "not both" in res.output


@needs_data
def test_reproduce_table7_original_cli_json(mirror: None, tmp_path: Path) -> None:
    # SpectralCF's row for a quick look: 5 epochs with the sparse I + L propagation.
    res = CliRunner().invoke(app, ["reproduce", "table7", "--split", "original", "--fixed",
                                   "--seeds", "0", "--max-epochs", "5",
                                   "--neural-param", "SpectralCF.propagation=sparse",
                                   "--json", "--out", str(tmp_path / "o")])
    payload = json.loads(res.stdout)
    assert payload["name"] == "table7-original-fixed-cap5"
    # Every one of the 70 baseline cells against the paper (paper_cells). With one validation
    # carve-out (seed 0) three @80/@100 recall cells lie just outside the tolerance: the open
    # shift of paper-protocols §2.5 (docs/RESULTS.md; with seeds 0..4 only P3alpha's remains).
    # They are pinned, so a new deviation or a fixed one both show here.
    outside = compare_fixed(payload["checks"], cells(TABLE7_ORIGINAL, TABLE7_METRICS),
                            payload["rows"])
    assert {(label, metric) for label, metric, *_ in outside} == {
        ("TopPop", "RECALL@100"), ("P3alpha", "RECALL@100"), ("PureSVD", "RECALL@80")}
    assert all(abs(ours - paper) < 0.02 for *_, ours, paper in outside), outside
    assert payload["all_ok"] is False
    # TopPop on the original split is far below its 0.1853 on the paper's own re-split: the
    # released test set's popularity differs from train's (paper §2.5).
    assert payload["rows"]["TopPop"]["RECALL@20"] < 0.05
    assert {c["dataset"] for c in payload["checks"]} == {"spectralcf-ml-1m"}
    kinds = [c["kind"] for c in payload["checks"]]
    assert kinds.count("baseline") == 7 * 10 and kinds.count("neural") == 10
    assert payload["neural"]["changed_params"] == {"SpectralCF": {"propagation": "sparse"}}
    assert payload["neural"]["max_epochs"] == 5
    assert "SpectralCF" in payload["conclusion"]
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["paper"]["P3alpha"]["RECALL@100"] == 0.3313
    assert results["paper_reference_rows"]["SpectralCF"]["RECALL@20"] == 0.1556
    # exit status follows the checks
    assert res.exit_code == (0 if payload["all_ok"] else 1)
