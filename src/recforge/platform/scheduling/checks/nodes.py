"""A cluster that lists its nodes must be able to pack the gang onto them when idle.

First-fit decreasing packing is a sufficient test, not an exact one; level 2 may still find a
placement FFD misses, so this only fails when a single replica fits on no node or FFD fails
(documented as conservative).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recforge.platform.model.config import Cluster
from recforge.platform.scheduling.quota import QuotaBook

if TYPE_CHECKING:
    from recforge.platform.scheduling.checks import JobShape


class NodePackingCheck:
    def __call__(self, book: QuotaBook, cluster: Cluster, job: JobShape) -> str | None:
        if not cluster.nodes:
            return None
        nodes = [book.vec(n) for n in cluster.nodes]
        vecs = [(book.vec(r), role, idx) for role, idx, r in job.gang]
        for v, role, idx in vecs:
            if not any(all(x <= y for x, y in zip(v, n, strict=True)) for n in nodes):
                return f"{role} {idx} needs {book.to_resources(v)}, more than any node has"
        cap = book.cluster_cap_vec(cluster.name)
        free = [list(n) for n in nodes]

        def weight(item: tuple[list[int], str, int]) -> float:
            return max((x / t for x, t in zip(item[0], cap, strict=True) if t), default=0.0)

        for v, role, idx in sorted(vecs, key=weight, reverse=True):
            for f in free:
                if all(x <= y for x, y in zip(v, f, strict=True)):
                    for i, x in enumerate(v):
                        f[i] -= x
                    break
            else:
                return f"the gang cannot be packed onto the nodes ({role} {idx} left over)"
        return None
