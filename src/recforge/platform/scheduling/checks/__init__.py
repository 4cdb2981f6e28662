"""Feasibility checks: can a job ever run on a cluster? One file per rule.

A check answers, for one job and one cluster, ``None`` (no objection) or the reason it can never
run there. :func:`recforge.platform.scheduling.feasibility.feasible_clusters` runs them in order
at submission; a job with no cluster left is refused with every reason. A new admission rule is a
new module here with a class that follows :class:`FeasibilityCheck`, added to
:data:`DEFAULT_CHECKS` (or passed to :class:`~recforge.platform.scheduling.cycle.Scheduler`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from recforge.platform.model.config import Cluster
from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import JobSpec
from recforge.platform.scheduling.checks.cluster_type import ClusterTypeCheck
from recforge.platform.scheduling.checks.nodes import NodePackingCheck
from recforge.platform.scheduling.checks.quota import QuotaReachCheck
from recforge.platform.scheduling.quota import QuotaBook

__all__ = ["DEFAULT_CHECKS", "FeasibilityCheck", "JobShape"]


@dataclass(frozen=True)
class JobShape:
    """What a check may look at: the spec, its group, its gang's replicas and demand vector."""

    job_id: str
    spec: JobSpec
    group: str
    gang: list[tuple[str, int, Resources]]  # (role, index, resources incl. the pod)
    gang_vec: list[int]


class FeasibilityCheck(Protocol):
    """One rule: ``None`` if ``job`` may run on ``cluster`` some day, else why never."""

    def __call__(self, book: QuotaBook, cluster: Cluster, job: JobShape) -> str | None: ...


DEFAULT_CHECKS: tuple[FeasibilityCheck, ...] = (
    ClusterTypeCheck(),
    QuotaReachCheck(),
    NodePackingCheck(),
)
