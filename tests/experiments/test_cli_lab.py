"""The lab's CLI: data list/info/fetch, split (audited, saved), evaluate (from a saved split)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli.main import app

pytestmark = pytest.mark.paper_data("mcrec-ml-100k", "spectralcf-ml-1m")


def test_data_commands() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["data", "list", "--json"])
    assert res.exit_code == 0, res.output
    names = {d["name"] for d in json.loads(res.stdout)}
    assert {"mcrec-ml-100k", "spectralcf-ml-1m", "cvae-citeulike-a", "cmn-citeulike-a",
            "neumf-ml-1m", "movielens-100k"} <= names
    # the mirror lacks MCRec's downloadable-only metapath files: named, exit 2
    res = runner.invoke(app, ["data", "fetch", "mcrec-ml-100k", "--json"])
    assert res.exit_code == 2 and "not found in the data mirror" in res.output
    res = runner.invoke(app, ["data", "fetch", "spectralcf-ml-1m", "--json"])
    assert res.exit_code == 0, res.output
    files = json.loads(res.stdout)["files"]
    assert all(Path(p).is_file() for p in files.values())
    assert next(iter(files.values())).startswith(os.environ["RECFORGE_CACHE"])
    res = runner.invoke(app, ["data", "info", "mcrec-ml-100k", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["loaded"]["train"]["interactions"] == 80_000
    res = runner.invoke(app, ["data", "info", "no-such-data"])
    assert res.exit_code == 2 and "unknown dataset" in res.output


def test_split_then_evaluate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "split"
    res = runner.invoke(app, [
        "split", "spectralcf-ml-1m", "-o", "part=all", "--method", "per_user_holdout",
        "-p", "test_fraction=0.2", "--validation", "0.1", "--seed", "3", "--out", str(out),
        "--json",
    ])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["audit"]["ok"] is True
    assert payload["split"]["test"]["interactions"] == 45_358
    res = runner.invoke(app, ["evaluate", "TopPopular", "--split-dir", str(out),
                              "--cutoffs", "20", "--metrics", "recall,map", "--json"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert 0.17 < ev["summary"]["RECALL@20"] < 0.20
    assert ev["meta"]["split_fingerprint"] == payload["split"]["fingerprint"]
    res = runner.invoke(app, ["evaluate", "TopPopular", "--split-dir", str(out),
                              "--cutoffs", "ten"])
    assert res.exit_code == 2 and "--cutoffs" in res.output


@pytest.mark.paper_data("movielens-100k")
def test_split_and_evaluate_temporal(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "split"
    res = runner.invoke(app, ["split", "movielens-100k", "--method", "temporal",
                              "-p", "test_fraction=0.2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["split"]["method"] == "temporal_split"
    assert payload["split"]["test"]["interactions"] >= 20_000
    res = runner.invoke(app, ["evaluate", "TopPopular", "--dataset", "movielens-100k",
                              "--method", "temporal", "--split-param", "test_fraction=0.2",
                              "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["meta"]["split_fingerprint"] == payload["split"]["fingerprint"]
    res = runner.invoke(app, ["split", "movielens-100k", "--method", "temporal",
                              "-p", "test_fraction=2", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "params.test_fraction" in res.output
    assert not (tmp_path / "bad").exists()
