"""Errors of the scheduling layer (all but :class:`UnknownJob` are :class:`QuotaError`)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["InfeasibleJob", "QuotaError", "UnknownJob", "UnknownQueue", "UnknownResource"]


class QuotaError(ValueError):
    """A reservation or a request violates quotas or capacity, or names unknown things."""


class UnknownResource(QuotaError):
    """A request names a resource that no cluster has."""


class UnknownQueue(QuotaError):
    """A job names a queue that is not configured."""


class InfeasibleJob(QuotaError):
    """A job can never run: too big for every cluster (or quota) it may use."""

    def __init__(self, job_id: str, reasons: Mapping[str, str]):
        self.job_id = job_id
        self.reasons = dict(reasons)
        detail = "; ".join(f"{c}: {r}" for c, r in self.reasons.items()) or "no cluster"
        super().__init__(f"job {job_id!r} can never be admitted: {detail}")


class UnknownJob(KeyError):
    """An operation names a job the scheduler does not know (or not in the needed state)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown job"
