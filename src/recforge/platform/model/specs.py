"""Job specs: what a user submits, validated strictly (pure data, no I/O).

A :class:`JobSpec` describes one batch job as a gang of replicas (one optional ``master`` plus
``worker`` replicas), each with the :class:`Resources` it needs. Unknown fields are rejected so a
typo fails naming the field; :func:`parse_job_spec` turns YAML/JSON text or a dict into a spec and
raises :class:`SpecError` whose message names the source and the field path
(e.g. ``replica_specs.1.resources.memory``).

Amounts and their units: :mod:`recforge.platform.model.resources`. Names follow the one name
rule of :mod:`recforge.platform.model.names`.

The gang: replicas are ordered master first, then workers in the order listed; the gang is the
first ``min_available`` replicas of that order (default: all of them), so a master is always part
of it. The scheduler reserves the gang atomically on one cluster or nothing at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from recforge.platform.model.names import check_name
from recforge.platform.model.resources import Resources
from recforge.platform.model.service import ServiceSpec
from recforge.platform.model.spark import SparkApp

__all__ = [
    "SUPPORTED_KINDS",
    "JobKind",
    "JobSpec",
    "ReplicaSpec",
    "RetryPolicy",
    "SpecError",
    "format_validation_error",
    "load_mapping",
    "parse_job_spec",
]

JobKind = Literal["command", "python", "spark", "service", "kubernetes", "dag"]
SUPPORTED_KINDS: tuple[str, ...] = ("command", "python", "spark", "service")

_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD_PREFIX_RE = re.compile(r"^([a-z_][a-z0-9_]*): (.*)$", re.S)
_ENTRYPOINT_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


class SpecError(ValueError):
    """A job spec or template is invalid; the message names the source and the field path."""


_ONE_POD = Resources(pods=1)


def _scalar_text(x: Any) -> Any:
    """Numbers and booleans as the text a shell would see; anything else unchanged."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int | float):
        return str(x)
    return x


class ReplicaSpec(BaseModel):
    """One group of identical replicas of a job (a role with a count and per-replica resources)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["master", "worker"]
    replicas: int = Field(default=1, ge=1, le=10_000)
    resources: Resources = Field(default_factory=lambda: Resources())
    command: list[str] | None = Field(
        default=None, description="overrides the job's command for these replicas"
    )

    @field_validator("command", mode="before")
    @classmethod
    def _command_scalars(cls, v: Any) -> Any:
        return [_scalar_text(x) for x in v] if isinstance(v, list) else v

    @model_validator(mode="after")
    def _check(self) -> ReplicaSpec:
        if self.resources.pods:
            raise ValueError(
                "resources: pods are counted by the platform (one per replica); do not set them"
            )
        if self.role == "master" and self.replicas != 1:
            raise ValueError(f"replicas: a job has exactly one master replica, got {self.replicas}")
        if self.command is not None and not self.command:
            raise ValueError("command: the override must be a non-empty list (or omitted)")
        return self


class RetryPolicy(BaseModel):
    """How often a failed or evicted job is retried and how long it waits in between.

    Attempt ``n`` (1-based) that failed waits ``min(max_backoff, backoff_seconds *
    backoff_factor ** (n - 1))`` seconds before going back to the queue; after ``max_attempts``
    attempts the job fails for good.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_seconds: float = Field(default=10.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    max_backoff: float = Field(default=600.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> RetryPolicy:
        if self.max_backoff < self.backoff_seconds:
            raise ValueError(
                f"max_backoff: {self.max_backoff:g} must be >= backoff_seconds "
                f"({self.backoff_seconds:g})"
            )
        return self

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempt is 1-based, got {attempt}")
        exp = min(attempt - 1, 64)  # bounded: the result is capped anyway
        return float(min(self.max_backoff, self.backoff_seconds * self.backoff_factor**exp))

    def can_retry(self, attempts_done: int) -> bool:
        return attempts_done < self.max_attempts


class JobSpec(BaseModel):
    """A validated job: what to run, with which replicas and resources, where and how long.

    ``kind="command"`` runs ``command`` (argv list); ``kind="python"`` calls ``entrypoint``
    (``"package.module:function"``) with no arguments; ``kind="spark"`` submits the ``spark``
    application (:mod:`recforge.platform.model.spark`: its replicas and gang are derived from
    the driver and executors, and it runs on ``spark`` clusters only); ``kind="service"`` runs
    ``command`` as long-lived replicas behind one address (:mod:`recforge.platform.model.
    service`; local clusters only). ``kubernetes``/``dag`` are reserved names and rejected for
    now. ``min_available`` is the gang size (see module doc).
    ``cluster_type``, when set, restricts the job to clusters of that type (each type has its
    own backend); unset, any cluster where the job's queue has quota may run it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: JobKind = "command"
    command: list[str] | None = None
    entrypoint: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    workdir: str | None = None
    replica_specs: list[ReplicaSpec] = Field(
        default_factory=lambda: [ReplicaSpec(role="master", replicas=1)]
    )
    min_available: int | None = Field(default=None, ge=1)
    queue: str = "default"
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    pending_deadline_seconds: float | None = Field(default=None, gt=0)
    run_deadline_seconds: float | None = Field(default=None, gt=0)
    retry: RetryPolicy = Field(default_factory=lambda: RetryPolicy())
    labels: dict[str, str] = Field(default_factory=dict)
    cluster_type: Literal["local", "ray", "kubernetes", "spark"] | None = None
    spark: SparkApp | None = Field(default=None, description="the application of kind 'spark'")
    image: str | None = Field(default=None, min_length=1, max_length=500,
                              description="container image (Kubernetes clusters only)")
    no_output_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="flag a 'no_output' anomaly when a replica prints nothing for this long",
    )
    service: ServiceSpec | None = Field(default=None, description="replicas etc. of a 'service'")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "job name")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v == "dag":
            raise ValueError("a DAG is not a job kind: submit it as a DAG (POST /dags, "
                             "`recforge platform dag submit FILE`)")  # fmt: skip
        if v not in SUPPORTED_KINDS:
            raise ValueError(
                f"kind {v!r} is not supported yet (supported: {', '.join(SUPPORTED_KINDS)})"
            )
        return v

    @field_validator("command", mode="before")
    @classmethod
    def _command_scalars(cls, v: Any) -> Any:
        # YAML turns `--epochs, 10` into an int; argv is text, so numbers become their text.
        if isinstance(v, list):
            return [_scalar_text(x) for x in v]
        return v

    @field_validator("env", mode="before")
    @classmethod
    def _env_scalars(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: _scalar_text(x) for k, x in v.items()}
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not _ENV_RE.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {bad}")
        return v

    @field_validator("queue")
    @classmethod
    def _queue(cls, v: str) -> str:
        return check_name(v, "queue name")

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        if self.kind == "command":
            if not self.command:
                raise ValueError("command: kind 'command' needs a non-empty argv list")
            if self.entrypoint is not None:
                raise ValueError("entrypoint: only for kind 'python'; use 'command'")
        elif self.kind == "python":
            if self.entrypoint is None or not _ENTRYPOINT_RE.match(self.entrypoint):
                raise ValueError(
                    f"entrypoint: kind 'python' needs 'package.module:function', "
                    f"got {self.entrypoint!r}"
                )
            if self.command is not None:
                raise ValueError("command: only for kind 'command'; use 'entrypoint'")
        elif self.kind == "spark":
            self._derive_spark()
        elif self.kind == "service":
            self._derive_service()
        if self.kind != "spark" and self.spark is not None:
            raise ValueError("spark: only for kind 'spark'")
        if self.kind != "service" and self.service is not None:
            raise ValueError("service: only for kind 'service'")
        if self.image is not None and self.cluster_type != "kubernetes":
            raise ValueError("image: only for jobs with cluster_type 'kubernetes' (other "
                             "clusters run commands on their hosts)")
        if not self.replica_specs:
            raise ValueError("replica_specs: must list at least one replica group")
        roles = [r.role for r in self.replica_specs]
        if roles.count("master") > 1:
            raise ValueError("replica_specs: at most one 'master' entry is allowed")
        total = self.total_replicas
        if self.min_available is None:
            object.__setattr__(self, "min_available", total)
        elif self.min_available > total:
            raise ValueError(
                f"min_available: {self.min_available} exceeds the total number of replicas "
                f"({total})"
            )
        return self

    def _derive_spark(self) -> None:
        """Replicas, gang and cluster type of a Spark job come from its ``spark`` section;
        given explicitly (a stored spec read back) they must agree with it."""
        if self.spark is None:
            raise ValueError("spark: kind 'spark' needs the application ('spark.application')")
        for name in ("command", "entrypoint"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: not for kind 'spark' (the application is in 'spark')")
        if self.cluster_type not in (None, "spark"):
            raise ValueError(f"cluster_type: kind 'spark' runs on 'spark' clusters, "
                             f"not {self.cluster_type!r}")  # fmt: skip
        derived = [ReplicaSpec.model_validate(g) for g in self.spark.replica_specs()]
        if "replica_specs" in self.model_fields_set and self.replica_specs != derived:
            raise ValueError("replica_specs: derived from 'spark' (driver and executors) for "
                             "kind 'spark'; do not set them")  # fmt: skip
        gang = self.spark.gang_size
        if self.min_available not in (None, gang):
            raise ValueError(f"min_available: for kind 'spark' it is 1 + executors.instances "
                             f"({gang}); set spark.executors.instances instead")  # fmt: skip
        object.__setattr__(self, "replica_specs", derived)
        object.__setattr__(self, "min_available", gang)
        object.__setattr__(self, "cluster_type", "spark")

    def _derive_service(self) -> None:
        """A service is one replica (its supervisor) sized for ``max_replicas`` servers."""
        if not self.command:
            raise ValueError("command: kind 'service' needs the server's argv (listening on $PORT)")
        if self.entrypoint is not None:
            raise ValueError("entrypoint: not for kind 'service'; use 'command'")
        service = self.service or ServiceSpec()
        if self.cluster_type not in (None, "local"):
            raise ValueError(f"cluster_type: services run on 'local' clusters, "
                             f"not {self.cluster_type!r}")  # fmt: skip
        derived = [ReplicaSpec.model_validate(g) for g in service.replica_specs()]
        if "replica_specs" in self.model_fields_set and self.replica_specs != derived:
            raise ValueError("replica_specs: derived from 'service' (replicas, max_replicas, "
                             "resources) for kind 'service'; do not set them")  # fmt: skip
        if self.min_available not in (None, 1):
            raise ValueError("min_available: not for kind 'service' (use service.replicas)")
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "replica_specs", derived)
        object.__setattr__(self, "min_available", 1)
        object.__setattr__(self, "cluster_type", "local")

    @property
    def total_replicas(self) -> int:
        return sum(r.replicas for r in self.replica_specs)

    @property
    def gang_size(self) -> int:
        assert self.min_available is not None  # set by the validator
        return self.min_available

    def replica_list(self) -> list[tuple[str, int, Resources]]:
        """Every replica as ``(role, index, resources)``: master first, workers in listed order.

        ``index`` counts within the role (worker 0, worker 1, ...). ``resources`` are the
        replica's request plus the one pod every replica counts.
        """
        ordered = sorted(self.replica_specs, key=lambda r: r.role != "master")
        out: list[tuple[str, int, Resources]] = []
        counters: dict[str, int] = {}
        for rs in ordered:
            request = rs.resources.add(_ONE_POD)
            for _ in range(rs.replicas):
                i = counters.get(rs.role, 0)
                counters[rs.role] = i + 1
                out.append((rs.role, i, request))
        return out

    def gang_request(self) -> tuple[list[Resources], Resources]:
        """Per-replica resources of the gang (first ``min_available`` replicas) and their sum."""
        per = [r for _, _, r in self.replica_list()[: self.gang_size]]
        return per, Resources.total(per)

    def full_request(self) -> tuple[list[Resources], Resources]:
        """Per-replica resources of all replicas (gang plus elastic extras) and their sum."""
        per = [r for _, _, r in self.replica_list()]
        return per, Resources.total(per)

    def canonical(self) -> dict[str, Any]:
        """JSON-ready dict with defaults filled in (what gets stored with a job)."""
        return self.model_dump(mode="json")


def format_validation_error(err: ValidationError, what: str, source: str) -> str:
    """One line per error, each naming the dotted field path."""
    lines = [f"invalid {what} {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {loc.rsplit('.', 1)[-1]!r}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
            # Cross-field checks report "field: message"; move the field into the path.
            m = _FIELD_PREFIX_RE.match(msg)
            if m is not None:
                loc = f"{loc}.{m.group(1)}" if e["loc"] else m.group(1)
                msg = m.group(2)
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def load_mapping(data: Mapping[str, Any] | str | bytes, what: str, source: str) -> dict[str, Any]:
    """Parse YAML (a superset of JSON) text or accept a mapping; errors name ``source``."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        try:
            loaded = json.loads(data) if data.lstrip().startswith("{") else yaml.safe_load(data)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise SpecError(f"invalid YAML/JSON in {source}: {exc}") from None
    else:
        loaded = data
    if not isinstance(loaded, Mapping):
        raise SpecError(f"{source}: a {what} must be a mapping, got {type(loaded).__name__}")
    return dict(loaded)


def parse_job_spec(data: Mapping[str, Any] | str | bytes, source: str = "<job>") -> JobSpec:
    """Validate a job spec from YAML/JSON text or a dict; raises :class:`SpecError`."""
    mapping = load_mapping(data, "job spec", source)
    try:
        return JobSpec.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "job spec", source)) from None
