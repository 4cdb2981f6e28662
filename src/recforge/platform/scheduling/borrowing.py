"""A group lends only the quota its own pending jobs do not need (Kueue's borrowing rule).

Without this rule, a job that borrows a lender's idle nominal quota is preempted as soon as one
of the lender's pending jobs reclaims it; requeued after its backoff it borrows the same quota
again and is preempted again. On ``benchmarks/bench_scheduler.py`` that was a preemption storm:
108,707 preemptions for 10,000 jobs. Kueue avoids it the same way: a workload may not borrow
from a cohort member whose own pending workloads need that quota.

The rule, per cluster ``c``: a job of group ``g`` whose admission there would borrow (take ``g``
beyond its nominal quota on ``c``, gang or elastic extras) is admitted there only if no other
group ``h`` with *nominal demand* on ``c`` loses, through this admission, availability that
demand needs. The nominal demand of ``h`` on ``c`` is the summed gangs of ``h``'s pending jobs
(jobs held in backoff excluded) that may run on ``c`` and fit within ``h``'s nominal quota there,
whatever ``h`` uses now (its running jobs end; those jobs would reclaim then). What it needs is,
per resource, ``min(unused nominal of h, that demand)``; the admission is refused when it lowers
what ``h`` could take below that in some resource. Admissions within a group's own nominal quota
are never held back, and nothing here preempts.

The demand is kept by :class:`~recforge.platform.scheduling.queues.PendingQueues` (updated on
enqueue and take-out), and what a lender could take after the admission is computed by
:meth:`~recforge.platform.scheduling.quota.QuotaBook.available_after_vec` without reserving, so
a check costs a few vector operations per lender, not a scan of the pending jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from recforge.platform.scheduling.queues import PendingQueues
from recforge.platform.scheduling.quota import QuotaBook

__all__ = ["LenderNeed", "LenderNeeds", "lender_in_need"]


@dataclass(frozen=True)
class LenderNeed:
    """Why a borrowing admission is held back: whose pending jobs need the quota, and which
    resources."""

    group: str
    pending_jobs: int
    resources: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"borrowing there would take {', '.join(self.resources)} that group {self.group!r} "
            f"needs for its own {self.pending_jobs} pending job(s) (a group lends only quota its "
            "pending jobs do not need)"
        )


def lender_in_need(
    book: QuotaBook,
    demand: Mapping[str, Mapping[str, list[Any]]],
    group: str,
    cluster: str,
    total: list[int],
) -> LenderNeed | None:
    """The first other group whose pending jobs need quota that admitting ``total`` for
    ``group`` on ``cluster`` (a borrowing admission) would take, or None when it may borrow."""
    return _first_short(book, _needs(book, demand, cluster), group, cluster, total)


class LenderNeeds:
    """:func:`lender_in_need` for the scheduling cycle: each cluster's lenders (their need and
    availability) are computed once and reused while usage on that cluster and the pending
    demand are unchanged."""

    def __init__(self, book: QuotaBook, queues: PendingQueues) -> None:
        self._book = book
        self._queues = queues
        # cluster -> (key, its lenders, verdicts so far per (group, request))
        self._cache: dict[str, tuple[tuple[int, int], list[_Lender], dict[Any, Any]]] = {}

    def __call__(self, group: str, cluster: str, total: list[int]) -> LenderNeed | None:
        key = (self._book.cluster_version(cluster), self._queues.demand_changes)
        hit = self._cache.get(cluster)
        if hit is None or hit[0] != key:
            hit = (key, _needs(self._book, self._queues.demand, cluster), {})
            self._cache[cluster] = hit
        ask = (group, tuple(total))
        verdicts = hit[2]
        if ask not in verdicts:
            verdicts[ask] = _first_short(self._book, hit[1], group, cluster, total)
        return verdicts[ask]  # type: ignore[no-any-return]


_Lender = tuple[str, int, list[int], list[int]]  # group, pending jobs, need, availability


def _needs(
    book: QuotaBook, demand: Mapping[str, Mapping[str, list[Any]]], cluster: str
) -> list[_Lender]:
    """The groups with pending demand on ``cluster`` that need some of their unused nominal
    quota there, in the demand's order."""
    out = []
    for h, (count, vec) in demand.get(cluster, {}).items():
        if count <= 0:
            continue
        unused = book.unused_nominal_vec(h, cluster)
        need = [u if u < d else d for u, d in zip(unused, vec, strict=True)]
        if any(n > 0 for n in need):
            out.append((h, count, need, book.available_vec(h, cluster)))
    return out


def _first_short(
    book: QuotaBook, lenders: list[_Lender], group: str, cluster: str, total: list[int]
) -> LenderNeed | None:
    for h, count, need, before in lenders:
        if h == group:
            continue
        after: list[int] | None = None
        short: list[str] = []
        for i, n in enumerate(need):
            if n <= 0 or not total[i] or before[i] - total[i] >= n:
                continue  # (another group's reservation of x lowers h's availability by <= x)
            if after is None:
                after = book.available_after_vec(h, cluster, group, total)
            if after[i] < before[i] and after[i] < n:
                short.append(book.dims[i])
        if short:
            return LenderNeed(h, count, tuple(short))
    return None
