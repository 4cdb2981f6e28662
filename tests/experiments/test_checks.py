"""Everything is checked before work: bad values, spaces and YAML fail at load; a search whose
every trial fails fails the run with the first traceback; partial failures are warned about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data.interactions import Interactions
from recforge.experiments.spec import SpecError, parse_spec
from recforge.models import MODELS
from recforge.models.baselines import TopPopular
from recforge.models.params import Param


class Fragile(TopPopular):
    """TopPopular that fails to fit when ``level >= fail_from`` (a real exception at fit)."""

    name = "Fragile"
    search_space: ClassVar[dict[str, Any]] = {"level": {"type": "int", "low": 0, "high": 9}}
    param_rules: ClassVar[dict[str, Param]] = {"level": Param(ge=0), "fail_from": Param(ge=0)}

    def __init__(self, level: int = 0, fail_from: int = 100) -> None:
        self.level = level
        self.fail_from = fail_from

    def _fit(self, train: Interactions) -> None:
        if self.level >= self.fail_from:
            raise RuntimeError(f"level {self.level} is too high")
        super()._fit(train)


@pytest.fixture
def fragile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "Fragile", Fragile)


def _run(tmp_path: Path, spec: dict[str, Any], *args: str) -> Any:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), *args])


BAD_MODELS = [
    ({"model": "ItemKNNCF", "params": {"feature_weighting": "bm25"}},
     ["models.0", "params.feature_weighting='bm25'", "'BM25'"]),
    ({"model": "ItemKNNCF", "params": {"top_k": 690.0}},
     ["params.top_k=690.0", "valid integer", "int >= 1"]),
    ({"model": "RP3beta", "params": {"alpha": -1.0}}, ["params.alpha=-1.0", ">= 0"]),
    ({"model": "EASE", "params": {"l2_norm": "500"}}, ["params.l2_norm='500'", "valid number"]),
    ({"model": "ItemKNNCF", "search": {"space": {"top_k": {"type": "float", "low": 5,
                                                           "high": 50}}}},
     ["search.space.top_k", "a float range", "int >= 1"]),
    ({"model": "ItemKNNCF", "search": {"space": {"similarity": {
        "type": "categorical", "choices": ["cosine", "cosin"]}}}},
     ["search.space.similarity", "'cosin'"]),
    ({"model": "P3alpha", "search": {"space": {"top_k": {"type": "int", "low": 0,
                                                         "high": 10}}}},
     ["search.space.top_k", "0:", "greater than or equal to 1"]),
    ({"model": "P3alpha", "params": {"top_k": 5},
      "search": {"space": {"top_k": {"type": "int", "low": 5, "high": 10}}}},
     ["['top_k'] are both fixed in params and searched"]),
    ({"model": "IALS", "search": {"space": {"iterations": {"type": "int", "low": 1,
                                                           "high": 9}}}},
     ["search.space.iterations", "early stopping"]),
    ({"model": "IALS", "params": {"num_threads": 2}}, ["'num_threads' is now 'n_threads'"]),
]


@pytest.mark.parametrize(("entry", "needles"), BAD_MODELS)
def test_bad_model_values_are_refused_before_any_model_runs(
    tmp_path: Path, entry: dict[str, Any], needles: list[str]
) -> None:
    spec = _spec(_write_csv(tmp_path / "data.csv"), seeds=[0])
    # A good first model: it must not run (nothing is written) because the second is bad.
    spec["models"] = [{"model": "TopPopular"}, entry]
    res = _run(tmp_path, spec)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    for needle in needles:
        assert needle.replace("models.0", "models.1") in text, (needle, text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"dataset": {"name": "no-such-data"}}, "unknown dataset 'no-such-data'"),
        ({"dataset": {"name": "mcrec-ml-100k", "options": {"colour": 1}}},
         "has no option(s) ['colour']"),
        ({"split": {"method": "per_user_holdout", "params": {"test_fraction": 0}}},
         "params.test_fraction"),
    ],
)
def test_bad_data_and_split_are_refused(tmp_path: Path, change: dict[str, Any],
                                        needle: str) -> None:
    spec = _spec(Path("data.csv"))
    spec.update(change)
    with pytest.raises(SpecError) as exc:
        parse_spec(spec, source="s.yaml")
    assert needle in str(exc.value)


def test_duplicate_yaml_keys_are_refused() -> None:
    text = """
name: dup
dataset: {file: data.csv}
split: {method: per_user_holdout}
models:
  - model: ItemKNNCF
    search: {n_trials: 35}
    search: {n_trials: 3}
"""
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="dup.yaml")
    msg = str(exc.value)
    assert "dup.yaml" in msg and "duplicate key 'search'" in msg
    assert "line 8" in msg and "first at line 7" in msg


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    spec = _spec(_write_csv(tmp_path / "data.csv"))
    res = _run(tmp_path, spec, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "per_user_holdout(test_fraction=0.2, rounding='round'), seeds [0, 1]" in res.stdout
    assert "4. ItemKNN tuned [ItemKNNCF] search 3 trial(s)" in res.stdout
    # 2 seeds x (1 + 1 + 1 + (3 trials + final fit)) = 14 fits
    assert "14 fits" in res.stdout
    assert not (tmp_path / "out").exists()
    res = _run(tmp_path, spec, "--dry-run", "--json")
    plan = json.loads(res.stdout)
    assert plan["work"] == {"fits": 14, "evaluations": 2 * (1 + 1 + 1 + 7), "model_runs": 8}
    assert plan["data"]["bytes"] == (tmp_path / "data.csv").stat().st_size


def test_dry_run_reports_a_missing_data_file(tmp_path: Path) -> None:
    res = _run(tmp_path, _spec(tmp_path / "absent.csv"), "--dry-run")
    assert res.exit_code == 2
    assert "PROBLEM" in res.stdout and "absent.csv does not exist" in res.output


def test_search_without_a_successful_trial_fails_with_the_first_traceback(
    tmp_path: Path, fragile: None
) -> None:
    spec = _spec(_write_csv(tmp_path / "data.csv"), seeds=[0])
    spec["models"] = [{"model": "TopPopular"},
                      {"model": "Fragile", "params": {"fail_from": 0}, "search": {"n_trials": 3}}]
    res = _run(tmp_path, spec)
    assert res.exit_code == 1, res.output
    assert "no trial of the search succeeded (3 of 3 failed)" in res.output
    assert "Traceback" in res.output and "RuntimeError: level" in res.output
    assert not (tmp_path / "out" / "results.json").exists()


def test_partial_failures_are_warned_in_log_and_report(tmp_path: Path, fragile: None) -> None:
    spec = _spec(_write_csv(tmp_path / "data.csv"), seeds=[0])
    spec["models"] = [{"model": "Fragile", "params": {"fail_from": 5},
                       "search": {"n_trials": 8, "n_startup_trials": 8}}]
    res = _run(tmp_path, spec)
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    trials = json.loads((out / "trials" / "Fragile__seed0.json").read_text())
    failed = [t for t in trials if t["params"]["level"] >= 5]
    assert 0 < len(failed) < len(trials)
    assert all(t["status"] == "failed" for t in failed)
    warning = f"{len(failed)} of {len(trials)} trials failed"
    assert warning in " ".join(res.output.split())
    results = json.loads((out / "results.json").read_text())
    assert len(results["warnings"]) == 1 and warning in results["warnings"][0]
    assert "## Warnings" in (out / "report.md").read_text()
    assert results["rows"]["Fragile"]  # the run still reports the best working configuration
