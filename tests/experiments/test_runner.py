"""End-to-end runs of experiment specs on a small synthetic dataset written to a CSV file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import parse_spec


def test_run_writes_every_artefact(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv))
    out = tmp_path / "out"
    outcome = run_experiment(spec, out, log=lambda _m: None)

    results = json.loads((out / "results.json").read_text())
    assert set(results["rows"]) == {"TopPopular", "Random", "ItemKNN fixed", "ItemKNN tuned"}
    assert set(results["rows"]["TopPopular"]) >= {"RECALL@5", "NDCG@10", "PRECISION@10"}
    # The community structure is learnable: the KNN beats random clearly.
    rows = results["rows"]
    assert rows["ItemKNN fixed"]["RECALL@10"] > 2 * rows["Random"]["RECALL@10"]
    assert len(results["split_fingerprints"]) == 2
    assert results["data_checksum"] == outcome.data["data_checksum"]
    # Significance: one reference per column, the others carry adjusted p-values.
    col = results["significance"]["RECALL@10"]
    assert sum(1 for v in col.values() if v["reference"]) == 1
    assert all(v["p_adjusted"] is not None for v in col.values() if not v["reference"])
    assert col["Random"]["significant"] is True
    for name in ("spec.resolved.yaml", "environment.json", "data.json", "best_configs.json",
                 "report.md", "report.html"):
        assert (out / name).is_file(), name
    trials = json.loads((out / "trials" / "ItemKNN_tuned__seed0.json").read_text())
    assert len(trials) == 3
    per_user = np.load(out / "per_user" / "ItemKNN_fixed__seed0.npz")
    assert per_user["RECALL@10"].shape == per_user["user"].shape
    assert per_user["RECALL@10"].mean() == pytest.approx(
        outcome.runs[0]["ItemKNN fixed"].summary["RECALL@10"]
    )
    html = (out / "report.html").read_text()
    assert "<svg" in html and "ItemKNN tuned" in html
    data = json.loads((out / "data.json").read_text())
    assert data["splits"]["0"]["audit"]["ok"] is True
    # the final fit's peak memory, in the run record, best_configs.json and the report
    record = json.loads((out / "runs" / "ItemKNN_fixed__seed0.json").read_text())
    memory = record["fit_memory"]
    assert memory == json.loads((out / "best_configs.json").read_text())[
        "ItemKNN fixed"]["0"]["fit_memory"] == outcome.runs[0]["ItemKNN fixed"].fit_memory
    if memory["method"] == "rss":
        assert memory["peak_rss_mb"] >= memory["added_mb"] >= 0 and memory["peak_rss_mb"] > 10
        assert f"(peak RSS {memory['peak_rss_mb']:,.0f} MB)" in (out / "report.md").read_text()
    else:
        assert memory["method"] == "tracemalloc" and memory["added_mb"] >= 0


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, seeds=[3]))
    a = run_experiment(spec, None, log=lambda _m: None)
    b = run_experiment(spec, None, log=lambda _m: None)
    assert a.rows == b.rows
    assert a.data["splits"]["3"]["fingerprint"] == b.data["splits"]["3"]["fingerprint"]


def test_predefined_method_on_raw_file_is_refused(tmp_path: Path) -> None:
    csv = _write_csv(tmp_path / "data.csv")
    spec = parse_spec(_spec(csv, split={"method": "predefined"}))
    with pytest.raises(ValueError, match="not a predefined split"):
        run_experiment(spec, None, log=lambda _m: None)


def test_cli_run_and_typo(tmp_path: Path) -> None:
    import yaml

    csv = _write_csv(tmp_path / "data.csv")
    spec = _spec(csv, seeds=[0])
    spec["models"] = [{"model": "TopPopular"}]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    runner = CliRunner()
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    assert "TopPopular" in json.loads(res.stdout)["rows"]

    spec["models"] = [{"model": "TopPopular", "params": {"topk": 3}}]
    path.write_text(yaml.safe_dump(spec))
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2
    assert "topk" in res.output and "models.0" in res.output
    assert not (tmp_path / "o2").exists()


def test_refit_trains_final_model_on_train_plus_validation(tmp_path: Path) -> None:
    from recforge.evaluation import evaluate_split
    from recforge.experiments.runner import merge_validation, prepare_split
    from recforge.models.baselines import TopPopular

    csv = _write_csv(tmp_path / "data.csv")
    raw = _spec(csv, seeds=[0])
    raw["models"] = [{"model": "TopPopular"}]
    raw["split"]["validation"]["refit"] = True  # type: ignore[index]
    spec = parse_spec(raw)
    outcome = run_experiment(spec, None, log=lambda _m: None)

    from recforge.experiments.runner import _load_data

    data, _ = _load_data(spec)
    split = prepare_split(spec, data, 0)
    merged = merge_validation(split)
    assert merged.validation is None
    assert merged.train.nnz == split.train.nnz + split.validation.nnz
    expected = evaluate_split(TopPopular().fit(merged.train), merged, cutoffs=[5, 10],
                              metrics=["RECALL", "NDCG", "PRECISION"])
    assert outcome.rows["TopPopular"]["RECALL@10"] == pytest.approx(expected.summary["RECALL@10"])
    not_refit = evaluate_split(TopPopular().fit(split.train), split, cutoffs=[10],
                               metrics=["RECALL"])
    assert outcome.rows["TopPopular"]["RECALL@10"] != pytest.approx(
        not_refit.summary["RECALL@10"], abs=1e-9
    )


def test_refit_with_add_back_is_refused() -> None:
    from recforge.experiments.spec import SpecError

    raw = _spec(Path("x.csv"))
    raw["split"]["validation"].update(refit=True, add_back=True)  # type: ignore[index]
    with pytest.raises(SpecError, match="refit and add_back"):
        parse_spec(raw)
