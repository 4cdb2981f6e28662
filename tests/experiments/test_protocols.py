"""Protocols that do not mislead: validation follows the test split, cold-start test users are
counted, warned about and kept or dropped by name, filters compact the id spaces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lab_helpers import spec_dict as _spec

from recforge.experiments.runner import _load_data, prepare_split, run_experiment
from recforge.experiments.spec import SpecError, parse_spec


def _timed_csv(path: Path, seed: int = 0) -> Path:
    """Users join at different times (late joiners are cold at a global time cut-off)."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,rating,ts"]
    for u in range(150):
        start = int(rng.integers(0, 12_000))
        n = int(rng.integers(4, 14))
        items = rng.choice(80, size=n, replace=False)
        for j, i in enumerate(items):
            rows.append(f"u{u},i{i},{int(rng.integers(1, 6))},{start + 400 * j + u}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _timed_spec(csv: Path, split: dict[str, Any], **over: Any) -> dict[str, Any]:
    spec = _spec(csv, seeds=[0], models=[{"model": "TopPopular"}], split=split)
    spec["dataset"] = {"file": str(csv), "rating_col": "rating", "timestamp_col": "ts",
                       "id_type": "str"}
    spec.update(over)
    return spec


def _prepared(spec: dict[str, Any]) -> Any:
    s = parse_spec(spec)
    data, _ = _load_data(s)
    return prepare_split(s, data, 0)


@pytest.mark.parametrize(
    ("method", "params", "mode"),
    [("temporal", {"test_fraction": 0.2}, "temporal"),
     ("leave_one_out", {"mode": "latest"}, "leave_latest"),
     ("leave_one_out", {}, "leave_one_out"),
     ("per_user_holdout", {}, "per_user"),
     ("global_holdout", {}, "global")],
)
def test_validation_follows_the_test_split_by_default(
    tmp_path: Path, method: str, params: dict[str, Any], mode: str
) -> None:
    csv = _timed_csv(tmp_path / "d.csv")
    split = _prepared(_timed_spec(csv, {"method": method, "params": params,
                                        "validation": {"fraction": 0.1}}))
    assert split.params["validation"]["mode"] == mode
    if mode == "temporal":  # validation is the past of test and the future of train
        assert split.train.timestamps.max() < split.validation.timestamps.min()
        assert split.validation.timestamps.max() < split.test.timestamps.min()
    if mode == "leave_latest":
        assert (split.validation.user_counts() <= 1).all()


def test_random_validation_by_name_under_a_time_split(tmp_path: Path) -> None:
    csv = _timed_csv(tmp_path / "d.csv")
    split = _prepared(_timed_spec(csv, {"method": "temporal", "params": {"test_fraction": 0.2},
                                        "validation": {"mode": "per_user", "fraction": 0.1}}))
    assert split.params["validation"]["mode"] == "per_user"
    # a random carve-out reaches back in time: validation overlaps train's time range
    assert split.validation.timestamps.min() < split.train.timestamps.max()


def test_split_making_its_own_validation_users_refuses_a_carve_out() -> None:
    with pytest.raises(SpecError, match="makes its own validation users"):
        parse_spec(_spec(Path("d.csv"), split={
            "method": "held_out_users", "params": {"n_test_users": 5},
            "validation": {"fraction": 0.1}}))


def test_cold_start_users_are_counted_warned_and_kept(tmp_path: Path) -> None:
    csv = _timed_csv(tmp_path / "d.csv")
    spec = parse_spec(_timed_spec(csv, {"method": "temporal", "params": {"test_fraction": 0.2},
                                        "validation": {"fraction": 0.1}}))
    logs: list[str] = []
    out = run_experiment(spec, tmp_path / "out", log=logs.append)
    audit = out.data["splits"]["0"]["audit"]
    cold = audit["stats"]["users_without_train"]["test"]
    test_users = audit["stats"]["parts"]["test"]["users"]
    assert 0 < cold < test_users
    issue = next(i for i in audit["issues"] if i["code"] == "cold_start_users"
                 and "test users" in i["message"])
    assert issue["count"] == cold and issue["severity"] == "warning"
    assert any(f"cold_start_users: {cold} of {test_users} test users" in line for line in logs)
    # kept: they are evaluated (one per-user value each)
    assert out.runs[0]["TopPopular"].users.size == test_users


def test_cold_start_users_dropped_by_name(tmp_path: Path) -> None:
    csv = _timed_csv(tmp_path / "d.csv")
    split_spec = {"method": "temporal", "params": {"test_fraction": 0.2},
                  "validation": {"fraction": 0.1}}
    kept = _prepared(_timed_spec(csv, split_spec))
    spec = parse_spec(_timed_spec(csv, {**split_spec, "filter_test_users": "drop_cold_start"}))
    logs: list[str] = []
    out = run_experiment(spec, tmp_path / "out", log=logs.append)
    has_train = kept.train.user_counts() > 0
    cold_test = int(((kept.test.user_counts() > 0) & ~has_train).sum())
    cold_val = int(((kept.validation.user_counts() > 0) & ~has_train).sum())
    assert cold_test > 0
    described = json.loads((tmp_path / "out" / "data.json").read_text())["splits"]["0"]
    assert described["describe"]["params"]["dropped_cold_start"] == {
        "test_users": cold_test, "validation_users": cold_val}
    assert described["audit"]["stats"]["users_without_train"] == {"test": 0, "validation": 0}
    assert not any(i["code"] == "cold_start_users" for i in described["audit"]["issues"])
    evaluated = out.runs[0]["TopPopular"].users
    assert evaluated.size == int((kept.test.user_counts() > 0).sum()) - cold_test
    assert has_train[evaluated].all()
    assert any("removed" in line and f"{cold_test} test" in line for line in logs)


def test_filters_compact_the_id_spaces_so_coverage_is_not_deflated(tmp_path: Path) -> None:
    csv = _timed_csv(tmp_path / "d.csv")
    split = {"method": "per_user_holdout", "params": {"test_fraction": 0.2}}
    report = {"metrics": ["COVERAGE", "RECALL"], "cutoffs": [10]}
    compacted = run_experiment(parse_spec(_timed_spec(csv, split, report=report, dataset={
        "file": str(csv), "rating_col": "rating", "id_type": "str", "min_rating": 5})),
        None, log=lambda _m: None)
    full = run_experiment(parse_spec(_timed_spec(csv, split, report=report, dataset={
        "file": str(csv), "rating_col": "rating", "id_type": "str", "min_rating": 5,
        "compact": False})), None, log=lambda _m: None)
    rep = compacted.data["filters"][0]
    kept_items = rep["kept_items"]
    assert rep["details"]["shape"][1] == kept_items < 80
    # The same items are recommended either way; only the catalogue they are counted against
    # differs: the compacted one holds the items that exist after the filter.
    recommended = compacted.rows["TopPopular"]["COVERAGE@10"] * kept_items
    assert recommended == pytest.approx(full.rows["TopPopular"]["COVERAGE@10"] * 80)
    assert recommended == pytest.approx(round(recommended))
    assert compacted.rows["TopPopular"]["COVERAGE@10"] > full.rows["TopPopular"]["COVERAGE@10"]
    assert compacted.rows["TopPopular"]["RECALL@10"] == pytest.approx(
        full.rows["TopPopular"]["RECALL@10"])
