"""What the scheduler holds right now, per queue and per (group, cluster): pending jobs in
scheduling order, held and admitted counts, quota usage and cluster capacity. Read-only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from recforge.platform.model.resources import Resources

if TYPE_CHECKING:
    from recforge.platform.scheduling.cycle import Scheduler

__all__ = ["ClusterUsage", "Overview", "QueueView", "overview"]


@dataclass(frozen=True)
class QueueView:
    """One queue: its pending job ids in scheduling order (starving first), how many jobs wait
    out a backoff (held) and how many are admitted."""

    name: str
    group: str
    pending: tuple[str, ...]
    held: int
    admitted: int


@dataclass(frozen=True)
class ClusterUsage:
    """One cluster's capacity and what is free, and what each group with a quota there uses."""

    cluster: str
    capacity: Resources
    free: Resources
    used_by_group: dict[str, Resources]


@dataclass(frozen=True)
class Overview:
    queues: tuple[QueueView, ...]
    clusters: tuple[ClusterUsage, ...]


def overview(s: Scheduler) -> Overview:
    """The scheduler's queues and quota book as plain data (call under the scheduler's lock)."""
    held: dict[str, int] = {}
    admitted: dict[str, int] = {}
    for job in s._jobs.values():
        if job.state == "held":
            held[job.queue] = held.get(job.queue, 0) + 1
        elif job.state == "admitted":
            admitted[job.queue] = admitted.get(job.queue, 0) + 1
    queues = tuple(
        QueueView(name, qs.queue.group, tuple(s.pending(name)), held.get(name, 0),
                  admitted.get(name, 0))
        for name, qs in sorted(s._queues.queues.items())
    )
    book = s.book
    clusters = tuple(
        ClusterUsage(
            name,
            book.to_resources(book.cluster_cap_vec(name)),
            book.cluster_free(name),
            {g: book.usage(g, name) for g in sorted(book.groups) if book.has_quota(g, name)},
        )
        for name in sorted(book.clusters)
    )
    return Overview(queues, clusters)
