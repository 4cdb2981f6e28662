"""Resource amounts: cores, MiB of memory, GPUs, pods and named extended resources (pure data).

Units: ``cpu`` in cores with a precision of one millicore, ``memory`` in MiB (strings such as
``"512Mi"``, ``"2Gi"`` or ``"1.5Gi"`` are accepted; a bare number means MiB), ``gpu`` a whole
count, ``pods`` a whole count of replicas, ``extended`` named resources (e.g. ``"fpga"``) as
non-negative amounts.

``pods`` is how the platform bounds the number of processes: every replica counts exactly one pod
(Kueue counts pods the same way), a cluster's capacity has a number of pods (110 per node when not
given, Kubernetes' default per-node limit) and group quotas limit them like any other resource.
Users never write ``pods`` in a replica's resources; :meth:`~recforge.platform.model.specs.JobSpec.
replica_list` adds it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["CORE_RESOURCES", "DEFAULT_PODS_PER_NODE", "Resources", "parse_memory"]

CORE_RESOURCES: tuple[str, ...] = ("cpu", "memory", "gpu", "pods")
DEFAULT_PODS_PER_NODE = 110

_MILLI = 1000
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i)?B?\s*$")
_MEMORY_FACTOR_MIB = {None: 1.0, "Ki": 1.0 / 1024, "Mi": 1.0, "Gi": 1024.0, "Ti": 1024.0**2}
_RESOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$")


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
    pods: int = Field(
        default=0, ge=0, description="replicas; each replica counts one (set by the platform)"
    )
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
        """Build from the canonical flat form ``{"cpu", "memory", "gpu", "pods", "<ext>"...}``."""
        core = {k: data[k] for k in CORE_RESOURCES if k in data}
        ext = {k: v for k, v in data.items() if k not in CORE_RESOURCES}
        if "extended" in ext and isinstance(ext["extended"], Mapping):
            ext = {**ext.pop("extended"), **ext}
        return cls.model_validate({**core, "extended": ext})

    @classmethod
    def _make(
        cls, cpu: float, memory: int, gpu: int, pods: int, extended: dict[str, float]
    ) -> Resources:
        # Inputs already valid: skip validation but keep the canonical form.
        ext = {k: _milli(v) for k, v in sorted(extended.items()) if _milli(v) != 0}
        return cls.model_construct(
            cpu=_milli(cpu), memory=memory, gpu=gpu, pods=pods, extended=ext
        )

    # -- views ----------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, float | int]:
        """Canonical flat form: cpu, memory, gpu, pods always present, then extended names
        sorted."""
        out: dict[str, float | int] = {
            "cpu": self.cpu, "memory": self.memory, "gpu": self.gpu, "pods": self.pods
        }
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
        if self.pods:
            parts.append(f"pods={self.pods}")
        parts += [f"{k}={v:g}" for k, v in self.extended.items()]
        return "{" + ", ".join(parts) + "}"

    # -- arithmetic ---------------------------------------------------------------------------
    def add(self, other: Resources) -> Resources:
        ext = dict(self.extended)
        for k, v in other.extended.items():
            ext[k] = ext.get(k, 0.0) + v
        return Resources._make(
            self.cpu + other.cpu,
            self.memory + other.memory,
            self.gpu + other.gpu,
            self.pods + other.pods,
            ext,
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
            max(0.0, self.cpu - other.cpu),
            self.memory - other.memory,
            self.gpu - other.gpu,
            self.pods - other.pods,
            ext,
        )

    def scale(self, factor: float) -> Resources:
        """Multiply every amount by ``factor`` >= 0; memory, gpu and pods round up to whole
        units."""
        if factor < 0 or not math.isfinite(factor):
            raise ValueError(f"scale factor must be finite and >= 0, got {factor!r}")
        return Resources._make(
            self.cpu * factor,
            math.ceil(self.memory * factor - 1e-9),
            math.ceil(self.gpu * factor - 1e-9),
            math.ceil(self.pods * factor - 1e-9),
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
