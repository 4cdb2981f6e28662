"""Tuning protocol presets (recforge.tuning.protocols): validated data, what a spec takes from
them, and a run under the journal version's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from pydantic import ValidationError

from recforge.experiments.spec import SpecError, parse_spec
from recforge.tuning.protocols import PRESETS, ProtocolPreset, get_preset


def test_tois2021_is_the_journal_protocol() -> None:
    p = get_preset("tois2021")
    assert (p.n_trials, p.n_startup_trials, p.refit) == (50, 15, True)
    knn = p.space_for("ItemKNNCF", {"similarity": "cosine"})
    assert (knn["top_k"]["low"], knn["top_k"]["high"]) == (5, 1000)
    assert knn["shrink"] == {"type": "int", "low": 0, "high": 1000}
    for model in ("UserKNNCF", "P3alpha", "RP3beta", "SLIMElasticNet"):
        assert p.space_for(model)["top_k"]["high"] == 1000, model
    assert p.space_for("PureSVD")["num_factors"] == {"type": "int", "low": 1, "high": 350}
    assert p.space_for("NMF")["num_factors"]["high"] == 350
    ease = p.space_for("EASE")["l2_norm"]
    assert (ease["low"], ease["high"], ease["log"]) == (1.0, 1e7, True)
    ials = p.space_for("IALS", {"confidence": "log"})
    assert (ials["factors"]["low"], ials["factors"]["high"]) == (1, 200)
    assert (ials["alpha"]["low"], ials["alpha"]["high"]) == (1e-3, 50.0)
    assert (ials["epsilon"]["low"], ials["epsilon"]["high"]) == (1e-3, 10.0)
    # a fixed parameter is not searched, whatever the preset widens
    assert "top_k" not in p.space_for("ItemKNNCF", {"top_k": 50})
    # the 2019 preset leaves the declared spaces alone
    old = get_preset("recsys2019")
    assert (old.n_trials, old.n_startup_trials, old.refit) == (35, 5, False)
    assert old.space_for("ItemKNNCF")["top_k"]["high"] == 800
    assert old.space_for("PureSVD")["num_factors"]["high"] == 250


def test_presets_are_validated_data() -> None:
    base = get_preset("tois2021").model_dump()
    with pytest.raises(ValidationError, match="unknown model 'ItemKNN'"):
        ProtocolPreset(**{**base, "widen": {"ItemKNN": {"top_k": {"high": 5}}}})
    with pytest.raises(ValidationError, match=r"PureSVD does not search \['top_k'\]"):
        ProtocolPreset(**{**base, "widen": {"PureSVD": {"top_k": {"high": 5}}}})
    with pytest.raises(ValidationError, match="n_startup_trials 60 > n_trials 50"):
        ProtocolPreset(**{**base, "n_startup_trials": 60})
    with pytest.raises(ValidationError, match="extra"):
        ProtocolPreset(**{**base, "trials": 3})
    with pytest.raises(ValueError, match="unknown protocol preset 'tois'; known: recsys2019"):
        get_preset("tois")
    assert set(PRESETS) == {"recsys2019", "tois2021"}


def test_spec_takes_what_it_leaves_out_from_the_preset(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    models = [{"model": "PureSVD", "search": {}},
              {"model": "EASE", "search": {"n_trials": 4}}]
    spec = parse_spec(_spec(csv, preset="tois2021", models=models))
    assert spec.preset == "tois2021"
    assert spec.split.validation is not None and spec.split.validation.refit is True
    assert (spec.models[0].search.n_trials, spec.models[0].search.n_startup_trials) == (50, 15)
    assert spec.models[1].search.n_trials == 4  # the spec's own value wins
    # the spec's own refit wins too
    raw = _spec(csv, preset="tois2021", models=models)
    raw["split"]["validation"]["refit"] = False  # type: ignore[index]
    assert parse_spec(raw).split.validation.refit is False  # type: ignore[union-attr]
    # without a preset: the RecSys'19 defaults, and the same spec as before presets existed
    plain = parse_spec(_spec(csv, models=models))
    assert plain.preset == "recsys2019"
    assert (plain.models[0].search.n_trials, plain.models[0].search.n_startup_trials) == (35, 5)
    assert plain.split.validation.refit is False  # type: ignore[union-attr]


def test_spec_refuses_a_bad_preset_before_any_work(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    with pytest.raises(SpecError, match="unknown protocol preset 'tois2022'"):
        parse_spec(_spec(csv, preset="tois2022"))
    raw = _spec(csv, preset="tois2021")
    raw["split"]["validation"]["add_back"] = True  # type: ignore[index]
    with pytest.raises(SpecError, match=r"preset tois2021 refits .* add_back"):
        parse_spec(raw)


def test_a_tois2021_run_searches_the_wide_space_and_refits(tmp_path: Path) -> None:
    from recforge.evaluation import evaluate_split
    from recforge.experiments.runner import _load_data, merge_validation, prepare_split
    from recforge.models import make_model

    csv = _write_csv(tmp_path / "data.csv")
    raw = _spec(csv, preset="tois2021", seeds=[0], models=[
        {"model": "ItemKNNCF", "label": "ItemKNN", "params": {"similarity": "cosine"},
         "search": {"n_trials": 3}}])
    spec = parse_spec(raw)
    out = tmp_path / "out"
    from recforge.experiments.runner import run_experiment

    outcome = run_experiment(spec, out, log=lambda _m: None)
    results = json.loads((out / "results.json").read_text())
    assert results["protocol_preset"]["name"] == "tois2021"
    assert results["protocol_preset"]["n_trials"] == 50
    assert "tuning protocol preset: tois2021" in (out / "report.md").read_text()
    assert "tois2021" in (out / "report.html").read_text()
    run = outcome.runs[0]["ItemKNN"]
    assert run.tuning is not None and run.tuning["search_space"]["top_k"]["high"] == 1000
    assert len(run.trials) == 3
    # the test numbers are those of the best configuration refitted on train + validation
    data, _ = _load_data(spec)
    split = prepare_split(spec, data, 0)
    merged = merge_validation(split)
    best = {k: v for k, v in run.params.items()}
    refit = evaluate_split(make_model("ItemKNNCF", **best).fit(merged.train), merged,
                           cutoffs=[10], metrics=["RECALL"])
    assert run.summary["RECALL@10"] == pytest.approx(refit.summary["RECALL@10"])
    unrefit = evaluate_split(make_model("ItemKNNCF", **best).fit(split.train), split,
                             cutoffs=[10], metrics=["RECALL"])
    assert run.summary["RECALL@10"] != pytest.approx(unrefit.summary["RECALL@10"], abs=1e-9)


def test_a_tois2021_iterative_model_is_refitted_for_its_early_stopped_epochs(
    tmp_path: Path,
) -> None:
    from recforge.experiments.runner import run_experiment

    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, preset="tois2021", seeds=[0], models=[
        {"model": "IALS", "params": {"factors": 8, "iterations": 30, "n_threads": 1},
         "early_stopping": {"validate_every": 2, "patience": 2}}]))
    run = run_experiment(spec, None, log=lambda _m: None).runs[0]["IALS"]
    assert run.training is not None
    best = run.training["epochs_best"]
    assert run.params["iterations"] == best
    assert run.training["refit_epochs"] == best


def test_old_out_folders_resume_under_the_default_preset(tmp_path: Path) -> None:
    """A --out folder written before presets existed (no ``preset`` key) is the default's."""
    import yaml

    from recforge.experiments.artifacts import SPEC_FILE, RunDir

    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, seeds=[0], models=[{"model": "TopPopular"}]))
    out = tmp_path / "out"
    RunDir.open(out, spec)
    doc = yaml.safe_load((out / SPEC_FILE).read_text())
    del doc["preset"]
    (out / SPEC_FILE).write_text(yaml.safe_dump(doc))
    assert RunDir.open(out, spec).resumed
    other = parse_spec(_spec(csv, seeds=[0], preset="tois2021",
                             models=[{"model": "TopPopular"}]))
    with pytest.raises(Exception, match="preset"):
        RunDir.open(out, other)


def test_reproduce_builds_the_journal_table_under_tois2021() -> None:
    from recforge.experiments.paper.reproduce import build_table_spec

    raw = build_table_spec("table7", fixed=False, preset="tois2021", neural=False)
    labels = [m["label"] for m in raw["models"]]
    assert labels == ["Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta",
                      "PureSVD", "SLIM ElasticNet", "EASE", "iALS", "NMF", "MF BPR", "SLIM BPR",
                      "FunkSVD"]
    assert raw["name"] == "table7-search50-tois2021-no-neural"
    spec = parse_spec(raw)
    assert spec.preset == "tois2021" and spec.split.validation.refit is True  # type: ignore[union-attr]
    searched = [m.search for m in spec.models if m.search is not None]
    assert len(searched) == 12
    assert all((s.n_trials, s.n_startup_trials) == (50, 15) for s in searched)
    small = build_table_spec("table7", fixed=False, preset="tois2021", budget=2,
                             models=["iALS"], neural=False)
    assert [(m["label"], m["search"]) for m in small["models"]] == [
        ("iALS", {"n_trials": 2, "n_startup_trials": 2})]
    # the neural row stays last
    with_neural = build_table_spec("table7", fixed=False, preset="tois2021")
    assert with_neural["models"][-1]["label"] == "SpectralCF"
    # the default preset builds what it did before presets existed
    old = build_table_spec("table7", fixed=False, neural=False)
    assert old["name"] == "table7-search35-no-neural" and old["preset"] == "recsys2019"
    assert [m["label"] for m in old["models"]] == labels[:7]
    with pytest.raises(ValueError, match="preset tois2021 is a search protocol"):
        build_table_spec("table7", fixed=True, preset="tois2021")


def test_cli_reproduce_refuses_an_unknown_protocol() -> None:
    from typer.testing import CliRunner

    from recforge.cli.main import app

    res = CliRunner().invoke(app, ["reproduce", "table7", "--protocol", "tois2020"])
    assert res.exit_code != 0
    assert "--protocol 'tois2020'" in res.output and "tois2021" in res.output


def test_tois2021_scores_userknn_with_the_unweighted_matrix_unless_told(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    models = [{"model": "UserKNNCF", "label": "a", "search": {"n_trials": 2}},
              {"model": "UserKNNCF", "label": "b", "params": {"score_with": "weighted"}},
              {"model": "ItemKNNCF", "label": "c"}]
    spec = parse_spec(_spec(csv, preset="tois2021", models=models))
    assert spec.models[0].params == {"score_with": "unweighted"}
    assert spec.models[1].params == {"score_with": "weighted"}
    assert spec.models[2].params == {}
    assert parse_spec(_spec(csv, models=models)).models[0].params == {}
