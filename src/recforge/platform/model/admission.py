"""An admission: the scheduler's decision to run a job's replicas on one cluster (pure data).

The service stores it with the job (:func:`admission_to_json`) so that a restarted service can
re-install the reservation (:func:`admission_from_json`) and backends know what to launch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recforge.platform.model.resources import Resources

__all__ = ["Admission", "ReplicaSlot", "admission_from_json", "admission_to_json"]


@dataclass(frozen=True)
class ReplicaSlot:
    """One admitted replica: its role, index within the role, and reserved resources."""

    role: str
    index: int
    resources: Resources


@dataclass(frozen=True)
class Admission:
    """A decision: launch ``replicas`` of ``job_id`` on ``cluster`` (quota already reserved)."""

    job_id: str
    cluster: str
    cluster_type: str
    queue: str
    group: str
    replicas: tuple[ReplicaSlot, ...]  # the gang first, then admitted elastic extras
    gang_size: int
    total: Resources
    waited_seconds: float


def admission_to_json(a: Admission) -> dict[str, Any]:
    """The JSON stored in ``jobs.admission``."""
    return {
        "cluster": a.cluster,
        "cluster_type": a.cluster_type,
        "queue": a.queue,
        "group": a.group,
        "gang_size": a.gang_size,
        "replicas": [
            {"role": r.role, "index": r.index, "resources": r.resources.as_dict()}
            for r in a.replicas
        ],
        "total": a.total.as_dict(),
        "waited_seconds": a.waited_seconds,
    }


def admission_from_json(job_id: int | str, d: Mapping[str, Any]) -> Admission:
    """Inverse of :func:`admission_to_json`."""
    return Admission(
        job_id=str(job_id),
        cluster=d["cluster"],
        cluster_type=d["cluster_type"],
        queue=d["queue"],
        group=d["group"],
        replicas=tuple(
            ReplicaSlot(r["role"], r["index"], Resources.from_dict(r["resources"]))
            for r in d["replicas"]
        ),
        gang_size=d["gang_size"],
        total=Resources.from_dict(d["total"]),
        waited_seconds=d.get("waited_seconds", 0.0),
    )
