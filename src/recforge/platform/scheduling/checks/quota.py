"""The job's group needs a quota on the cluster that could ever hold the whole gang."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recforge.platform.model.config import Cluster
from recforge.platform.scheduling.quota import QuotaBook

if TYPE_CHECKING:
    from recforge.platform.scheduling.checks import JobShape


class QuotaReachCheck:
    def __call__(self, book: QuotaBook, cluster: Cluster, job: JobShape) -> str | None:
        if not book.has_quota(job.group, cluster.name):
            return f"group {job.group!r} has no quota here"
        limit = book.max_possible_vec(job.group, cluster.name)
        over = [
            f"{d} {book.amount(i, job.gang_vec[i]):g} > {book.amount(i, limit[i]):g}"
            for i, d in enumerate(book.dims)
            if job.gang_vec[i] > limit[i]
        ]
        if over:
            return f"gang needs more than group {job.group!r} can ever get here ({', '.join(over)})"
        return None
