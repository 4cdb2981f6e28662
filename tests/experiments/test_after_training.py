"""After training: the run keeps its best models, `recommend` and `export` give tables with
external ids, `split`/`evaluate` take a data file or a spec like `run` does, and the lab's
API is importable from `recforge` itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from typer.testing import CliRunner

from recforge.cli.main import app


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("run")
    csv = _write_csv(root / "data.csv")
    spec = _spec(Path("data.csv"), seeds=[0])  # relative: resolved against the spec folder
    spec["models"] = [{"model": "TopPopular"},
                      {"model": "ItemKNNCF", "label": "ItemKNN tuned",
                       "search": {"n_trials": 3, "n_startup_trials": 2}}]
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = root / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--keep-models"])
    assert res.exit_code == 0, res.output
    return path, out, csv


def test_kept_model_is_the_one_that_was_evaluated(finished_run: tuple[Path, Path, Path]) -> None:
    from recforge.evaluation import evaluate_split
    from recforge.experiments.runner import _load_data, prepare_split
    from recforge.experiments.spec import load_spec
    from recforge.models import load_model

    spec_path, out, _ = finished_run
    spec = load_spec(spec_path)
    data, _ = _load_data(spec)
    split = prepare_split(spec, data, 0)
    model = load_model(out / "models" / "ItemKNN_tuned__seed0", data=split.train)
    best = json.loads((out / "best_configs.json").read_text())["ItemKNN tuned"]["0"]["params"]
    assert {k: model.get_params()[k] for k in best} == best
    res = evaluate_split(model, split, cutoffs=spec.report.cutoffs, metrics=spec.report.metrics)
    rows = json.loads((out / "results.json").read_text())["rows"]["ItemKNN tuned"]
    assert res.summary == pytest.approx(rows)


def test_recommend_all_users_to_parquet(finished_run: tuple[Path, Path, Path],
                                        tmp_path: Path) -> None:
    from recforge.models import load_model

    _, out, _ = finished_run
    model_dir = out / "models" / "TopPopular__seed0"
    target = tmp_path / "lists.parquet"
    res = CliRunner().invoke(app, ["recommend", str(model_dir), "--all", "--k", "4",
                                   "--out", str(target)])
    assert res.exit_code == 0, res.output
    lists = pd.read_parquet(target)
    model = load_model(model_dir, allow_other_data=True)
    assert set(lists["user"]) == set(model.user_ids_.tolist())
    assert lists.groupby("user")["rank"].max().max() == 4
    assert lists["item"].str.startswith("i").all()
    again = model.recommend(list(model.user_ids_), 4)
    assert lists["item"].tolist() == again.item.tolist()


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--user", "nobody"], "nobody"),
     ([], "exactly one of --user, --users-file or --all"),
     (["--all", "--out", "x.xlsx"], "csv or .parquet")],
)
def test_recommend_refuses_bad_requests(finished_run: tuple[Path, Path, Path],
                                        args: list[str], needle: str) -> None:
    _, out, _ = finished_run
    res = CliRunner().invoke(app, ["recommend", str(out / "models" / "TopPopular__seed0"),
                                   *args])
    assert res.exit_code == 2
    assert needle in " ".join(res.output.split())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_per_user_metrics_with_external_ids(finished_run: tuple[Path, Path, Path],
                                                   tmp_path: Path, fmt: str) -> None:
    _, out, _ = finished_run
    res = CliRunner().invoke(app, ["export", str(out), "--format", fmt, "--out", str(tmp_path),
                                   "--json"])
    assert res.exit_code == 0, res.output
    files = sorted(Path(p).name for p in json.loads(res.stdout)["files"])
    assert files == [f"ItemKNN_tuned__seed0.{fmt}", f"TopPopular__seed0.{fmt}"]
    path = tmp_path / "per_user" / f"ItemKNN_tuned__seed0.{fmt}"
    table = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    arrays = np.load(out / "per_user" / "ItemKNN_tuned__seed0.npz")
    assert table["user"].tolist() == arrays["user_id"].tolist()
    assert table["user"].str.startswith("u").all()
    np.testing.assert_allclose(table["RECALL@10"], arrays["RECALL@10"])
    results = json.loads((out / "results.json").read_text())
    assert table["RECALL@10"].mean() == pytest.approx(
        results["rows"]["ItemKNN tuned"]["RECALL@10"])


def test_split_and_evaluate_take_a_spec_or_a_file(finished_run: tuple[Path, Path, Path],
                                                  tmp_path: Path) -> None:
    spec_path, out, csv = finished_run
    runner = CliRunner()
    fingerprint = json.loads((out / "data.json").read_text())["splits"]["0"]["fingerprint"]
    res = runner.invoke(app, ["split", str(spec_path), "--out", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["split"]["fingerprint"] == fingerprint
    res = runner.invoke(app, ["evaluate", "TopPopular", "--dataset", str(spec_path),
                              "--cutoffs", "10", "--metrics", "recall", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads((out / "results.json").read_text())["rows"]["TopPopular"]
    assert json.loads(res.stdout)["summary"]["RECALL@10"] == pytest.approx(rows["RECALL@10"])

    res = runner.invoke(app, ["split", str(csv), "--method", "per_user_holdout",
                              "-p", "test_fraction=0.25", "--rating-col", "rating",
                              "--id-type", "str", "--out", str(tmp_path / "f"), "--json"])
    assert res.exit_code == 0, res.output
    made = json.loads(res.stdout)["split"]
    assert made["method"] == "per_user_holdout" and made["params"]["test_fraction"] == 0.25
    res = runner.invoke(app, ["evaluate", "TopPopular", "--split-dir", str(tmp_path / "f"),
                              "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["split", str(csv), "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and "--method" in res.output
    res = runner.invoke(app, ["split", str(spec_path), "--method", "temporal",
                              "--out", str(tmp_path / "h")])
    assert res.exit_code == 2 and "its split is used" in " ".join(res.output.split())


def test_public_api_from_recforge_itself() -> None:
    import recforge
    from recforge.data.registry import load_dataset
    from recforge.experiments.runner import run_experiment
    from recforge.models import register

    assert recforge.load_dataset is load_dataset
    assert recforge.run_experiment is run_experiment
    assert recforge.register_model is register
    assert set(recforge.__all__) == {"__version__", *recforge._LAZY}
    for name in recforge.__all__:
        assert getattr(recforge, name) is not None, name
        assert name in dir(recforge)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        recforge.nope  # noqa: B018
    # importing the package imports none of the heavy stacks
    code = ("import sys, recforge; heavy = [m for m in ('numpy', 'scipy', 'torch', 'fastapi', "
            "'optuna') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def test_public_api_walkthrough(tmp_path: Path) -> None:
    import recforge

    data = recforge.read_interactions(_write_csv(tmp_path / "d.csv"), "user", "item",
                                      id_type="str")
    split = recforge.make_split(data, "per_user_holdout", {"test_fraction": 0.2}, seed=0)
    model = recforge.make_model("RP3beta", top_k=20).fit(split.train)
    res = recforge.evaluate_split(model, split, cutoffs=[10])
    top = recforge.make_model("TopPopular").fit(split.train)
    assert res.summary["RECALL@10"] > recforge.evaluate_split(
        top, split, cutoffs=[10]).summary["RECALL@10"]
