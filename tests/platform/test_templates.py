"""Templates: typed parameters, substitution, and errors that name the parameter or field."""

from __future__ import annotations

import pytest

from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import SpecError
from recforge.platform.model.templates import Template, parse_template, placeholders, render

TEMPLATE_YAML = """
name: train-ials
owner: recsys
description: distributed IALS training
parameters:
  - {name: workers, type: int, default: 2, min: 1, max: 16}
  - {name: factors, type: int, default: 64, choices: [32, 64, 128]}
  - {name: dataset, type: str}
  - {name: gpu, type: bool, default: false}
  - {name: extra_args, type: list, default: []}
  - {name: lr, type: float, default: 0.01}
body:
  name: ials-${dataset}
  command: [python, -m, train, --factors, "${factors}", "--gpu=${gpu}", "--price=$$5"]
  env: {LR: "${lr}", TAGS: "${dataset}-f${factors}"}
  queue: recsys
  replica_specs:
    - role: master
      resources: {cpu: 1, memory: 1Gi}
    - role: worker
      replicas: ${workers}
      resources: {cpu: 2, memory: 4Gi}
  labels: {template: train-ials}
"""


def test_render_substitutes_typed_values_and_text() -> None:
    tpl = parse_template(TEMPLATE_YAML, source="ials.yaml")
    assert tpl.owner == "recsys"
    assert placeholders(tpl.body) == {"workers", "factors", "dataset", "gpu", "lr"}
    spec = render(tpl, {"dataset": "ml-1m", "workers": "4", "gpu": "true"})
    assert spec.name == "ials-ml-1m"
    assert spec.command == ["python", "-m", "train", "--factors", "64", "--gpu=true", "--price=$5"]
    assert spec.env == {"LR": "0.01", "TAGS": "ml-1m-f64"}
    assert spec.replica_specs[1].replicas == 4  # "${workers}" alone keeps the int type
    assert spec.gang_request()[1] == Resources(cpu=9, memory=17 * 1024, pods=5)
    assert spec.min_available == 5
    # The stored form is a plain spec: rendering again with the same values is identical.
    assert render(tpl, {"dataset": "ml-1m", "workers": 4, "gpu": True}) == spec


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dataset": "x", "worker": 3}, r"unknown parameter\(s\) \['worker'\]"),
        ({}, r"missing required parameter\(s\) \['dataset'\]"),
        ({"dataset": "x", "workers": "many"}, r"parameter 'workers': expected int, got 'many'"),
        ({"dataset": "x", "workers": 2.5}, r"parameter 'workers': expected int"),
        ({"dataset": "x", "workers": 17}, r"parameter 'workers': 17 is above the maximum 16"),
        ({"dataset": "x", "factors": 48}, r"parameter 'factors': 48 is not one of \[32, 64, 128\]"),
        ({"dataset": 5}, r"parameter 'dataset': expected str, got 5"),
        ({"dataset": "x", "gpu": "maybe"}, r"parameter 'gpu': expected bool"),
    ],
)
def test_render_errors_name_the_parameter(values: dict, message: str) -> None:
    tpl = parse_template(TEMPLATE_YAML)
    with pytest.raises(SpecError, match=message):
        render(tpl, values)


def test_rendered_spec_errors_name_the_field() -> None:
    tpl = parse_template(TEMPLATE_YAML)
    with pytest.raises(SpecError, match=r"name: invalid job name 'ials-a b'"):
        render(tpl, {"dataset": "a b"})
    bad = Template(
        name="t",
        parameters=[{"name": "mem", "type": "str"}],  # type: ignore[list-item]
        body={"name": "j", "command": ["x"], "replica_specs": [
            {"role": "master", "resources": {"memory": "${mem}"}}]},
    )  # fmt: skip
    with pytest.raises(
        SpecError, match=r"replica_specs\.0\.resources\.memory: invalid memory '3G'"
    ):
        render(bad, {"mem": "3G"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"body": {"name": "${nope}"}}, r"body: uses undeclared parameter\(s\) \['nope'\]"),
        ({"body": {"name": "a$b"}}, r"body\.name: stray '\$'"),
        ({"body": {"name": "${1x}"}}, r"body\.name: malformed placeholder"),
        ({"parameters": [{"name": "a", "type": "int", "default": "x"}]}, r"parameters\.0\.default"),
        ({"parameters": [{"name": "a", "type": "str", "min": 1}]}, r"parameters\.0\.min"),
        ({"parameters": [{"name": "a"}, {"name": "a"}]}, r"duplicate parameter name"),
        ({"paramters": []}, r"paramters: unknown field 'paramters'"),
    ],
)
def test_bad_templates_are_rejected_naming_the_field(changes: dict, message: str) -> None:
    data = {"name": "t", "body": {"name": "j", "command": ["x"]}, **changes}
    with pytest.raises(SpecError, match=message) as err:
        parse_template(data, source="t.yaml")
    assert "t.yaml" in str(err.value)


def test_list_parameter_replaces_whole_values_only() -> None:
    tpl = parse_template(
        {
            "name": "t",
            "parameters": [{"name": "argv", "type": "list"}],
            "body": {"name": "j", "command": "${argv}"},
        }
    )
    assert render(tpl, {"argv": ["echo", "hi"]}).command == ["echo", "hi"]
    embed = parse_template(
        {
            "name": "t",
            "parameters": [{"name": "argv", "type": "list"}],
            "body": {"name": "j", "command": ["run ${argv}"]},
        }
    )
    with pytest.raises(SpecError, match="'argv' is a list and cannot be embedded"):
        render(embed, {"argv": ["a"]})
