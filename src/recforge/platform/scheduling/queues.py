"""Pending queues: per-queue sorted lists, starving jobs, aging and backoff clocks.

Each queue keeps its non-starving pending jobs sorted by ``(-job priority, effective-size key,
seq)``, where the key ``size + enqueue_time / aging_seconds`` is time-invariant (waiting lowers
a job's effective size by ``waited / aging_seconds``). A job pending since ``t0`` becomes
*starving* at ``t0 + max_wait_seconds`` and moves to its priority level's FIFO of starving jobs.
Jobs evicted with a backoff are *held* until their ``not_before``. The aging policy is the
scheduler's default, overridden per queue by :attr:`Queue.aging_seconds` /
:attr:`Queue.max_wait_seconds`.

:class:`PendingQueues` also tracks which queues are *dirty* (an event may change their outcome)
and which of those are *forced* (their order changed, so the cycle may not skip them).
"""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass, field, replace
from typing import Any

from recforge.platform.model.admission import Admission
from recforge.platform.model.config import Queue
from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import JobSpec

__all__ = ["AgingPolicy", "PendingJob", "PendingQueues", "QueueState"]

Entry = tuple[int, float, int, str]  # (-priority, key, seq, job id)
StarveEntry = tuple[float, int, str]  # (starve time, seq, job id)


@dataclass(frozen=True)
class AgingPolicy:
    """How waiting changes a job's place (see :mod:`recforge.platform.scheduling.cycle`).

    ``aging_seconds``: waiting this long lowers the effective size by 1.0 (a whole-capacity
    share); ``None`` disables size aging. ``max_wait_seconds``: waiting this long makes a job
    starving (FIFO + reservation); ``None`` disables reservations (no bound then).
    """

    aging_seconds: float | None = 600.0
    max_wait_seconds: float | None = 3600.0

    def __post_init__(self) -> None:
        for name in ("aging_seconds", "max_wait_seconds"):
            v = getattr(self, name)
            if v is not None and not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number or None, got {v!r}")

    def for_queue(self, queue: Queue) -> AgingPolicy:
        """This policy with the queue's own settings, where it has any."""
        changes: dict[str, Any] = {}
        if queue.aging_seconds is not None:
            changes["aging_seconds"] = queue.aging_seconds
        if queue.max_wait_seconds is not None:
            changes["max_wait_seconds"] = queue.max_wait_seconds
        return replace(self, **changes) if changes else self


@dataclass
class PendingJob:
    """Everything the scheduler knows about one job (pending, held or admitted)."""

    job_id: str
    spec: JobSpec
    queue: str
    group: str
    seq: int
    submitted: float  # first submission (for reporting)
    enqueued: float  # start of the current wait (aging clock)
    replicas: list[tuple[str, int, Resources]]
    gang_vec: list[int]
    extra_vecs: list[list[int]]
    candidates: list[str]
    size: float = 0.0
    entry: Entry | None = None  # key in its queue's sorted list
    state: str = "pending"  # pending | held | admitted | detached
    starving: bool = False
    reserved_cluster: str | None = None
    not_before: float = 0.0
    admission: Admission | None = None
    admitted_seq: int = 0  # order of admission (preemption takes the newest first)
    evicting: str | None = None  # admitted, chosen as a preemption victim by this job id
    preempting: tuple[str, ...] = ()  # pending: victims whose eviction it waits for
    nominal_on: tuple[str, ...] = ()  # candidates where its gang fits in its group's nominal
    admitted_starving: bool = False  # admitted under the waiting bound: never reclaimed


@dataclass
class QueueState:
    """One queue: its config, aging policy, sorted pending jobs and the cycle's snapshot."""

    queue: Queue
    aging: AgingPolicy
    order: list[Entry] = field(default_factory=list)  # sorted, non-starving
    starving: int = 0  # how many of its pending jobs are starving
    # What its group could get per cluster when its last turn ended blocked: while no cluster
    # offers more than this, every job it tried is still blocked, so the queue can be skipped.
    snapshot: dict[str, list[int]] | None = None
    # The least each resource any job of that blocked turn asked for: while every cluster
    # offers less of some resource, all of them are still blocked.
    window_min: list[int] | None = None
    version: int = 0  # bumped whenever ``order`` changes (keys the cycle's window cache)


class PendingQueues:
    """The pending side of the scheduler: queues, starving FIFOs, aging and backoff heaps."""

    def __init__(self, aging: AgingPolicy) -> None:
        self.aging = aging
        self.queues: dict[str, QueueState] = {}
        self.starving: dict[int, list[StarveEntry]] = {}  # per priority level, FIFO
        self._aging_heap: list[tuple[float, int, str]] = []  # (starve_at, seq, id), lazy
        self._held_heap: list[tuple[float, int, str]] = []  # (not_before, seq, id), lazy
        self.dirty: set[str] = set()  # queues to try in the next pass
        self.force: set[str] = set()  # ...whose order changed (no snapshot skip)
        # cluster -> group -> [pending jobs, summed gang vector] over pending jobs (not held)
        # whose gang fits in their group's nominal quota on that cluster: the quota a group's
        # own pending jobs need there (see :mod:`.borrowing`).
        self.demand: dict[str, dict[str, list[Any]]] = {}
        self.demand_changes = 0  # bumped whenever :attr:`demand` changes

    def add(self, queue: Queue) -> None:
        self.queues[queue.name] = QueueState(queue, self.aging.for_queue(queue))
        self.mark(queue.name, force=True)

    def mark(self, queue: str, *, force: bool = False) -> None:
        self.dirty.add(queue)
        if force:
            self.force.add(queue)

    def levels(self) -> list[int]:
        """Queue priority levels, highest first."""
        return sorted({qs.queue.priority for qs in self.queues.values()}, reverse=True)

    # -- keys -----------------------------------------------------------------------------------
    def entry(self, job: PendingJob) -> Entry:
        key = job.size
        aging_s = self.queues[job.queue].aging.aging_seconds
        if aging_s is not None:
            key += job.enqueued / aging_s
        return (-job.spec.priority, key, job.seq, job.job_id)

    def starve_entry(self, job: PendingJob) -> StarveEntry:
        max_wait = self.queues[job.queue].aging.max_wait_seconds
        assert max_wait is not None
        return (job.enqueued + max_wait, job.seq, job.job_id)

    # -- moves ----------------------------------------------------------------------------------
    def enqueue(self, job: PendingJob, now: float) -> None:
        """Put ``job`` at its place in its queue with a fresh aging clock starting ``now``."""
        job.state = "pending"
        job.enqueued = now
        job.starving = False
        qs = self.queues[job.queue]
        job.entry = self.entry(job)
        bisect.insort(qs.order, job.entry)
        qs.window_min = None
        qs.version += 1
        self._count_demand(job, +1)
        if qs.aging.max_wait_seconds is not None:
            heapq.heappush(self._aging_heap, (now + qs.aging.max_wait_seconds, job.seq, job.job_id))
        self.mark(job.queue, force=True)

    def hold(self, job: PendingJob, until: float) -> None:
        """Keep ``job`` out of its queue until ``until`` (a backoff)."""
        job.state = "held"
        job.not_before = until
        heapq.heappush(self._held_heap, (until, job.seq, job.job_id))

    def reindex(self, job: PendingJob) -> None:
        """Re-sort a non-starving pending job whose size changed."""
        if job.entry is None:
            return
        qs = self.queues[job.queue]
        sorted_remove(qs.order, job.entry)
        job.entry = self.entry(job)
        bisect.insort(qs.order, job.entry)
        qs.window_min = None
        qs.version += 1

    def take_out(self, job: PendingJob, *, in_pass: bool) -> bool:
        """Remove a pending job from its queue (admitted, cancelled, ...); True if it was
        starving. ``in_pass``: the cycle admitted it (its queue is already being tried)."""
        qs = self.queues[job.queue]
        was_starving = job.starving
        if job.starving:
            sorted_remove(self.starving[qs.queue.priority], self.starve_entry(job))
            qs.starving -= 1
        elif job.entry is not None:
            sorted_remove(qs.order, job.entry)
            # The window moved up: a job never tried (perhaps smaller) may be in it now.
            qs.window_min = None
            qs.version += 1
            if not in_pass:  # a job left its queue's window outside a pass
                self.mark(job.queue, force=True)
        job.entry = None
        job.starving = False
        self._count_demand(job, -1)
        return was_starving

    def _count_demand(self, job: PendingJob, sign: int) -> None:
        self.demand_changes += 1
        for c in job.nominal_on:
            slot = self.demand.setdefault(c, {}).get(job.group)
            if slot is None:
                slot = self.demand[c][job.group] = [0, [0] * len(job.gang_vec)]
            slot[0] += sign
            vec = slot[1]
            for i, x in enumerate(job.gang_vec):
                vec[i] += sign * x

    def recount_demand(self, jobs: dict[str, PendingJob]) -> None:
        """Recompute :attr:`demand` from scratch (vectors or nominal clusters changed)."""
        self.demand = {}
        for job in jobs.values():
            if job.state == "pending":
                self._count_demand(job, +1)

    def advance(self, now: float, jobs: dict[str, PendingJob]) -> None:
        """Release held jobs whose backoff ended and move jobs that waited too long to the
        starving FIFO of their priority level."""
        while self._held_heap and self._held_heap[0][0] <= now:
            t, seq, job_id = heapq.heappop(self._held_heap)
            job = jobs.get(job_id)
            if job is not None and job.state == "held" and job.seq == seq:
                self.enqueue(job, t)
        while self._aging_heap and self._aging_heap[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._aging_heap)
            job = jobs.get(job_id)
            if job is None or job.state != "pending" or job.seq != seq or job.starving:
                continue
            qs = self.queues[job.queue]
            assert job.entry is not None
            sorted_remove(qs.order, job.entry)
            qs.window_min = None
            qs.version += 1
            job.entry = None
            job.starving = True
            qs.starving += 1
            level = self.starving.setdefault(qs.queue.priority, [])
            bisect.insort(level, self.starve_entry(job))
            self.mark(job.queue, force=True)

    def next_event_time(self, jobs: dict[str, PendingJob]) -> float | None:
        """When the next time-driven change happens (a job starts starving or leaves backoff)."""
        times = []
        while self._aging_heap:
            t, seq, job_id = self._aging_heap[0]
            job = jobs.get(job_id)
            if job is not None and job.state == "pending" and job.seq == seq and not job.starving:
                times.append(t)
                break
            heapq.heappop(self._aging_heap)
        while self._held_heap:
            t, seq, job_id = self._held_heap[0]
            job = jobs.get(job_id)
            if job is not None and job.state == "held" and job.seq == seq:
                times.append(t)
                break
            heapq.heappop(self._held_heap)
        return min(times) if times else None

    # -- views ----------------------------------------------------------------------------------
    def starving_of(self, qs: QueueState, jobs: dict[str, PendingJob]) -> list[StarveEntry]:
        if not qs.starving:
            return []
        level = self.starving.get(qs.queue.priority, [])
        return [e for e in level if jobs[e[2]].queue == qs.queue.name]

    def ordered(self, queue: str, jobs: dict[str, PendingJob]) -> list[str]:
        """Pending job ids of one queue in scheduling order (starving first)."""
        qs = self.queues[queue]
        return [e[2] for e in self.starving_of(qs, jobs)] + [e[3] for e in qs.order]


def sorted_remove(lst: list[Any], item: object) -> None:
    i = bisect.bisect_left(lst, item)
    if i < len(lst) and lst[i] == item:
        del lst[i]
    else:  # pragma: no cover - would mean corrupted bookkeeping
        raise AssertionError(f"entry {item!r} not found")
