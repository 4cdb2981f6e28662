"""The tuning engine: determinism, failures, records, test-on-improvement, early stopping."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from recforge.data.split import Split
from recforge.evaluation import evaluate_split
from recforge.models import make_model
from recforge.models.baselines import TopPopular
from recforge.tuning import (
    WORST_SCORE,
    EarlyStopping,
    default_search_space,
    to_distribution,
    tune,
)

SVD_SPACE = {"num_factors": {"type": "int", "low": 1, "high": 30}}


def _ok(result: Any) -> list[Any]:
    return [t for t in result.trials if t.status == "ok"]


def test_same_seed_same_search(split: Split) -> None:
    a = tune("PureSVD", split, search_space=SVD_SPACE, n_trials=8, seed=5, cutoff=5)
    b = tune("PureSVD", split, search_space=SVD_SPACE, n_trials=8, seed=5, cutoff=5)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best_params == b.best_params and a.best_validation == b.best_validation
    assert len(a.trials) == 8
    # the model's own seed is pinned to the tuning seed
    assert all(t.params["seed"] == 5 for t in a.trials)
    c = tune("PureSVD", split, search_space=SVD_SPACE, n_trials=8, seed=6, cutoff=5)
    assert [t.params for t in c.trials] != [t.params for t in a.trials]


def test_records_best_and_test_on_improvement(split: Split) -> None:
    seen: list[int] = []
    res = tune(
        "PureSVD", split, search_space=SVD_SPACE, n_trials=10, seed=1, metric="ndcg",
        cutoff=5, test_cutoffs=[5, 10], test_metrics=["NDCG", "RECALL"],
        callbacks=[lambda rec: seen.append(rec.number)],
    )
    assert seen == [t.number for t in res.trials] == list(range(10))
    assert res.metric == "NDCG" and res.key == "NDCG@5"
    scores = [t.score for t in res.trials]
    assert res.best_validation == max(scores)
    assert res.trials[res.best_trial].score == res.best_validation
    running = -math.inf
    for t in res.trials:
        assert t.is_new_best == (t.score > running)
        running = max(running, t.score)
        assert (t.test_summary is not None) == t.is_new_best
        if t.cached_from is None:
            assert t.fit_seconds > 0 and t.eval_seconds > 0
            assert t.peak_memory_mb is not None and t.peak_memory_mb >= 0
            assert t.memory_method in ("rss", "tracemalloc")
        else:
            assert res.trials[t.cached_from].params == t.params
    last_best = [t for t in res.trials if t.is_new_best][-1]
    assert res.test_result_of_best is not None
    assert res.test_result_of_best.summary == last_best.test_summary
    assert {"NDCG@5", "NDCG@10", "RECALL@10"} <= set(res.test_result_of_best.summary)
    # the stored test numbers are those of the best configuration fitted on train (no refit)
    model = make_model("PureSVD", **res.best_params).fit(split.train)
    again = evaluate_split(model, split, cutoffs=[5], metrics=["NDCG"], on="test")
    assert again.summary["NDCG@5"] == pytest.approx(res.test_result_of_best.summary["NDCG@5"])
    val = evaluate_split(model, split, cutoffs=[5], metrics=["NDCG"], on="validation")
    assert val.summary["NDCG@5"] == pytest.approx(res.best_validation)
    assert "split.validation" in res.validation_protocol and "no refit" in res.test_protocol
    assert res.split_fingerprint == split.fingerprint()
    json.dumps(res.to_dict(), allow_nan=False)


def test_failing_configuration_scores_worst(split: Split) -> None:
    space = {"memory_budget_mb": {"type": "categorical", "choices": [1e-6, 1000.0]}}
    res = tune("EASE", split, search_space=space, fixed_params={"l2_norm": 10.0}, n_trials=6)
    failed = [t for t in res.trials if t.status == "failed"]
    assert failed and _ok(res)
    for t in failed:
        assert t.params["memory_budget_mb"] == 1e-6
        assert t.score is None and t.objective == WORST_SCORE
        assert t.error is not None and t.error.startswith("MemoryError")
        assert not t.is_new_best
    assert res.best_params is not None and res.best_params["memory_budget_mb"] == 1000.0
    assert res.best_params["l2_norm"] == 10.0


def test_early_stopping_records_best_epoch(split: Split) -> None:
    es = EarlyStopping(validate_every=5, patience=2, max_epochs=60)
    space = {"factors": {"type": "int", "low": 2, "high": 8}}
    res = tune(
        "IALS", split, search_space=space, fixed_params={"alpha": 5.0}, n_trials=3,
        n_startup_trials=3, cutoff=5, early_stopping=es,
    )
    stopped_early = 0
    for t in _ok(res):
        epochs = [e for e, _ in t.validation_curve]
        values = [v for _, v in t.validation_curve]
        assert epochs == list(range(5, t.epochs_run + 1, 5))
        assert t.best_epoch == epochs[int(np.argmax(values))]
        assert t.score == max(values) and t.params["iterations"] == t.best_epoch
        if t.epochs_run < es.max_epochs:
            stopped_early += 1
            assert len(epochs) - 1 - epochs.index(t.best_epoch) == es.patience
    assert stopped_early > 0
    # the best epoch's state was kept: a fresh fit with that epoch count reproduces the score
    model = make_model("IALS", **res.best_params).fit(split.train)
    val = evaluate_split(model, split, cutoffs=[5], metrics=["PRECISION"], on="validation")
    assert val.summary["PRECISION@5"] == pytest.approx(res.best_validation)


def test_parallel_trials_in_worker_processes(split: Split) -> None:
    space = {
        "memory_budget_mb": {"type": "categorical", "choices": [1e-6, 1000.0]},
        "l2_norm": {"type": "float", "low": 1.0, "high": 1e3, "log": True},
    }
    res = tune("EASE", split, search_space=space, n_trials=6, n_jobs=2, protocol="candidates")
    assert len(res.trials) == 6 and res.protocol == "candidates"
    assert {t.number for t in res.trials} == set(range(6))
    assert all(t.worker.startswith("pid ") for t in res.trials)
    assert any(t.status == "failed" and "MemoryError" in (t.error or "") for t in res.trials)
    assert res.best_validation == max(t.score for t in _ok(res))
    assert res.test_result_of_best is not None
    assert "candidate" in res.test_result_of_best.meta["protocol"].lower()


def test_empty_space_runs_once_and_timeout(split: Split) -> None:
    res = tune("TopPopular", split, n_trials=35)
    assert len(res.trials) == 1 and res.best_params == {}
    quick = tune("PureSVD", split, search_space=SVD_SPACE, n_trials=35, timeout=0.0)
    assert len(quick.trials) == 1


def test_bad_arguments_are_named(split: Split) -> None:
    with pytest.raises(ValueError, match="unknown hyper-parameters"):
        tune("PureSVD", split, search_space={"rank": {"type": "int", "low": 1, "high": 3}})
    with pytest.raises(ValueError, match="fixed_params"):
        tune("PureSVD", split, fixed_params={"rank": 3})
    with pytest.raises(ValueError, match="no validation part"):
        tune("PureSVD", Split(train=split.train, test=split.test))
    with pytest.raises(ValueError, match=r"num_factors.*low"):
        tune("PureSVD", split, search_space={"num_factors": {"type": "int", "low": 9, "high": 3}})
    with pytest.raises(ValueError, match=r"'x'.*type"):
        to_distribution("x", {"type": "uniform", "low": 0, "high": 1})
    with pytest.raises(ValueError, match="chosen by early stopping"):
        tune("IALS", split, search_space={"iterations": {"type": "int", "low": 1, "high": 9}},
             early_stopping=EarlyStopping())
    with pytest.raises(ValueError, match="log scale"):
        to_distribution("x", {"type": "float", "low": 0.0, "high": 1.0, "log": True})


class _KNNLike(TopPopular):
    search_space: ClassVar[dict[str, Any]] = {"top_k": {"type": "int", "low": 5, "high": 800}}

    @classmethod
    def space_for(cls, fixed_params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        fixed = dict(fixed_params or {})
        if "similarity" not in fixed:
            return super().space_for(fixed)
        space = {"top_k": {"type": "int", "low": 5, "high": 800},
                 "shrink": {"type": "int", "low": 0, "high": 1000}}
        if fixed["similarity"] == "asymmetric":
            space["asymmetric_alpha"] = {"type": "float", "low": 0.0, "high": 2.0}
        return {k: v for k, v in space.items() if k not in fixed}


def test_default_search_space_per_similarity() -> None:
    assert set(default_search_space(_KNNLike, {"similarity": "asymmetric"})) == {
        "top_k", "shrink", "asymmetric_alpha"}
    assert set(default_search_space(_KNNLike, {"similarity": "cosine", "shrink": 0})) == {"top_k"}
    assert set(default_search_space(_KNNLike)) == {"top_k"}
    assert set(default_search_space(make_model("IALS").__class__)) == {
        "factors", "alpha", "regularization"}
