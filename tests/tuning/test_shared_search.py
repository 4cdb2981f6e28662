"""tune(shared=...): several processes run one search in a shared SQLite study; together they
run exactly the budget's trials, each once, and the lead returns the whole search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from recforge.data.split import Split
from recforge.tuning import tune
from recforge.tuning.shared import ABANDONED_ATTR, CLAIM_ATTR, SharedStudy

KW = {"metric": "RECALL", "cutoff": 5, "seed": 3, "n_startup_trials": 2, "measure_memory": False}
HERE = Path(__file__).parent

WORKER = """
import json, sys
sys.path.insert(0, {here!r})
from conftest import planted_split
from recforge.tuning import tune
from recforge.tuning.shared import SharedStudy
index, lead, generation, n = int(sys.argv[1]), sys.argv[2] == "lead", sys.argv[3], int(sys.argv[4])
res = tune("ItemKNNCF", planted_split(), n_trials=n, storage={url!r}, study_name="knn",
           shared=SharedStudy(index=index, lead=lead, generation=generation, poll_seconds=0.1,
                              wait_timeout=600), **{kw!r})
print(json.dumps({{"trials": [[t.number, t.worker] for t in res.trials],
                  "best_trial": res.best_trial, "best_validation": res.best_validation,
                  "tested": res.test_result_of_best is not None,
                  "objectives": [t.objective for t in res.trials]}}))
"""


def _start(url: str, index: int, lead: bool, generation: str, n: int) -> subprocess.Popen[str]:
    code = WORKER.format(here=str(HERE), url=url, kw=KW)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    role = "lead" if lead else "help"
    return subprocess.Popen([sys.executable, "-c", code, str(index), role, generation, str(n)],
                            stdout=subprocess.PIPE, text=True, env=env)


def _result(p: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = p.communicate(timeout=900)
    assert p.returncode == 0, out
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_three_processes_run_the_budget_once_and_the_lead_returns_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    procs = [_start(url, i, i == 0, "1", 9) for i in range(3)]
    results = [_result(p) for p in procs]
    lead = results[0]
    numbers = [n for n, _ in lead["trials"]]  # type: ignore[attr-defined]
    assert numbers == list(range(9))  # the whole budget, in number order, none twice
    # Each trial was run by exactly one process: the helpers' own trials and the lead's are
    # disjoint and together the budget.
    ran: dict[int, str] = {}
    for i, r in enumerate(results):
        own = [n for n, w in r["trials"] if w == f"shared worker {i}"]  # type: ignore[attr-defined]
        if i:
            assert len(own) == len(r["trials"])  # type: ignore[arg-type]
        for n in own:
            assert n not in ran, f"trial {n} ran in {ran.get(n)} and worker {i}"
            ran[n] = f"worker {i}"
    assert sorted(ran) == list(range(9))
    assert {w for _, w in lead["trials"]} == {  # type: ignore[attr-defined]
        f"shared worker {i}" for i, r in enumerate(results) if i == 0 or r["trials"]}
    study = optuna.load_study(study_name="knn", storage=url)
    assert len(study.trials) == 9
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
    # The lead's result is the search's: its best is the best stored objective, tested.
    assert lead["best_validation"] == max(lead["objectives"])  # type: ignore[arg-type]
    assert lead["tested"] is True


def test_a_dead_workers_trial_is_abandoned_and_run_again_by_the_next_attempt(
        tmp_path: Path) -> None:  # fmt: skip
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _result(_start(url, 1, False, "1", 2))  # attempt 1: a helper stores trials 0 and 1 ...
    study = optuna.load_study(study_name="knn", storage=url)
    dead = study.ask()  # ... and another one dies while running trial 2
    dead.set_user_attr(CLAIM_ATTR, {"generation": "1", "worker": "shared worker 0"})
    lead = _result(_start(url, 0, True, "2", 5))  # attempt 2
    assert [n for n, _ in lead["trials"]] == [0, 1, 3, 4, 5]  # type: ignore[attr-defined]
    trials = optuna.load_study(study_name="knn", storage=url).trials
    assert len(trials) == 6
    assert trials[2].state == TrialState.FAIL and ABANDONED_ATTR in trials[2].user_attrs
    assert all(t.state == TrialState.COMPLETE for i, t in enumerate(trials) if i != 2)


def test_a_shared_search_in_one_process_is_the_plain_search(split: Split, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    plain = tune("ItemKNNCF", split, n_trials=6, **KW)
    one = tune("ItemKNNCF", split, n_trials=6, storage=url, study_name="knn",
               shared=SharedStudy(), **KW)  # fmt: skip
    assert [t.params for t in one.trials] == [t.params for t in plain.trials]
    assert [t.objective for t in one.trials] == [t.objective for t in plain.trials]
    assert one.best_trial == plain.best_trial and one.best_params == plain.best_params


def test_a_shared_search_needs_a_sqlite_storage_and_one_job(split: Split, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shared search needs storage"):
        tune("ItemKNNCF", split, n_trials=2, shared=SharedStudy(), **KW)
    with pytest.raises(ValueError, match="n_jobs=1"):
        tune("ItemKNNCF", split, n_trials=2, n_jobs=2, storage=f"sqlite:///{tmp_path}/s.db",
             shared=SharedStudy(), **KW)  # fmt: skip
    with pytest.raises(ValueError, match="SQLite storage"):
        tune("ItemKNNCF", split, n_trials=2, storage="postgresql://h/db", study_name="x",
             shared=SharedStudy(), **KW)  # fmt: skip
