"""Neural rows in the reproductions: spec entries, --no-neural, --max-epochs, the conclusion."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.experiments.outcome import ExperimentOutcome, ModelRun
from recforge.experiments.paper import numbers, setups
from recforge.experiments.paper.conclusion import check_conclusion
from recforge.experiments.paper.reproduce import build_table_spec, reproduce_table
from recforge.experiments.paper.setups import TableSetup
from recforge.experiments.spec import parse_spec


def _entry(spec: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((m for m in spec["models"] if m["label"] == label), None)


def test_a_neural_row_is_a_model_entry_with_paper_settings_and_early_stopping() -> None:
    spec = build_table_spec("multvae-ml1m", fixed=False, budget=3)
    vae = _entry(spec, "Mult-VAE")
    assert vae is not None and vae["model"] == "MultVAE" and "search" not in vae
    assert vae["early_stopping"] == {}  # the paper's defaults: every 5 epochs, patience 5
    assert _entry(spec, "EASE")["search"]["n_trials"] == 3  # type: ignore[index]
    parse_spec(spec)  # a valid experiment spec
    capped = build_table_spec("multvae-ml1m", fixed=False, budget=3, max_epochs=4)
    es = _entry(capped, "Mult-VAE")["early_stopping"]  # type: ignore[index]
    assert es["max_epochs"] == 4 and es["min_epochs"] == 0
    assert capped["name"].endswith("-cap4")
    without = build_table_spec("multvae-ml1m", fixed=False, budget=3, neural=False)
    assert _entry(without, "Mult-VAE") is None and without["name"].endswith("-no-neural")
    with pytest.raises(ValueError, match="not a paper table"):
        build_table_spec("multvae-ml1m", fixed=True)
    with pytest.raises(ValueError, match="max_epochs"):
        build_table_spec("multvae-ml1m", fixed=False, max_epochs=0)
    only = build_table_spec("multvae-ml1m", fixed=False, models=["Mult-VAE", "EASE"])
    assert [m["label"] for m in only["models"]] == ["EASE", "Mult-VAE"]
    with pytest.raises(ValueError, match=r"no row 'Mult VAE'; its rows: TopPop, .*Mult-VAE"):
        build_table_spec("multvae-ml1m", fixed=False, models=["Mult VAE"])  # a typo: refused


def test_epoch_cap_of_a_fixed_run_and_of_a_long_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    base = setups.SETUPS["multvae-ml1m"]
    block = TableSetup(**{**base.__dict__, "early_stopping": {"Mult-VAE": None}})
    monkeypatch.setitem(setups.SETUPS, "multvae-ml1m", block)
    fixed_run = _entry(build_table_spec("multvae-ml1m", fixed=False, max_epochs=7), "Mult-VAE")
    assert fixed_run is not None and fixed_run["early_stopping"] is None
    assert fixed_run["params"]["epochs"] == 7  # the epoch hyper-parameter itself is capped
    slow = TableSetup(**{**base.__dict__,
                         "early_stopping": {"Mult-VAE": {"patience": 20, "min_epochs": 400}}})
    monkeypatch.setitem(setups.SETUPS, "multvae-ml1m", slow)
    es = _entry(build_table_spec("multvae-ml1m", fixed=False, max_epochs=10), "Mult-VAE")
    assert es is not None
    assert es["early_stopping"] == {"validate_every": 5, "patience": 20, "min_epochs": 10,
                                    "max_epochs": 10, "monitor": "validation"}


def _outcome(per_user: dict[str, dict[str, np.ndarray]]) -> ExperimentOutcome:
    spec = parse_spec({
        "name": "t", "dataset": {"name": "mcrec-ml-100k"},
        "models": [{"model": "TopPopular", "label": "TopPop"},
                   {"model": "ItemKNNCF", "label": "ItemKNN CF"},
                   {"model": "MultVAE", "label": "Mult-VAE"}],
    })
    users = np.arange(40)
    runs = {
        label: ModelRun(label=label, model=label, params={},
                        summary={k: float(v.mean()) for k, v in cols.items()},
                        per_user=cols, users=users, fit_seconds=0.0, eval_seconds=0.0)
        for label, cols in per_user.items()
    }
    rows = {label: dict(r.summary) for label, r in runs.items()}
    return ExperimentOutcome(spec=spec, rows=rows, spread={k: {} for k in rows},
                             runs={0: runs}, data={})


def test_conclusion_compares_the_best_baseline_with_a_paired_test() -> None:
    rng = np.random.default_rng(0)
    strong = (rng.random(40) < 0.8).astype(float)
    weak = np.zeros(40)
    outcome = _outcome({
        "TopPop": {"HR@5": weak, "HR@10": weak + 0.1},
        "ItemKNN CF": {"HR@5": strong, "HR@10": strong},
        "Mult-VAE": {"HR@5": weak + 0.05, "HR@10": strong},
    })
    paper = {"TopPop": {"HR@5": 0.1, "HR@10": 0.2}, "ItemKNN CF": {"HR@5": 0.8, "HR@10": 0.9}}
    paper_neural = {"Mult-VAE": {"HR@5": 0.7, "HR@10": 0.95}}
    verdict = check_conclusion(outcome, ["Mult-VAE"], paper, paper_neural)["Mult-VAE"]
    hr5, hr10 = verdict["cells"]
    assert hr5["metric"] == "HR@5" and hr5["best_baseline"] == "ItemKNN CF"
    assert hr5["baseline_beats_neural"] and hr5["significant"] and hr5["p"] < 1e-4
    assert hr5["paper_baseline_beats_neural"] is True and hr5["holds"] is True
    # equal per-user values: no winner, p = 1; the paper had the neural model ahead
    assert not hr10["baseline_beats_neural"] and hr10["p"] == 1.0 and not hr10["significant"]
    assert hr10["paper_baseline_beats_neural"] is False and hr10["holds"] is True
    s = verdict["summary"]
    assert (s["cells"], s["baseline_wins"], s["baseline_wins_significant"], s["holds"]) == (
        2, 1, 1, 2)
    assert "best baseline beats Mult-VAE in 1/2 cells" in s["text"]
    no_paper = check_conclusion(outcome, ["Mult-VAE"], {}, {})["Mult-VAE"]
    assert no_paper["cells"][0]["holds"] is None and no_paper["summary"]["paper_cells"] == 0


def test_conclusion_without_a_baseline_row_says_it_was_not_checked() -> None:
    only = _outcome({"Mult-VAE": {"HR@5": np.ones(40)}})
    verdict = check_conclusion(only, ["Mult-VAE"], {}, {})["Mult-VAE"]
    assert verdict["cells"] == [] and verdict["summary"]["cells"] == 0
    assert verdict["summary"]["text"].startswith("not checked for Mult-VAE: no baseline row")


def _neural_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small block "tneural" on ML-100k: TopPop, ItemKNN CF and a tiny Mult-VAE row."""
    if not os.environ.get("CI"):  # CI installs torch: there a missing torch is an error
        pytest.importorskip("torch", reason="needs the recforge[torch] extra")
    block = TableSetup(
        dataset="mcrec-ml-100k",
        split={"method": "predefined",  # Table 3's: validation for stopping, then a refit
               "validation": {"mode": "per_user", "fraction": 0.1, "refit": True}},
        optimize=("PRECISION", 10), metrics=("PRECISION", "RECALL"), cutoffs=(10,),
        labels=("TopPop", "ItemKNN CF"), neural_labels=("Mult-VAE",),
        early_stopping={"Mult-VAE": {"validate_every": 1, "patience": 1}},
    )
    monkeypatch.setitem(setups.SETUPS, "tneural", block)
    monkeypatch.setitem(numbers.PAPER_TABLES, "tneural", {
        "TopPop": {"PRECISION@10": 0.1907}, "ItemKNN CF": {"PRECISION@10": 0.3327}})
    monkeypatch.setitem(numbers.REFERENCE_ROWS, "tneural", {"Mult-VAE": {"PRECISION@10": 0.35}})
    monkeypatch.setitem(numbers.PAPER_PARAMS, "tneural", {
        "ItemKNN CF": dict(numbers.PAPER_PARAMS["table3"]["ItemKNN CF"]),
        "Mult-VAE": {"hidden_dims": [64], "latent_dim": 16, "batch_size": 100, "n_threads": 1},
    })


@pytest.mark.paper_data("mcrec-ml-100k")
def test_a_table_with_a_neural_row_end_to_end(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    _neural_block(monkeypatch)
    lines: list[str] = []
    payload = reproduce_table("tneural", fixed=True, max_epochs=2, log=lines.append,
                              out_dir=tmp_path / "out")
    assert payload["neural"] == {"enabled": True, "rows": ["Mult-VAE"], "max_epochs": 2,
                                 "changed_params": {}, "note": lines[0],
                                 "all_ok": payload["neural"]["all_ok"]}
    assert "capped at 2 epochs" in lines[0]
    kinds = {c["model"]: c["kind"] for c in payload["checks"]}
    assert kinds == {"TopPop": "baseline", "ItemKNN CF": "baseline", "Mult-VAE": "neural"}
    assert payload["all_ok"] is True  # the baselines reproduce; the neural row is reported
    assert sum("Mult-VAE epoch" in line for line in lines) == 2  # a line per validation
    cell = payload["conclusion"]["Mult-VAE"]["cells"][0]
    assert cell["best_baseline"] == "ItemKNN CF" and cell["paper_baseline_beats_neural"] is False
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["neural"]["max_epochs"] == 2
    training = results["training"]["Mult-VAE"]["0"]
    assert training["epochs_run"] == 2 and training["refit_epochs"] == training["epochs_best"]
    # the command line: --no-neural drops the row, the cap is printed
    from recforge.cli.main import app

    res = CliRunner().invoke(app, ["reproduce", "tneural", "--fixed", "--max-epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "capped at 1 epochs" in res.output and "conclusion tneural (Mult-VAE)" in res.output
    res = CliRunner().invoke(app, ["reproduce", "tneural", "--fixed", "--no-neural", "--json",
                                   "--models", "TopPop"])
    assert res.exit_code == 0, res.output
    assert {c["model"] for c in json.loads(res.stdout)["checks"]} == {"TopPop"}


@pytest.mark.paper_data("mcrec-ml-100k")
def test_a_failed_reproduction_resumes_from_its_out_folder(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    _neural_block(monkeypatch)
    from recforge.models.knn import ItemKNNCF
    from recforge.models.torch.multvae import MultVAE

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("planted failure")

    out = tmp_path / "out"
    with monkeypatch.context() as m:  # the neural row (last) fails after both baselines ran
        m.setattr(MultVAE, "_init_training", broken)
        with pytest.raises(RuntimeError, match="planted failure"):
            reproduce_table("tneural", fixed=True, max_epochs=1, out_dir=out)
    progress = json.loads((out / "progress.json").read_text())
    assert progress["state"] == "failed" and len(progress["done"]) == 2
    lines: list[str] = []
    with monkeypatch.context() as m:  # the finished baselines are kept, not fitted again
        m.setattr(ItemKNNCF, "_fit", broken)
        payload = reproduce_table("tneural", fixed=True, max_epochs=1, out_dir=out,
                                  log=lines.append)
    assert any(line.startswith("resuming ") and "2 model run(s)" in line for line in lines)
    assert sum("finished before, kept" in line for line in lines) == 2
    assert sum("Mult-VAE epoch" in line for line in lines) == 1
    fresh = reproduce_table("tneural", fixed=True, max_epochs=1)  # same seeds, no folder
    assert payload["rows"] == fresh["rows"]
    assert payload["conclusion"] == fresh["conclusion"]  # kept per-user values feed the test
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == fresh["rows"] and results["neural"]["max_epochs"] == 1
    assert json.loads((out / "progress.json").read_text())["state"] == "finished"
    with pytest.raises(ValueError, match="different spec"):  # another cap = another spec
        reproduce_table("tneural", fixed=True, max_epochs=2, out_dir=out)
