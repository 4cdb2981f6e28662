"""tune(storage=...): finished trials are stored as they finish, and a search continued from
its storage proposes and scores exactly what one uninterrupted search does."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from recforge.data.split import Split
from recforge.tuning import tune
from recforge.tuning.storage import ResumeError

KW = {"metric": "RECALL", "cutoff": 5, "seed": 3, "n_startup_trials": 2, "measure_memory": False}


def _comparable(result: object) -> list[dict[str, object]]:
    drop = {"fit_seconds", "eval_seconds", "test_eval_seconds", "peak_memory_mb", "peak_rss_mb",
            "memory_method", "worker"}
    return [{k: v for k, v in t.to_dict().items() if k not in drop}
            for t in result.trials]  # type: ignore[attr-defined]


def test_continued_search_equals_one_uninterrupted_search(split: Split, tmp_path: Path) -> None:
    whole = tune("ItemKNNCF", split, n_trials=7, **KW)
    url = f"sqlite:///{tmp_path / 's.db'}"
    part = tune("ItemKNNCF", split, n_trials=3, storage=url, study_name="knn", **KW)
    assert len(optuna.load_study(study_name="knn", storage=url).trials) == 3
    assert _comparable(part) == _comparable(whole)[:3]
    cont = tune("ItemKNNCF", split, n_trials=7, storage=url, study_name="knn", **KW)
    assert _comparable(cont) == _comparable(whole)
    assert cont.best_params == whole.best_params
    assert cont.test_result_of_best is not None and whole.test_result_of_best is not None
    assert cont.test_result_of_best.summary == whole.test_result_of_best.summary
    # the three stored trials were replayed, not fitted again
    assert [t.fit_seconds for t in cont.trials[:3]] == [t.fit_seconds for t in part.trials]
    again = tune("ItemKNNCF", split, n_trials=7, storage=url, study_name="knn", **KW)
    assert [t.fit_seconds for t in again.trials] == [t.fit_seconds for t in cont.trials]


def test_a_study_of_another_search_is_refused(split: Split, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    tune("ItemKNNCF", split, n_trials=2, storage=url, study_name="knn", **KW)
    with pytest.raises(ResumeError, match="differs in metric"):
        tune("ItemKNNCF", split, n_trials=2, storage=url, study_name="knn",
             **{**KW, "metric": "NDCG"})
    with pytest.raises(ResumeError, match="fixed_params"):
        tune("ItemKNNCF", split, n_trials=2, storage=url, study_name="knn",
             fixed_params={"top_k": 7}, **KW)
