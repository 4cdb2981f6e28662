"""A job that names a ``cluster_type`` runs only on clusters of that type."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recforge.platform.model.config import Cluster
from recforge.platform.scheduling.quota import QuotaBook

if TYPE_CHECKING:
    from recforge.platform.scheduling.checks import JobShape


class ClusterTypeCheck:
    def __call__(self, book: QuotaBook, cluster: Cluster, job: JobShape) -> str | None:
        wanted = job.spec.cluster_type
        if wanted is not None and cluster.type != wanted:
            return f"type {cluster.type!r} is not the requested {wanted!r}"
        return None
