"""DAG specs: several jobs with dependencies, artefacts passed between them by name (pure data).

A :class:`DagSpec` lists *nodes*, each one job: an inline job spec (``job:``, the fields of a
:class:`~recforge.platform.model.specs.JobSpec`) or a template with values (``template:``,
``values:``). ``edges`` are ``[upstream, downstream]`` pairs; a node that reads another node's
artefact (``inputs: {data: read.table}``) depends on it without an explicit edge. Per node,
``retries`` (attempts after the first) and ``timeout_seconds`` (the run deadline) override the
job's own retry policy and deadline. ``failure_policy`` says what a failed node does to the
rest: ``stop`` (nothing new starts, running nodes are cancelled, the rest is skipped) or
``continue`` (branches that do not depend on the failed node run to their end; its downstream
nodes are skipped).

Artefacts are directories in the run's directory, owned by the platform and writable by the
run's jobs (never the platform's store): node ``n``'s output ``o`` is
``<run dir>/artifacts/n/o/``. A job finds its paths in placeholders that the platform fills in
when it submits the node's job, in the command, ``env`` values and ``workdir``:

* ``${outputs.NAME}``: the directory of one of the node's ``outputs`` (created, empty, before
  the job starts);
* ``${inputs.NAME}``: the directory of the upstream artefact the node reads as ``NAME``;
* ``${run.dir}``, ``${run.id}``, ``${run.scheduled_at}`` (ISO 8601 instant of a scheduled run,
  empty otherwise);

and in the environment (``RECFORGE_OUTPUT_<NAME>``, ``RECFORGE_INPUT_<NAME>``, ``RECFORGE_RUN_DIR``,
``RECFORGE_DAG_RUN_ID``, ``RECFORGE_DAG_NODE``, ``RECFORGE_SCHEDULED_AT``; ``NAME`` upper-cased,
``.``/``-`` as ``_``). Any other ``${inputs.*}``/``${outputs.*}``/``${run.*}`` is refused at
submission, naming it.

Refused at submission, naming the offenders: duplicate node names, edges or inputs naming unknown
nodes or artefacts, and cycles (the cycle's nodes in order).
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recforge.platform.model.names import check_name
from recforge.platform.model.specs import (
    JobSpec,
    SpecError,
    format_validation_error,
    load_mapping,
)

__all__ = [
    "DagNode",
    "DagSpec",
    "artifact_env_name",
    "dag_placeholders",
    "fill_placeholders",
    "parse_dag_spec",
]

FailurePolicy = Literal["stop", "continue"]
#: ``${inputs.x}``, ``${outputs.x}``, ``${run.x}``: the DAG's placeholders (template parameters
#: have no dot, so the two never collide).
_PLACEHOLDER = re.compile(r"\$\{(inputs|outputs|run)\.([A-Za-z0-9._-]+)\}")
RUN_FIELDS = ("dir", "id", "scheduled_at")


def artifact_env_name(name: str) -> str:
    """The environment-variable suffix of artefact ``name`` (upper case, ``.``/``-`` as ``_``)."""
    return re.sub(r"[.-]", "_", name).upper()


class DagNode(BaseModel):
    """One node: a job (inline or from a template), what it reads and writes, retries, timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    job: JobSpec | None = Field(default=None, description="an inline job spec")
    template: str | None = Field(default=None, description="or a template to render")
    values: dict[str, Any] = Field(default_factory=dict, description="the template's values")
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="local name -> 'node.output' of an upstream node (implies the edge)",
    )
    outputs: list[str] = Field(default_factory=list, description="artefact directories written")
    retries: int | None = Field(default=None, ge=0, le=99,
                                description="attempts after the first (overrides the job's)")
    timeout_seconds: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                          description="run deadline (overrides the job's)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "node name")

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v, "template name")

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, v: list[str]) -> list[str]:
        for name in v:
            check_name(name, "artefact name")
        _no_env_clash(v, "outputs")
        return v

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: dict[str, str]) -> dict[str, str]:
        for local, ref in v.items():
            check_name(local, "input name")
            node, dot, output = ref.partition(".")
            if not dot or not node or not output:
                raise ValueError(f"input {local!r}: {ref!r} must look like 'node.output'")
        _no_env_clash(list(v), "inputs")
        return v

    @model_validator(mode="after")
    def _check(self) -> DagNode:
        if (self.job is None) == (self.template is None):
            raise ValueError("job: give an inline 'job' or a 'template' (exactly one)")
        if self.values and self.template is None:
            raise ValueError("values: only for a 'template' node")
        return self

    def upstream_nodes(self) -> set[str]:
        """Nodes whose artefacts this one reads."""
        return {ref.partition(".")[0] for ref in self.inputs.values()}


def _no_env_clash(names: list[str], where: str) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = artifact_env_name(name)
        if key in seen and seen[key] != name:
            raise ValueError(f"{where}: {seen[key]!r} and {name!r} have the same environment name")
        seen[key] = name


class DagSpec(BaseModel):
    """A validated DAG (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    queue: str | None = Field(default=None, description="queue of nodes whose job names none")
    env: dict[str, str] = Field(default_factory=dict, description="added to every node's env")
    failure_policy: FailurePolicy = "stop"
    nodes: list[DagNode] = Field(min_length=1, max_length=1000)
    edges: list[tuple[str, str]] = Field(default_factory=list,
                                         description="[upstream, downstream] pairs")
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "DAG name")

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Inline jobs take the node's name and the DAG's queue and env unless they set them."""
        if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
            return data
        data = dict(data)
        queue, env = data.get("queue"), data.get("env")
        nodes = []
        for node in data["nodes"]:
            if isinstance(node, Mapping) and isinstance(node.get("job"), Mapping):
                job = dict(node["job"])
                job.setdefault("name", node.get("name"))
                if queue is not None:
                    job.setdefault("queue", queue)
                if isinstance(env, Mapping) and isinstance(job.get("env", {}), Mapping):
                    job["env"] = {**env, **job.get("env", {})}
                node = {**node, "job": job}
            nodes.append(node)
        data["nodes"] = nodes
        return data

    @model_validator(mode="after")
    def _graph(self) -> DagSpec:
        names = [n.name for n in self.nodes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"nodes: duplicate node name(s) {dup}")
        known = set(names)
        for i, (a, b) in enumerate(self.edges):
            bad = [x for x in (a, b) if x not in known]
            if bad:
                raise ValueError(f"edges: edge {i} [{a}, {b}] names unknown node(s) {bad}; "
                                 f"known: {sorted(known)}")  # fmt: skip
        outputs = {n.name: set(n.outputs) for n in self.nodes}
        for node in self.nodes:
            for local, ref in node.inputs.items():
                src, _, out = ref.partition(".")
                if src not in known:
                    raise ValueError(f"nodes: node {node.name!r} input {local!r} reads unknown "
                                     f"node {src!r}; known: {sorted(known)}")  # fmt: skip
                if src == node.name:
                    raise ValueError(f"nodes: node {node.name!r} input {local!r} reads its own "
                                     "output")  # fmt: skip
                if out not in outputs[src]:
                    raise ValueError(f"nodes: node {node.name!r} input {local!r} reads "
                                     f"{ref!r}, but node {src!r} has no output {out!r} (its "
                                     f"outputs: {sorted(outputs[src])})")  # fmt: skip
            if node.job is not None:
                why = check_placeholders(node.job.model_dump(mode="json"), node)
                if why:
                    raise ValueError(f"nodes: node {node.name!r}: {why}")
        try:
            self.order()
        except graphlib.CycleError as exc:
            cycle = list(exc.args[1])
            raise ValueError(f"edges: the graph has a cycle: {' -> '.join(cycle)}") from None
        return self

    # -- the graph ----------------------------------------------------------------------------
    def upstream(self) -> dict[str, set[str]]:
        """Node -> the nodes it waits for (edges and inputs)."""
        up: dict[str, set[str]] = {n.name: set(n.upstream_nodes()) for n in self.nodes}
        for a, b in self.edges:
            up[b].add(a)
        return up

    def order(self) -> list[str]:
        """Node names in a topological order (ties in the order listed); CycleError if none."""
        up = self.upstream()
        ts: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for n in self.nodes:
            ts.add(n.name, *sorted(up[n.name]))
        ts.prepare()
        rank = {n.name: i for i, n in enumerate(self.nodes)}
        out: list[str] = []
        while ts.is_active():
            ready = sorted(ts.get_ready(), key=rank.__getitem__)
            out.extend(ready)
            ts.done(*ready)
        return out

    def downstream_of(self, names: Iterable[str]) -> set[str]:
        """Every node that (transitively) depends on one of ``names``."""
        down: dict[str, set[str]] = {n.name: set() for n in self.nodes}
        for node, ups in self.upstream().items():
            for u in ups:
                down[u].add(node)
        seen: set[str] = set()
        stack = list(names)
        while stack:
            for d in down[stack.pop()]:
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return seen

    def node(self, name: str) -> DagNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def canonical(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def parse_dag_spec(data: Mapping[str, Any] | str | bytes, source: str = "<dag>") -> DagSpec:
    """Validate a DAG from YAML/JSON text or a dict; :class:`SpecError` names the field."""
    mapping = load_mapping(data, "DAG spec", source)
    try:
        return DagSpec.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "DAG spec", source)) from None


# -- placeholders -------------------------------------------------------------------------------
def _strings(job: Mapping[str, Any]) -> Iterable[str]:
    """The strings of a job spec where placeholders are filled: argv, env values, workdir."""
    yield from job.get("command") or []
    yield from (job.get("env") or {}).values()
    if job.get("workdir"):
        yield job["workdir"]
    for rs in job.get("replica_specs") or []:
        yield from rs.get("command") or []


def dag_placeholders(job: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every ``(kind, name)`` placeholder a job spec mapping uses."""
    return {(m.group(1), m.group(2)) for s in _strings(job) if isinstance(s, str)
            for m in _PLACEHOLDER.finditer(s)}  # fmt: skip


def check_placeholders(job: Mapping[str, Any], node: DagNode) -> str | None:
    """Why the job's placeholders do not fit ``node`` (unknown input/output/run field), or None."""
    bad = []
    for kind, name in sorted(dag_placeholders(job)):
        known = {"inputs": node.inputs, "outputs": node.outputs, "run": RUN_FIELDS}[kind]
        if name not in known:
            bad.append(f"${{{kind}.{name}}}")
    if bad:
        return (f"unknown placeholder(s) {bad} (inputs {sorted(node.inputs)}, outputs "
                f"{sorted(node.outputs)}, run fields {list(RUN_FIELDS)})")  # fmt: skip
    return None


def fill_placeholders(job: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the job spec mapping with ``${kind.name}`` replaced from ``values`` (keys
    ``"inputs.x"``, ``"outputs.y"``, ``"run.dir"``, ...); every placeholder must have a value."""

    def fill(s: Any) -> Any:
        if not isinstance(s, str):
            return s
        return _PLACEHOLDER.sub(lambda m: values[f"{m.group(1)}.{m.group(2)}"], s)

    out = dict(job)
    if out.get("command"):
        out["command"] = [fill(x) for x in out["command"]]
    if out.get("env"):
        out["env"] = {k: fill(v) for k, v in out["env"].items()}
    if out.get("workdir"):
        out["workdir"] = fill(out["workdir"])
    if out.get("replica_specs"):
        out["replica_specs"] = [
            {**rs, "command": [fill(x) for x in rs["command"]]} if rs.get("command") else rs
            for rs in out["replica_specs"]
        ]
    return out
