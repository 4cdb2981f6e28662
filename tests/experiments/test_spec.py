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


SPLIT = """
name: demo
dataset: {file: data.csv, timestamp_col: ts}
split:
  method: METHOD
  params: PARAMS
models: [{model: TopPopular}]
"""


@pytest.mark.parametrize(
    ("method", "params", "needles"),
    [
        ("temporal", "{}", ["split", "exactly one of cutoff", "test_fraction"]),
        ("temporal", "{test_fraction: 1.5}", ["params.test_fraction", "less than 1", "1.5"]),
        ("per_user_holdout", "{tst_fraction: 0.2}", ["params.tst_fraction", "test_fraction ("]),
        ("per_user_holdout", "{test_fraction: '0.2'}", ["params.test_fraction", "'0.2'"]),
        ("leave_one_out", "{mode: lastest}", ["params.mode", "'random' or 'latest'"]),
        ("leave_one_out", "{min_interactions: 2.0}", ["params.min_interactions", "integer"]),
        ("held_out_users", "{}", ["params.n_test_users", "required"]),
        ("per_user_holdout", "{seed: 3}", ["params.seed", "seeds"]),
        ("predefined", "{test_fraction: 0.2}", ["params.test_fraction", "parameters: none"]),
    ],
)
def test_split_params_are_checked_at_load(method: str, params: str, needles: list[str]) -> None:
    text = SPLIT.replace("METHOD", method).replace("PARAMS", params)
    with pytest.raises(SpecError) as exc:
        parse_spec(text, source="s.yaml")
    msg = str(exc.value)
    assert "s.yaml" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


@pytest.mark.parametrize(
    ("method", "params"),
    [("temporal", "{test_fraction: 0.2}"), ("temporal", "{cutoff: 1000}"),
     ("per_user_holdout", "{}"), ("global_holdout", "{test_fraction: 0.3, sampling: bernoulli}"),
     ("leave_one_out", "{mode: latest}"), ("held_out_users", "{n_test_users: 5}")],
)
def test_good_split_params_load(method: str, params: str) -> None:
    spec = parse_spec(SPLIT.replace("METHOD", method).replace("PARAMS", params))
    assert spec.split.method == method


def test_split_methods_table_matches_the_spec_literal() -> None:
    from typing import get_args

    from recforge.data.split_methods import SPLIT_METHODS
    from recforge.experiments.spec import SplitSpec

    assert set(get_args(SplitSpec.model_fields["method"].annotation)) == set(SPLIT_METHODS)


def test_split_param_defaults_match_the_functions() -> None:
    import inspect

    from recforge.data.split_methods import SPLIT_METHODS

    for m in SPLIT_METHODS.values():
        if m.function is None:
            continue
        sig = inspect.signature(m.function).parameters
        for name, field in m.params.model_fields.items():
            assert name in sig, (m.name, name)
            if not field.is_required():
                assert field.default == sig[name].default, (m.name, name)


def test_relative_data_path_resolves_against_the_spec_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "spec.yaml").write_text(SPLIT.replace("METHOD", "temporal")
                                      .replace("PARAMS", "{test_fraction: 0.2}"))
    spec = load_spec(folder / "spec.yaml")
    assert spec.dataset.file == str(folder / "data.csv")


def test_table_specs_are_valid() -> None:
    from recforge.experiments.paper.reproduce import TABLES, build_table_spec
    from recforge.experiments.paper.setups import SETUPS

    for name in TABLES:
        for fixed in (True, False) if SETUPS[name].from_paper else (False,):
            spec = parse_spec(build_table_spec(name, fixed=fixed, budget=7), source=name)
            searched = [m for m in spec.models if m.search is not None]
            assert bool(searched) is (not fixed)
