"""`recforge run` with an iterative model: early stopping on the experiment's objective."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_runner import _spec, _write_csv

from recforge.evaluation import evaluate_split
from recforge.evaluation.validation import validation_callback
from recforge.experiments.runner import prepare_split, run_experiment
from recforge.experiments.spec import SpecError, parse_spec
from recforge.models import make_model


def _ials_spec(csv: Path, **entry: Any) -> dict[str, Any]:
    params = {"factors": 4, "iterations": 40, "alpha": 5.0, "use_implicit": False}
    if "search" in entry:
        params = {k: v for k, v in params.items() if k not in entry["search"]["space"]}
    model = {"model": "IALS", "params": params,
             "early_stopping": {"validate_every": 2, "patience": 3}, **entry}
    return _spec(csv, seeds=[0], models=[{"model": "TopPopular"}, model])


def test_iterative_model_stops_early_on_the_objective(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_ials_spec(csv))
    lines: list[str] = []
    outcome = run_experiment(spec, tmp_path / "out", log=lines.append)
    run = outcome.runs[0]["IALS"]
    tr = run.training
    assert tr is not None
    validated = [h for h in tr["history"] if h["validation"] is not None]
    assert [h["epoch"] for h in validated] == list(range(2, tr["epochs_run"] + 1, 2))
    best = max(validated, key=lambda h: h["validation"])
    assert tr["epochs_best"] == best["epoch"] and run.params["iterations"] == best["epoch"]
    # the objective is the spec's optimize metric on the validation part
    split = prepare_split(spec, _load(spec), 0)
    refit = make_model("IALS", **run.params).fit(split.train)
    val = evaluate_split(refit, split, cutoffs=[5], metrics=["RECALL"], on="validation")
    assert val.summary["RECALL@5"] == pytest.approx(tr["best_validation"])
    test = evaluate_split(refit, split, cutoffs=[5, 10], metrics=["RECALL"], on="test")
    assert run.summary["RECALL@10"] == pytest.approx(test.summary["RECALL@10"])
    # one progress line per validation, and the record lands in results.json
    assert sum("IALS epoch" in line and "RECALL@5" in line for line in lines) == len(validated)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["training"]["IALS"]["0"]["epochs_best"] == tr["epochs_best"]
    assert "TopPopular" not in results["training"]


def test_early_stopping_null_trains_fixed_epochs_and_is_refused_for_others(
    tmp_path: Path,
) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_ials_spec(csv, early_stopping=None))
    lines: list[str] = []
    run = run_experiment(spec, None, log=lines.append).runs[0]["IALS"]
    assert run.training is not None and run.training["epochs_run"] == 40
    # no validation lines in a fixed run, so the loop reports every tenth epoch itself
    fixed = [ln.strip() for ln in lines if "(fixed epochs)" in ln]
    assert [ln.split(":")[0] for ln in fixed] == [f"IALS epoch {e}/40" for e in range(4, 41, 4)]
    assert run.training["stop_reason"] == "fixed epochs"
    bad = _spec(csv, models=[{"model": "TopPopular", "early_stopping": {"patience": 2}}])
    with pytest.raises(SpecError, match="TopPopular, which is not iterative"):
        parse_spec(bad)
    with pytest.raises(SpecError, match="patience"):
        parse_spec(_ials_spec(csv, early_stopping={"patience": 0}))


def test_tuned_iterative_model_reports_its_best_epoch(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_ials_spec(
        csv, search={"n_trials": 2, "n_startup_trials": 2,
                     "space": {"factors": {"type": "int", "low": 2, "high": 6}}}))
    run = run_experiment(spec, None, log=lambda _m: None).runs[0]["IALS"]
    assert run.tuning is not None and run.training is not None
    best_trial = max((t for t in run.trials if t["status"] == "ok"), key=lambda t: t["score"])
    assert best_trial["history"] and best_trial["best_epoch"] == run.training["epochs_best"]
    assert run.training["best_validation"] == pytest.approx(best_trial["score"])


def test_validation_callback_matches_the_evaluator(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_ials_spec(csv))
    split = prepare_split(spec, _load(spec), 0)
    model = make_model("ItemKNNCF", top_k=10).fit(split.train)
    cb = validation_callback(split, "ndcg", 10)
    direct = evaluate_split(model, split, cutoffs=[10], metrics=["NDCG"], on="validation")
    assert cb.name == "NDCG@10" and cb(model) == direct.summary["NDCG@10"] and cb.calls == 1
    with pytest.raises(ValueError, match="unknown metric"):
        validation_callback(split, "NDGC", 10)
    with pytest.raises(ValueError, match="cutoff"):
        validation_callback(split, "NDCG", 0)
    with pytest.raises(ValueError, match="validation_negatives"):
        validation_callback(split, "NDCG", 10, protocol="candidates")


def _load(spec: Any) -> Any:
    from recforge.experiments.runner import _load_data

    data, _ = _load_data(spec)
    return data


