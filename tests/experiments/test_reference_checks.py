"""Reference checks: both criteria, the two-stage interval, and a spec's ``reference:`` block."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.evaluation.significance import bootstrap_ci, seeds_users_ci
from recforge.experiments.reference import Tolerance, check_cell
from recforge.experiments.spec import SpecError, parse_spec


def test_a_cell_passes_only_when_both_criteria_hold() -> None:
    tol = Tolerance(absolute=0.01, relative=0.03)
    ok = check_cell("d", "m", "MAP@20", 0.0191, 0.0193, interval=(0.0180, 0.0205), tolerance=tol)
    assert ok.ok and ok.within_tolerance and ok.in_interval
    assert ok.rel_delta == pytest.approx(0.0002 / 0.0191, abs=1e-6)
    # A small metric, 10 % above the paper: inside the 0.01 floor, outside our interval.
    shifted = check_cell("d", "m", "MAP@20", 0.0191, 0.0210, interval=(0.0202, 0.0218))
    assert shifted.within_tolerance and shifted.in_interval is False and not shifted.ok
    assert "reference outside our interval" in shifted.note
    noisy = check_cell("d", "m", "R@20", 0.30, 0.25, interval=(0.18, 0.32))
    assert noisy.in_interval and not noisy.within_tolerance and not noisy.ok
    # No per-user values (e.g. COVERAGE): the tolerance alone decides, and the note says so.
    bare = check_cell("d", "m", "COVERAGE@20", 0.5, 0.505)
    assert bare.ok and bare.in_interval is None and "no interval" in bare.note
    # Floor (our own search): at least paper - tolerance, and not significantly below it.
    assert check_cell("d", "m", "R", 0.30, 0.35, mode="floor", interval=(0.33, 0.37)).ok
    below = check_cell("d", "m", "R", 0.30, 0.295, mode="floor", interval=(0.290, 0.299))
    assert below.within_tolerance and not below.ok and "significantly below" in below.note


def test_one_seed_interval_is_the_user_bootstrap_and_covers_the_mean() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(200):
        x = rng.exponential(0.2, 300)  # skewed per-user values, true mean 0.2
        lo, hi = seeds_users_ci([x], n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += bool(lo[0] <= 0.2 <= hi[0])
    assert 0.90 <= covered / 200 <= 0.99  # nominal 95 %
    x = rng.normal(0.3, 0.1, 2000)
    lo, hi = seeds_users_ci([x], n_boot=500, seed=3)
    b_lo, b_hi = bootstrap_ci(x, n_boot=500, seed=7)
    assert abs(lo[0] - b_lo) < 0.002 and abs(hi[0] - b_hi) < 0.002


def test_spread_over_seeds_widens_the_interval() -> None:
    rng = np.random.default_rng(1)
    same = [rng.normal(0.3, 0.1, (3000, 2)) for _ in range(5)]
    moved = [a + shift for a, shift in zip(same, [-0.02, -0.01, 0.0, 0.01, 0.02], strict=True)]
    lo_s, hi_s = seeds_users_ci(same, n_boot=600, seed=0)
    lo_m, hi_m = seeds_users_ci(moved, n_boot=600, seed=0)
    assert np.all(hi_m - lo_m > 3 * (hi_s - lo_s))
    assert np.all(lo_m < 0.3) and np.all(hi_m > 0.3)
    with pytest.raises(ValueError, match="same columns"):
        seeds_users_ci([np.zeros((5, 2)), np.zeros((5, 3))])


def _data_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    weights = np.linspace(2, 0.1, 200) / np.linspace(2, 0.1, 200).sum()
    users = np.repeat(np.arange(4000), 12)
    items = np.concatenate([rng.choice(200, 12, replace=False, p=weights) for _ in range(4000)])
    path = tmp_path / "data.csv"
    pl.DataFrame({"user": users, "item": items}).write_csv(path)
    return path


def _spec(data: Path, reference: dict[str, object] | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "ref", "dataset": {"file": str(data)},
        "split": {"method": "per_user_holdout", "params": {"test_fraction": 0.25}},
        "report": {"metrics": ["RECALL", "NDCG", "COVERAGE"], "cutoffs": [10]},
        "seeds": [0],
        "models": [{"model": "TopPopular"}, {"model": "Random"}],
    }
    if reference is not None:
        spec["reference"] = reference
    return spec


def test_recforge_run_prints_and_stores_the_reference_check(tmp_path: Path) -> None:
    data = _data_file(tmp_path)
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(_spec(data)))
    res = CliRunner().invoke(app, ["run", str(first), "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "a" / "results.json").read_text())["rows"]
    ours = rows["TopPopular"]["RECALL@10"]
    reference = {
        "source": "a run of the same spec",
        "values": {
            "TopPopular": {"RECALL@10": ours, "NDCG@10": rows["TopPopular"]["NDCG@10"] + 0.008,
                           "COVERAGE@10": rows["TopPopular"]["COVERAGE@10"]},
            "Random": {"RECALL@10": rows["Random"]["RECALL@10"]},
        },
    }
    spec = tmp_path / "ref.yaml"
    spec.write_text(yaml.safe_dump(_spec(data, reference)))
    res = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "reference check (a run of the same spec)" in res.output
    assert "3/4 cells pass" in res.output, res.output
    results = json.loads((tmp_path / "b" / "results.json").read_text())
    cells = {(c["model"], c["metric"]): c for c in results["checks"]}
    assert cells[("TopPopular", "RECALL@10")]["ok"]
    assert cells[("TopPopular", "RECALL@10")]["delta"] == 0.0
    lo, hi = cells[("TopPopular", "RECALL@10")]["interval"]
    assert lo < ours < hi
    # 0.008 above ours: inside the 0.01 tolerance floor, yet outside our interval.
    nd = cells[("TopPopular", "NDCG@10")]
    assert nd["within_tolerance"] and nd["in_interval"] is False and not nd["ok"]
    assert cells[("TopPopular", "COVERAGE@10")]["in_interval"] is None
    assert results["check_summary"] == {"cells": 4, "pass": 3, "within_tolerance": 4,
                                        "reference_in_interval": 2, "no_interval": 1}
    assert results["reference_ok"] is False
    assert "AND the reference lies inside our 95% interval" in results["reference"]["rule"]
    report = (tmp_path / "b" / "report.md").read_text()
    assert "## Cell-by-cell check against the reference" in report and "| NO |" in report


def test_a_bad_reference_block_fails_at_load(tmp_path: Path) -> None:
    data = _data_file(tmp_path)
    with pytest.raises(SpecError, match=r"names model\(s\) \['EASE'\]"):
        parse_spec(_spec(data, {"values": {"EASE": {"RECALL@10": 0.1}}}))
    with pytest.raises(SpecError, match=r"\['RECALL@20'\] are not reported"):
        parse_spec(_spec(data, {"values": {"Random": {"RECALL@20": 0.1}}}))
    with pytest.raises(SpecError, match=r"tolerance\.relative"):
        parse_spec(_spec(data, {"values": {}, "tolerance": {"relative": -1}}))


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k")
def test_reproduce_reports_both_criteria_per_cell() -> None:
    from recforge.experiments.paper.reproduce import reproduce_table

    res = reproduce_table("table3", fixed=True, models=["TopPop", "Random"], paper_ties=True)
    assert len(res["checks"]) == 6
    for c in res["checks"]:
        assert c["rel_delta"] == pytest.approx(c["delta"] / c["paper"], rel=1e-2, abs=1e-5)
        lo, hi = c["interval"]
        assert lo <= c["ours"] <= hi and hi - lo < 0.1
        assert c["ok"] == (c["within_tolerance"] and c["in_interval"])
    assert res["rule"].startswith("pass = |ours - reference| <=")
    assert res["check_summary"]["cells"] == 6
