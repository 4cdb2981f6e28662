"""Every file in examples/ runs in the suite: the lab specs here (on a tiny search budget),
the platform files in tests/platform (each must be named there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLATFORM_TESTS = Path(__file__).resolve().parent / "platform"
# Files that are not specs but belong to one (data behind a spec, its generator).
COMPANIONS = {"my_interactions.csv": "own-data.yaml", "make_demo_data.py": "own-data.yaml"}


def _lab_specs() -> list[object]:
    params = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        name = (yaml.safe_load(path.read_text()).get("dataset") or {}).get("name")
        marks = [pytest.mark.paper_data(name)] if name else []
        params.append(pytest.param(path, marks=marks, id=path.name))
    return params


@pytest.mark.parametrize("path", _lab_specs())
def test_lab_example_runs(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--max-trials", "2",
                                   "--json"])
    assert res.exit_code == 0, res.output
    spec = yaml.safe_load(path.read_text())
    results = json.loads((out / "results.json").read_text())
    labels = [m.get("label") or m["model"] for m in spec["models"]]
    assert list(results["rows"]) == labels
    metrics = {f"{m}@{k}" for m in spec["report"]["metrics"] for k in spec["report"]["cutoffs"]}
    for label in labels:
        assert metrics <= set(results["rows"][label]), label
    data = json.loads((out / "data.json").read_text())
    split = data["splits"]["0"]
    assert split["audit"]["ok"] is True
    assert split["describe"]["test"]["interactions"] > 0


def test_own_data_example_uses_a_time_split_of_the_shipped_file(tmp_path: Path) -> None:
    out = tmp_path / "own"
    # Run from another folder: the spec's data path resolves against the spec's folder.
    res = CliRunner().invoke(app, ["run", str(EXAMPLES / "own-data.yaml"), "--out", str(out),
                                   "--max-trials", "1"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "data.json").read_text())
    assert [f["name"] for f in data["filters"]][:2] == ["rating_threshold", "k_core"]
    split = data["splits"]["0"]["describe"]
    assert split["method"] == "temporal_split"
    assert 0.19 < split["params"]["realised_test_fraction"] < 0.25


def test_demo_data_generator_writes_the_shipped_file(tmp_path: Path) -> None:
    target = tmp_path / "demo.csv"
    subprocess.run([sys.executable, str(EXAMPLES / "make_demo_data.py"), str(target)],
                   check=True, capture_output=True, timeout=300)
    assert target.read_bytes() == (EXAMPLES / "my_interactions.csv").read_bytes()


def test_every_example_file_is_run_somewhere() -> None:
    lab = {p.name for p in EXAMPLES.glob("*.yaml")}
    for path in sorted(EXAMPLES.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(EXAMPLES)
        if rel.parts[0] == "platform":
            text = "\n".join(p.read_text() for p in PLATFORM_TESTS.glob("test_*.py"))
            assert path.name in text, f"examples/{rel} is run by no test in tests/platform"
        elif path.name not in lab:
            assert COMPANIONS.get(path.name) in lab, (
                f"examples/{rel} is neither a spec run here nor a known companion of one"
            )
