"""Experiment specs fail before any work starts, naming the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest

from recforge.experiments.spec import SpecError, load_spec, parse_spec

GOOD = """
name: demo
dataset: {name: mcrec-ml-100k}
split:
  method: predefined
  validation: {mode: per_user, fraction: 0.1}
optimize: {metric: precision, cutoff: 10}
report: {metrics: [PRECISION, ndcg], cutoffs: [10, 5, 10]}
models:
  - {model: TopPopular}
  - {model: Random, params: {seed: 3}}
"""


def test_good_spec_normalises_names_and_cutoffs() -> None:
    spec = parse_spec(GOOD)
    assert spec.optimize.metric == "PRECISION"
    assert spec.report.metrics == ["PRECISION", "NDCG"]
    assert spec.report.cutoffs == [5, 10]
    assert [m.display for m in spec.models] == ["TopPopular", "Random"]


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("optimize:", "optimise:", "optimise"),
        ("{model: TopPopular}", "{model: TopPopularr}", "TopPopularr"),
        ("params: {seed: 3}", "params: {sed: 3}", "sed"),
        ("fraction: 0.1", "fraction: 1.5", "split.validation.fraction"),
        ("metric: precision", "metric: precisoin", "PRECISOIN"),
        ("method: predefined", "method: random_split", "split.method"),
    ],
)
def test_typos_fail_naming_the_field(old: str, new: str, needle: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec(GOOD.replace(old, new), source="demo.yaml")
    msg = str(exc.value)
    assert "demo.yaml" in msg
    assert needle in msg


def test_duplicate_labels_rejected() -> None:
    text = GOOD.replace("{model: Random, params: {seed: 3}}", "{model: TopPopular}")
    with pytest.raises(SpecError, match="repeated"):
        parse_spec(text)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid YAML"):
        parse_spec("name: [unclosed", source="x.yaml")
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="mapping"):
        parse_spec("- a\n- b\n")


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_specs_are_valid(path: Path) -> None:
    spec = load_spec(path)
    assert spec.models


def test_table_specs_are_valid() -> None:
    from recforge.experiments.paper.reproduce import TABLES, build_table_spec

    for name in TABLES:
        for fixed in (True, False):
            spec = parse_spec(build_table_spec(name, fixed=fixed, budget=7), source=name)
            searched = [m for m in spec.models if m.search is not None]
            assert bool(searched) is (not fixed)
