"""Which clusters a job could ever run on: the feasibility checks of :mod:`.checks`, in order."""

from __future__ import annotations

from collections.abc import Sequence

from recforge.platform.scheduling.checks import FeasibilityCheck, JobShape
from recforge.platform.scheduling.errors import InfeasibleJob
from recforge.platform.scheduling.quota import QuotaBook

__all__ = ["feasible_clusters"]


def feasible_clusters(
    book: QuotaBook, checks: Sequence[FeasibilityCheck], job: JobShape
) -> list[str]:
    """Clusters (in configuration order) no check objects to; :class:`InfeasibleJob` with
    every cluster's first objection when there is none."""
    reasons: dict[str, str] = {}
    ok: list[str] = []
    for name, cluster in book.clusters.items():
        for check in checks:
            why = check(book, cluster, job)
            if why is not None:
                reasons[name] = why
                break
        else:
            ok.append(name)
    if not ok:
        raise InfeasibleJob(job.job_id, reasons)
    return ok
