"""Anomalies that monitoring flagged on running replicas (one row per episode)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from recforge.platform.store.engine import StoreBase
from recforge.platform.store.tables import anomalies_t

__all__ = ["AnomalyRecord", "AnomalyStore"]


@dataclass(frozen=True)
class AnomalyRecord:
    """One flagged anomaly: which replica of which attempt, what kind, the measured value."""

    id: int
    job_id: int
    attempt: int
    replica: int
    kind: str  # "memory", "heartbeat_jitter", "no_output"
    value: float | None
    message: str
    at: float


class AnomalyStore(StoreBase):
    def add_anomaly(self, job_id: int, attempt: int, replica: int, kind: str, message: str,
                    value: float | None = None) -> int:  # fmt: skip
        with self._write() as conn:
            res = conn.execute(anomalies_t.insert(), {
                "job_id": job_id, "attempt": attempt, "replica": replica, "kind": kind,
                "value": value, "message": message, "at": self.clock(),
            })  # fmt: skip
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def anomalies(self, job_id: int, limit: int = 1000) -> list[AnomalyRecord]:
        """The job's anomalies, oldest first (the newest ``limit``)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(anomalies_t).where(anomalies_t.c.job_id == job_id)
                .order_by(anomalies_t.c.id.desc()).limit(limit)
            ).all()  # fmt: skip
        return [AnomalyRecord(int(r.id), int(r.job_id), int(r.attempt), int(r.replica),
                              str(r.kind), None if r.value is None else float(r.value),
                              str(r.message), float(r.at))
                for r in reversed(rows)]  # fmt: skip
