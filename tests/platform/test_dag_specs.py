"""DAG specs and the DAG run/node state machines (pure data, no service)."""

from __future__ import annotations

from typing import Any

import pytest

from recforge.platform.model.dag import fill_placeholders, parse_dag_spec
from recforge.platform.model.dag_states import (
    NODE_MACHINE,
    RUN_MACHINE,
    InvalidMove,
    NodeState,
    RunState,
)
from recforge.platform.model.specs import SpecError


def node(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "job": {"command": ["true"], "replica_specs": [{"role": "worker"}]}, **kw}


def dag(*nodes: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"name": "d", "queue": "q", "nodes": list(nodes), **kw}


def test_a_dag_orders_its_nodes_and_fills_in_job_defaults() -> None:
    spec = parse_dag_spec(dag(
        node("c", inputs={"x": "b.out"}), node("b", outputs=["out"]), node("a"),
        edges=[["a", "b"]], env={"K": "v"},
    ))  # fmt: skip
    assert spec.order() == ["a", "b", "c"]
    assert spec.upstream() == {"a": set(), "b": {"a"}, "c": {"b"}}
    assert spec.downstream_of(["a"]) == {"b", "c"}
    job = spec.node("b").job
    assert job is not None and job.name == "b" and job.queue == "q" and job.env == {"K": "v"}


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (dag(node("a"), node("b"), node("a"), node("b")), ["duplicate", "'a'", "'b'"]),
        (dag(node("a"), edges=[["a", "ghost"]]), ["unknown node", "'ghost'"]),
        (dag(node("a", inputs={"x": "ghost.out"})), ["unknown node 'ghost'"]),
        (dag(node("a"), node("b", inputs={"x": "a.nope"})), ["no output 'nope'"]),
        (dag(node("a"), node("b"), node("c"), edges=[["a", "b"], ["b", "c"], ["c", "a"]]),
         ["cycle", "->"]),
        (dag(node("a", job={"command": ["x", "${outputs.nope}"],
                            "replica_specs": [{"role": "worker"}]})),
         ["unknown placeholder", "${outputs.nope}"]),
        (dag(node("a", template="t", job=None)), []),  # a template node: accepted
        (dag({"name": "a"}), ["exactly one"]),
    ],
)
def test_bad_dags_are_refused_naming_the_offenders(body: dict[str, Any], names: list[str]) -> None:
    if not names:
        parse_dag_spec(body)
        return
    with pytest.raises(SpecError) as err:
        parse_dag_spec(body)
    for name in names:
        assert name in str(err.value)


def test_a_cycle_is_named_node_by_node() -> None:
    with pytest.raises(SpecError) as err:
        parse_dag_spec(dag(node("a"), node("b"), node("c"), node("d"),
                           edges=[["a", "b"], ["b", "c"], ["c", "b"], ["c", "d"]]))  # fmt: skip
    msg = str(err.value)
    assert "b -> c -> b" in msg or "c -> b -> c" in msg
    assert "'a'" not in msg.split("cycle")[1]


def test_placeholders_are_filled_in_command_env_and_workdir() -> None:
    job = {"command": ["run", "${inputs.x}", "--out=${outputs.y}"], "env": {"R": "${run.id}"},
           "workdir": "${run.dir}",
           "replica_specs": [{"role": "worker", "command": ["${outputs.y}"]}]}
    out = fill_placeholders(job, {"inputs.x": "/i", "outputs.y": "/o", "run.id": "7",
                                  "run.dir": "/r"})  # fmt: skip
    assert out["command"] == ["run", "/i", "--out=/o"]
    assert out["env"] == {"R": "7"} and out["workdir"] == "/r"
    assert out["replica_specs"][0]["command"] == ["/o"]
    assert job["command"][1] == "${inputs.x}"  # the original is left as it was


def test_run_and_node_moves_follow_their_rules() -> None:
    assert RUN_MACHINE.rule(RunState.PENDING, RunState.RUNNING) == "start"
    assert NODE_MACHINE.rule(NodeState.SUBMITTED, NodeState.SUCCEEDED) == "job-ended"
    with pytest.raises(InvalidMove, match="never changes"):
        RUN_MACHINE.rule(RunState.SUCCEEDED, RunState.RUNNING)
    with pytest.raises(InvalidMove, match="no-op"):
        NODE_MACHINE.rule(NodeState.WAITING, NodeState.WAITING)
    with pytest.raises(InvalidMove, match="no rule"):
        NODE_MACHINE.rule(NodeState.SUBMITTED, NodeState.WAITING)
