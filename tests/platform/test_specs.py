"""Job specs: strict validation whose errors name the source and the field path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recforge.platform.model.resources import Resources, parse_memory
from recforge.platform.model.specs import JobSpec, RetryPolicy, SpecError, parse_job_spec

GOOD = """
name: train-1
command: [python, train.py, --epochs, 10]
env: {SEED: 7, DEBUG: true}
replica_specs:
  - role: worker
    replicas: 3
    resources: {cpu: 0.5, memory: 512Mi, gpu: 1, extended: {fpga: 2}}
  - role: master
    resources: {cpu: 1, memory: 1.5Gi}
min_available: 3
queue: research
priority: 5
pending_deadline_seconds: 600
retry: {max_attempts: 3, backoff_seconds: 5, backoff_factor: 3, max_backoff: 30}
labels: {team: recsys}
cluster_type: ray
"""


def test_parse_valid_spec_fills_defaults_and_orders_the_gang() -> None:
    spec = parse_job_spec(GOOD, source="train.yaml")
    assert spec.command == ["python", "train.py", "--epochs", "10"]
    assert spec.env == {"SEED": "7", "DEBUG": "true"}
    assert spec.total_replicas == 4 and spec.gang_size == 3
    roles = [(r, i) for r, i, _ in spec.replica_list()]
    assert roles == [("master", 0), ("worker", 0), ("worker", 1), ("worker", 2)]
    per, total = spec.gang_request()
    assert per[0] == Resources(cpu=1, memory=1536, pods=1)  # every replica counts one pod
    assert total == Resources(cpu=2, memory=2560, gpu=2, pods=3, extended={"fpga": 4})
    assert spec.full_request()[1] == Resources(
        cpu=2.5, memory=3072, gpu=3, pods=4, extended={"fpga": 6}
    )
    # JSON text and the canonical dict parse to the same spec.
    assert parse_job_spec(json.dumps(spec.canonical())) == spec
    default = parse_job_spec({"name": "x", "command": ["true"]})
    assert default.min_available == 1 and default.queue == "default"
    assert default.gang_request()[1] == Resources(pods=1)


def test_pods_are_counted_by_the_platform_not_requested() -> None:
    with pytest.raises(SpecError, match=r"replica_specs\.0\.resources: pods are counted by the "
                       r"platform"):
        parse_job_spec({"name": "x", "command": ["true"],
                        "replica_specs": [{"role": "master", "resources": {"pods": 2}}]})


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"queu": "q"}, "queu", "unknown field 'queu'"),
        (
            {"replica_specs": [{"role": "master", "resources": {"memory": "2G"}}]},
            "replica_specs.0.resources.memory",
            "invalid memory '2G'",
        ),
        (
            {"replica_specs": [{"role": "master", "resources": {"memroy": 5}}]},
            "replica_specs.0.resources.memroy",
            "unknown field 'memroy'",
        ),
        ({"min_available": 5}, "min_available", "5 exceeds the total number of replicas (1)"),
        ({"kind": "kubernetes"}, "kind", "kind 'kubernetes' is not supported yet"),
        ({"kind": "batch"}, "kind", "Input should be 'command', 'python'"),
        ({"kind": "python"}, "entrypoint", "needs 'package.module:function'"),
        (
            {"replica_specs": [{"role": "master", "replicas": 2}]},
            "replica_specs.0.replicas",
            "exactly one master replica",
        ),
        ({"replica_specs": [{"role": "chief"}]}, "replica_specs.0.role", "'master' or 'worker'"),
        ({"env": {"1BAD": "x"}}, "env", "invalid environment variable name"),
        ({"name": "bad name"}, "name", "invalid job name 'bad name'"),
        ({"retry": {"max_backoff": 1}}, "retry.max_backoff", "must be >= backoff_seconds"),
        ({"priority": "high"}, "priority", "valid integer"),
        ({"replica_specs": []}, "replica_specs", "at least one replica group"),
        (
            {"replica_specs": [{"role": "worker", "resources": {"extended": {"gpu": 1}}}]},
            "replica_specs.0.resources.extended",
            "'gpu' is a core resource",
        ),
    ],
)
def test_errors_name_source_and_field(patch: dict, path: str, message: str) -> None:
    data = {"name": "j", "command": ["true"], **patch}
    if data.get("kind") == "python":
        data.pop("command")
    with pytest.raises(SpecError) as err:
        parse_job_spec(data, source="job.yaml")
    text = str(err.value)
    assert "job.yaml" in text
    assert f"  - {path}: " in text, text
    assert message in text, text


def test_python_kind_and_bad_text() -> None:
    spec = parse_job_spec({"name": "p", "kind": "python", "entrypoint": "pkg.mod:main"})
    assert spec.kind == "python" and spec.command is None
    with pytest.raises(SpecError, match=r"  - command: only for kind 'command'"):
        parse_job_spec({"name": "p", "kind": "python", "entrypoint": "a:b", "command": ["x"]})
    with pytest.raises(SpecError, match=r"invalid YAML/JSON in broken\.yaml"):
        parse_job_spec("name: [unclosed", source="broken.yaml")
    with pytest.raises(SpecError, match=r"list\.yaml: a job spec must be a mapping"):
        parse_job_spec("- a\n- b", source="list.yaml")


@pytest.mark.parametrize(
    ("text", "mib"),
    [(512, 512), ("512Mi", 512), ("2Gi", 2048), ("1.5Gi", 1536), ("2048KiB", 2), ("1Ti", 1 << 20)],
)
def test_memory_units(text: object, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["2G", "1.5", "100Ki", "-1", "lots", True, None])
def test_bad_memory_is_rejected(text: object) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_memory(text)


def test_resources_arithmetic_is_exact_and_canonical() -> None:
    a = Resources.model_validate({"cpu": 0.1, "memory": "1Gi", "extended": {"fpga": 1, "tpu": 0}})
    b = Resources(cpu=0.2, gpu=1)
    s = a.add(b)
    assert s.as_dict() == {"cpu": 0.3, "memory": 1024, "gpu": 1, "pods": 0, "fpga": 1.0}
    assert s.sub(b) == a and s.sub(a).sub(b) == Resources() and "tpu" not in a.extended
    with pytest.raises(ValueError, match=r"gpu: 0 < 1"):
        a.sub(b)
    assert a.fits(s) and not s.fits(a)
    assert s.shortfall(a) == {"cpu": (0.3, 0.1), "gpu": (1.0, 0.0)}
    assert Resources(cpu=1, memory=3, gpu=1, pods=3).scale(1.5) == Resources(
        cpu=1.5, memory=5, gpu=2, pods=5
    )
    assert Resources.from_dict(s.as_dict()) == s
    assert Resources(cpu=0.0004) == Resources()  # millicore precision
    with pytest.raises(ValueError):
        Resources(cpu=-1)


def test_retry_policy_backoff() -> None:
    r = RetryPolicy(max_attempts=4, backoff_seconds=5, backoff_factor=3, max_backoff=30)
    assert [r.delay(n) for n in (1, 2, 3, 4)] == [5, 15, 30, 30]
    assert r.can_retry(3) and not r.can_retry(4)
    with pytest.raises(ValueError):
        r.delay(0)


def test_specs_are_immutable() -> None:
    spec = JobSpec(name="j", command=["true"])
    with pytest.raises(ValueError):
        spec.name = "k"  # type: ignore[misc]


def test_package_import_stays_light() -> None:
    code = (
        "import sys, recforge.platform as p; "
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'ray', 'uvicorn') if m in sys.modules]; "
        "assert not heavy, heavy; assert p.Scheduler and p.render"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_absurd_amounts_are_validation_errors_not_overflow() -> None:
    from pydantic import ValidationError

    from recforge.platform.model.resources import Resources

    for bad in ({"cpu": 1.7e306}, {"cpu": float("inf")}, {"extended": {"nvidia.com/gpu": 1e300}}):
        with pytest.raises(ValidationError, match=r"out of range|must be finite"):
            Resources(**bad)
