"""Job specs: what a user submits, validated strictly (pure data, no I/O).

A :class:`JobSpec` describes one batch job as a gang of replicas (one optional ``master`` plus
``worker`` replicas), each with the :class:`Resources` it needs. Unknown fields are rejected so a
typo fails naming the field; :func:`parse_job_spec` turns YAML/JSON text or a dict into a spec and
raises :class:`SpecError` whose message names the source and the field path
(e.g. ``replica_specs.1.resources.memory``).

Units: ``cpu`` in cores with a precision of one millicore, ``memory`` in MiB (strings such as
``"512Mi"``, ``"2Gi"`` or ``"1.5Gi"`` are accepted; a bare number means MiB), ``gpu`` a whole
count, ``extended`` named resources (e.g. ``"fpga"``) as non-negative amounts.

The gang: replicas are ordered master first, then workers in the order listed; the gang is the
first ``min_available`` replicas of that order (default: all of them), so a master is always part
of it. The scheduler reserves the gang atomically on one cluster or nothing at all.
"""

from __future__ import annotations

import json
import math
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

__all__ = [
    "SUPPORTED_KINDS",
    "JobKind",
    "JobSpec",
    "ReplicaSpec",
    "Resources",
    "RetryPolicy",
    "SpecError",
    "format_validation_error",
    "parse_job_spec",
    "parse_memory",
]

JobKind = Literal["command", "python", "spark", "kubernetes", "dag"]
SUPPORTED_KINDS: tuple[str, ...] = ("command", "python")
CORE_RESOURCES: tuple[str, ...] = ("cpu", "memory", "gpu")

_MILLI = 1000
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i)?B?\s*$")
_MEMORY_FACTOR_MIB = {None: 1.0, "Ki": 1.0 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0**2}
_RESOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELD_PREFIX_RE = re.compile(r"^([a-z_][a-z0-9_]*): (.*)$", re.S)
_ENTRYPOINT_RE = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


class SpecError(ValueError):
    """A job spec or template is invalid; the message names the source and the field path."""


def parse_memory(value: Any) -> int:
    """Return ``value`` as whole MiB: an int/float (MiB) or a string like ``"512Mi"``/``"2Gi"``.

    Only binary suffixes (Ki, Mi, Gi, Ti, optionally followed by ``B``) are accepted, because
    decimal ones (``M``, ``G``) do not give whole MiB; the result must be a whole number of MiB.
    """
    if isinstance(value, bool):
        raise ValueError("memory must be a number of MiB or a string like '512Mi' or '2Gi'")
    if isinstance(value, int):
        amount = float(value)
    elif isinstance(value, float):
        amount = value
    elif isinstance(value, str):
        m = _MEMORY_RE.match(value)
        if m is None:
            raise ValueError(
                f"invalid memory {value!r}: use a number of MiB or a binary unit "
                "such as '512Mi', '2Gi', '1.5Gi' (Ki, Mi, Gi, Ti)"
            )
        amount = float(m.group(1)) * _MEMORY_FACTOR_MIB[m.group(2)]
    else:
        raise ValueError(f"memory must be a number or a string, got {type(value).__name__}")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"memory must be a finite, non-negative amount, got {value!r}")
    whole = round(amount)
    if abs(amount - whole) > 1e-9:
        raise ValueError(f"memory {value!r} is not a whole number of MiB ({amount:g} MiB)")
    return int(whole)


_MAX_AMOUNT = 1e12  # far above any real capacity; keeps milli-rounding finite


def _milli(x: float) -> float:
    """Round to the platform's precision (1/1000 of a unit) so sums stay exact enough.

    Amounts beyond ``_MAX_AMOUNT`` (or not finite) raise ``ValueError``, which pydantic reports
    as a validation error naming the field, instead of an ``OverflowError``.
    """
    if not math.isfinite(x) or abs(x) > _MAX_AMOUNT:
        raise ValueError(f"amount {x!r} is out of range (at most {_MAX_AMOUNT:g})")
    return round(x * _MILLI) / _MILLI


class Resources(BaseModel):
    """An amount of resources (per replica, per gang, or a capacity); immutable.

    Arithmetic helpers never mutate; :meth:`sub` refuses to go below zero. ``extended`` keeps only
    non-zero entries so two equal amounts compare equal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(default=0.0, ge=0, description="CPU cores (millicore precision)")
    memory: int = Field(default=0, ge=0, description="memory in MiB; accepts '512Mi', '2Gi'")
    gpu: int = Field(default=0, ge=0, description="whole GPUs")
    extended: dict[str, float] = Field(default_factory=dict)

    @field_validator("cpu", mode="after")
    @classmethod
    def _cpu_precision(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("cpu must be finite")
        return _milli(v)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_units(cls, v: Any) -> int:
        return parse_memory(v)

    @field_validator("extended", mode="after")
    @classmethod
    def _extended_names(cls, v: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, amount in sorted(v.items()):
            if name in CORE_RESOURCES:
                raise ValueError(f"{name!r} is a core resource: set it as a field, not in extended")
            if not _RESOURCE_NAME_RE.match(name):
                raise ValueError(f"invalid extended resource name {name!r}")
            if not math.isfinite(amount) or amount < 0:
                raise ValueError(f"extended resource {name!r} must be >= 0, got {amount!r}")
            if amount:
                out[name] = _milli(amount)
        return out

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resources:
        """Build from the canonical flat form ``{"cpu":..,"memory":..,"gpu":..,"<ext>":..}``."""
        core = {k: data[k] for k in CORE_RESOURCES if k in data}
        ext = {k: v for k, v in data.items() if k not in CORE_RESOURCES}
        if "extended" in ext and isinstance(ext["extended"], Mapping):
            ext = {**ext.pop("extended"), **ext}
        return cls.model_validate({**core, "extended": ext})

    @classmethod
    def _make(cls, cpu: float, memory: int, gpu: int, extended: dict[str, float]) -> Resources:
        # Inputs already valid: skip validation but keep the canonical form.
        ext = {k: _milli(v) for k, v in sorted(extended.items()) if _milli(v) != 0}
        return cls.model_construct(cpu=_milli(cpu), memory=memory, gpu=gpu, extended=ext)

    # -- views ----------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, float | int]:
        """Canonical flat form: cpu, memory, gpu always present, then extended names sorted."""
        out: dict[str, float | int] = {"cpu": self.cpu, "memory": self.memory, "gpu": self.gpu}
        out.update(sorted(self.extended.items()))
        return out

    def names(self) -> list[str]:
        """Names of the resources with a non-zero amount."""
        return [k for k, v in self.as_dict().items() if v]

    def get(self, name: str) -> float:
        if name in CORE_RESOURCES:
            return float(getattr(self, name))
        return self.extended.get(name, 0.0)

    def is_zero(self) -> bool:
        return not self.names()

    def __str__(self) -> str:
        parts = [f"cpu={self.cpu:g}", f"memory={self.memory}Mi", f"gpu={self.gpu}"]
        parts += [f"{k}={v:g}" for k, v in self.extended.items()]
        return "{" + ", ".join(parts) + "}"

    # -- arithmetic ---------------------------------------------------------------------------
    def add(self, other: Resources) -> Resources:
        ext = dict(self.extended)
        for k, v in other.extended.items():
            ext[k] = ext.get(k, 0.0) + v
        return Resources._make(
            self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu, ext
        )

    def sub(self, other: Resources) -> Resources:
        """``self - other``; raises ValueError naming the resource that would go negative."""
        short = {k: (self.get(k), v) for k, v in other.as_dict().items() if v > self.get(k) + 1e-9}
        if short:
            detail = ", ".join(f"{k}: {have:g} < {need:g}" for k, (have, need) in short.items())
            raise ValueError(f"cannot subtract more than available ({detail})")
        ext = dict(self.extended)
        for k, v in other.extended.items():
            ext[k] = max(0.0, ext.get(k, 0.0) - v)
        return Resources._make(
            max(0.0, self.cpu - other.cpu), self.memory - other.memory, self.gpu - other.gpu, ext
        )

    def scale(self, factor: float) -> Resources:
        """Multiply every amount by ``factor`` >= 0; memory and gpu round up to whole units."""
        if factor < 0 or not math.isfinite(factor):
            raise ValueError(f"scale factor must be finite and >= 0, got {factor!r}")
        return Resources._make(
            self.cpu * factor,
            math.ceil(self.memory * factor - 1e-9),
            math.ceil(self.gpu * factor - 1e-9),
            {k: v * factor for k, v in self.extended.items()},
        )

    def fits(self, capacity: Resources) -> bool:
        """True when every amount of ``self`` is <= the same amount of ``capacity``."""
        return not self.shortfall(capacity)

    def shortfall(self, capacity: Resources) -> dict[str, tuple[float, float]]:
        """Resources where ``self`` exceeds ``capacity``: ``{name: (needed, available)}``."""
        return {
            k: (float(v), capacity.get(k))
            for k, v in self.as_dict().items()
            if v > capacity.get(k) + 1e-9
        }

    @staticmethod
    def total(items: list[Resources] | tuple[Resources, ...]) -> Resources:
        acc = Resources()
        for r in items:
            acc = acc.add(r)
        return acc


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
    (``"package.module:function"``) with no arguments. ``spark``/``kubernetes``/``dag`` are
    reserved names and rejected for now. ``min_available`` is the gang size (see module doc).
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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError(
                f"invalid job name {v!r}: 1-128 characters, letters, digits, '.', '_', '-', "
                "starting and ending with a letter or digit"
            )
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
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
        if not _NAME_RE.match(v):
            raise ValueError(f"invalid queue name {v!r}")
        return v

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

    @property
    def total_replicas(self) -> int:
        return sum(r.replicas for r in self.replica_specs)

    @property
    def gang_size(self) -> int:
        assert self.min_available is not None  # set by the validator
        return self.min_available

    def replica_list(self) -> list[tuple[str, int, Resources]]:
        """Every replica as ``(role, index, resources)``: master first, workers in listed order.

        ``index`` counts within the role (worker 0, worker 1, ...).
        """
        ordered = sorted(self.replica_specs, key=lambda r: r.role != "master")
        out: list[tuple[str, int, Resources]] = []
        counters: dict[str, int] = {}
        for rs in ordered:
            for _ in range(rs.replicas):
                i = counters.get(rs.role, 0)
                counters[rs.role] = i + 1
                out.append((rs.role, i, rs.resources))
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
