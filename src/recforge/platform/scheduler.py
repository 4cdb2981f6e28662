"""Level-1 scheduling: gang admission of pending jobs onto clusters within group quotas.

The scheduler is pure and event-driven: the service feeds it events (``submit``, ``on_finished``,
``evict``, ``remove``, ``add_cluster``) and calls :meth:`Scheduler.schedule` to get
:class:`Admission` decisions. Level 2 (placing replicas on nodes) belongs to the backend.

Gang admission
    A job is admitted only when its whole gang (the first ``min_available`` replicas, see
    :mod:`recforge.platform.specs`) fits in ONE cluster within its group's quota
    (:class:`~recforge.platform.resources.QuotaBook`); the gang is reserved atomically, nothing
    partial is ever reserved. Replicas beyond ``min_available`` are elastic extras: at admission
    they are added one by one, in order, while they still fit on the same cluster; extras that do
    not fit are dropped for this run (never added later). The admission lists exactly the replicas
    to launch.

Order of a pass
    1. Queue priority is strict: all queues of a higher priority go first.
    2. Within one priority, *starving* jobs (see aging) go first, FIFO by when they started to
       starve.
    3. Then queues take turns by weighted dominant-resource fairness: the queue whose group has
       the lowest ``dominant share / queue weight`` goes next (shares over the total capacity of
       all clusters, recomputed after every admission).
    4. Within a queue: job ``priority`` (higher first), then the smallest *effective size* first,
       then submission order. Size is the gang's dominant share of the total capacity;
       effective size = size - waited_seconds / aging_seconds, so waiting lets a big job pass
       smaller, younger ones (the key is time-invariant: size + enqueue_time / aging_seconds).

    A queue whose head does not fit gets ``backfill_lookahead`` more tries further down; then the
    queue is done for this pass. A cluster is chosen among those that fit the gang: first one
    where the group stays within its nominal quota (no borrowing), else the first that fits, in
    the order clusters were configured.

Aging bound (starvation freedom)
    A job pending since ``t0`` (submission, or re-entry after an eviction) becomes starving at
    ``t0 + max_wait_seconds``. The first ``max_reservations`` starving jobs of a priority level
    each hold a *reservation*: every pass, before any non-starving job of that priority or lower
    is tried (and after starving jobs ahead of it), the job is admitted if it fits anywhere;
    otherwise it claims, on one sticky cluster, every part of its gang that is available to its
    group now, and no job tried later in the pass may use claimed amounts. Therefore no job of
    the same or lower priority that is admitted after the job started starving takes anything it
    needs (backfill of jobs using only unclaimed amounts is allowed: it cannot delay it), and the
    job is admitted at the first pass after the jobs already running (plus starving jobs ahead of
    it and jobs of higher-priority queues) release enough. Concretely: with no higher-priority
    load, no other starving job ahead, and running jobs that each end within ``R`` seconds, a
    job that can run on an idle cluster is admitted by ``t0 + max_wait_seconds + R`` provided
    :meth:`~Scheduler.schedule` runs after each release. Starving jobs past the first
    ``max_reservations`` keep their FIFO place and get the guarantee once they move up.

Event-driven
    Pending jobs live in per-queue sorted lists; a pass only tries queues marked *dirty* by an
    event that can change their outcome (a submission to the queue, capacity released on a
    cluster their group can use, a new cluster, a job starting to starve). ``schedule`` with no
    new event does no work. A dirty queue whose last turn ended blocked is skipped when no
    cluster offers its group more of any resource than at that turn (its jobs would all be
    blocked again), and within a pass a gang shape that did not fit for a group is not checked
    again (capacity only shrinks during a pass). Both shortcuts leave every decision unchanged
    (tested against a scheduler without them). Everything is deterministic given the same
    sequence of calls.

Infeasible jobs are rejected at :meth:`Scheduler.submit` with :class:`InfeasibleJob` (the reason
names, per cluster, why it can never run there), unknown queues with :class:`UnknownQueue`, and
unknown resource names with :class:`~recforge.platform.resources.UnknownResource`.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from recforge.platform.resources import (
    Cluster,
    Group,
    GroupQuota,
    PlatformConfig,
    Queue,
    QuotaBook,
    QuotaError,
    Shortage,
)
from recforge.platform.specs import JobSpec, Resources

__all__ = [
    "Admission",
    "AgingPolicy",
    "ClusterVerdict",
    "Explanation",
    "InfeasibleJob",
    "ReplicaSlot",
    "Scheduler",
    "SchedulerStats",
    "UnknownJob",
    "UnknownQueue",
]

_CLAIM = "\x00claim:"  # reservation keys of claims; cannot collide with job ids given by users


class InfeasibleJob(QuotaError):
    """A job can never run: too big for every cluster (or quota) it may use."""

    def __init__(self, job_id: str, reasons: Mapping[str, str]):
        self.job_id = job_id
        self.reasons = dict(reasons)
        detail = "; ".join(f"{c}: {r}" for c, r in self.reasons.items()) or "no cluster"
        super().__init__(f"job {job_id!r} can never be admitted: {detail}")


class UnknownQueue(QuotaError):
    """A job names a queue that is not configured."""


class UnknownJob(KeyError):
    """An operation names a job the scheduler does not know (or not in the needed state)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown job"


@dataclass(frozen=True)
class AgingPolicy:
    """How waiting changes a job's place (see the module docstring for the bound).

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


@dataclass(frozen=True)
class ReplicaSlot:
    """One admitted replica: its role, index within the role, and reserved resources."""

    role: str
    index: int
    resources: Resources


@dataclass(frozen=True)
class Admission:
    """A decision: launch ``replicas`` of ``job_id`` on ``cluster`` (quota already reserved)."""

    job_id: str
    cluster: str
    cluster_type: str
    queue: str
    group: str
    replicas: tuple[ReplicaSlot, ...]  # the gang first, then admitted elastic extras
    gang_size: int
    total: Resources
    waited_seconds: float


@dataclass(frozen=True)
class ClusterVerdict:
    """How one candidate cluster looks for a pending job right now."""

    cluster: str
    fits_now: bool
    shortages: tuple[Shortage, ...]
    claimed_by: tuple[str, ...] = ()  # starving jobs holding a reservation there (last pass)


@dataclass(frozen=True)
class Explanation:
    """Answer to "why is job X pending?" (or where it runs)."""

    job_id: str
    state: str  # "pending" | "held" | "admitted"
    queue: str
    group: str
    position: int | None  # 1-based place in its queue's order (pending only)
    queue_length: int
    waited_seconds: float
    size: float
    effective_size: float
    starving: bool
    starving_in_seconds: float | None
    reserved_cluster: str | None
    clusters: tuple[ClusterVerdict, ...]
    message: str


@dataclass
class SchedulerStats:
    """Counters that show how much work passes do (for tests and benchmarks)."""

    passes: int = 0
    idle_passes: int = 0  # schedule() calls that returned at once: no event since the last pass
    tries: int = 0  # gang fit checks (each over the candidate clusters)
    skipped_queues: int = 0  # dirty queues skipped: no cluster offered them more than before
    admissions: int = 0


@dataclass
class _Job:
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
    entry: tuple[int, float, int, str] | None = None  # key in its queue's sorted list
    state: str = "pending"  # pending | held | admitted
    starving: bool = False
    reserved_cluster: str | None = None
    not_before: float = 0.0
    admission: Admission | None = None


class _Plan(NamedTuple):
    group: str
    replicas: list[tuple[str, int, Resources]]
    gang_vec: list[int]
    extra_vecs: list[list[int]]
    candidates: list[str]


@dataclass
class _QueueState:
    queue: Queue
    order: list[tuple[int, float, int, str]] = field(default_factory=list)  # sorted, non-starving
    starving: int = 0  # how many of its pending jobs are starving
    # What its group could get per cluster when its last turn ended blocked: while no cluster
    # offers more than this, every job it tried is still blocked, so the queue can be skipped.
    snapshot: dict[str, list[int]] | None = None


class Scheduler:
    """Level-1 gang admission over several clusters with group quotas (see module docstring)."""

    def __init__(
        self,
        config: PlatformConfig | None = None,
        *,
        clusters: Iterable[Cluster] = (),
        groups: Iterable[Group] = (),
        queues: Iterable[Queue] = (),
        aging: AgingPolicy | None = None,
        backfill_lookahead: int = 8,
        max_reservations: int = 16,
    ):
        if config is not None:
            clusters, groups, queues = config.clusters, config.groups, config.queues
        if backfill_lookahead < 0:
            raise ValueError(f"backfill_lookahead must be >= 0, got {backfill_lookahead}")
        if max_reservations < 1:
            raise ValueError(f"max_reservations must be >= 1, got {max_reservations}")
        self.aging = aging or AgingPolicy()
        self.backfill_lookahead = backfill_lookahead
        self.max_reservations = max_reservations
        self.book = QuotaBook(clusters, groups)
        self._queues: dict[str, _QueueState] = {}
        for q in queues:
            self.add_queue(q)
        self._jobs: dict[str, _Job] = {}
        self._seq = 0
        # Starving jobs per priority level, FIFO by (starve time, seq).
        self._starving: dict[int, list[tuple[float, int, str]]] = {}
        self._aging_heap: list[tuple[float, int, str]] = []  # (starve_at, seq, id), lazy
        self._held_heap: list[tuple[float, int, str]] = []  # (not_before, seq, id), lazy
        self._dirty: set[str] = set(self._queues)  # queues to try in the next pass
        self._force: set[str] = set(self._queues)  # ...whose order changed (no snapshot skip)
        self._last_claims: dict[str, list[str]] = {}  # cluster -> starving job ids, last pass
        self._pass_claims: dict[str, list[str]] = {}
        self._blocked_shapes: set[tuple[str, tuple[int, ...], tuple[str, ...]]] = set()
        self._pass_force: set[str] = set()
        self._total_cap: list[int] = []
        self._refresh_capacity()
        self.stats = SchedulerStats()

    # -- configuration ------------------------------------------------------------------------
    def add_queue(self, queue: Queue) -> None:
        if queue.name in self._queues:
            raise QuotaError(f"queue {queue.name!r} is already configured")
        if queue.group not in self.book.groups:
            raise QuotaError(f"queue {queue.name!r} names unknown group {queue.group!r}")
        self._queues[queue.name] = _QueueState(queue)

    def add_cluster(self, cluster: Cluster, quotas: Mapping[str, GroupQuota] | None = None) -> None:
        """Register a new cluster (with group quotas on it); pending jobs are re-evaluated."""
        self.book.add_cluster(cluster, quotas)
        self._refresh_capacity()
        # New dimensions or capacity change every job's vectors, size and candidate clusters.
        for job in self._jobs.values():
            job.gang_vec, job.extra_vecs = self._vectors(job.spec, job.replicas)
            if job.state != "admitted":
                job.candidates = self._feasible(job.job_id, job.spec, job.group, job.gang_vec)[0]
            job.size = self._size(job.gang_vec)
            if job.entry is not None:
                qs = self._queues[job.queue]
                self._sorted_remove(qs.order, job.entry)
                job.entry = self._entry(job)
                bisect.insort(qs.order, job.entry)
        self._dirty.update(self._queues)
        self._force.update(self._queues)

    def _refresh_capacity(self) -> None:
        dims = len(self.book.dims)
        total = [0] * dims
        for name in self.book.clusters:
            for i, x in enumerate(self.book.cluster_cap_vec(name)):
                total[i] += x
        self._total_cap = total
        self._clusters_by_group: dict[str, list[str]] = {
            g: [c for c in self.book.clusters if self.book.has_quota(g, c)]
            for g in self.book.groups
        }

    # -- validation ---------------------------------------------------------------------------
    def validate(self, spec: JobSpec, job_id: str = "<job>") -> list[str]:
        """Clusters where ``spec`` could ever run; raises if none (see :meth:`submit`)."""
        return self._plan(spec, job_id).candidates

    def _plan(self, spec: JobSpec, job_id: str) -> _Plan:
        """Queue group, replicas, demand and feasible clusters of a new job, or the error."""
        qs = self._queues.get(spec.queue)
        if qs is None:
            raise UnknownQueue(
                f"job {job_id!r}: unknown queue {spec.queue!r}; known: {sorted(self._queues)}"
            )
        replicas = spec.replica_list()
        gang_vec, extra = self._vectors(spec, replicas)
        candidates, _ = self._feasible(job_id, spec, qs.queue.group, gang_vec, replicas)
        return _Plan(qs.queue.group, replicas, gang_vec, extra, candidates)

    def _vectors(
        self, spec: JobSpec, replicas: list[tuple[str, int, Resources]]
    ) -> tuple[list[int], list[list[int]]]:
        vecs = [self.book.vec(r) for _, _, r in replicas]
        n = spec.gang_size
        gang = [sum(col) for col in zip(*vecs[:n], strict=True)]
        return gang, vecs[n:]

    def _feasible(
        self,
        job_id: str,
        spec: JobSpec,
        group: str,
        gang_vec: list[int],
        replicas: list[tuple[str, int, Resources]] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        if replicas is None:
            replicas = spec.replica_list()
        reasons: dict[str, str] = {}
        ok: list[str] = []
        dims = self.book.dims
        for name, cluster in self.book.clusters.items():
            if spec.cluster_type is not None and cluster.type != spec.cluster_type:
                reasons[name] = f"type {cluster.type!r} is not the requested {spec.cluster_type!r}"
                continue
            if not self.book.has_quota(group, name):
                reasons[name] = f"group {group!r} has no quota here"
                continue
            limit = self.book.max_possible_vec(group, name)
            over = [
                f"{d} {self.book.amount(i, gang_vec[i]):g} > {self.book.amount(i, limit[i]):g}"
                for i, d in enumerate(dims)
                if gang_vec[i] > limit[i]
            ]
            if over:
                reasons[name] = (
                    f"gang needs more than group {group!r} can ever get here ({', '.join(over)})"
                )
                continue
            if cluster.nodes:
                why = _node_check(self.book, cluster, replicas[: spec.gang_size])
                if why:
                    reasons[name] = why
                    continue
            ok.append(name)
        if not ok:
            raise InfeasibleJob(job_id, reasons)
        return ok, reasons

    # -- events -------------------------------------------------------------------------------
    def submit(self, job_id: str, spec: JobSpec, now: float) -> list[str]:
        """Queue a job; returns the clusters it may run on.

        Raises :class:`UnknownQueue`, :class:`~recforge.platform.resources.UnknownResource` or
        :class:`InfeasibleJob` (nothing is queued then), or ``ValueError`` for a duplicate id.
        """
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} is already known to the scheduler")
        if job_id.startswith(_CLAIM):
            raise ValueError(f"invalid job id {job_id!r}")
        plan = self._plan(spec, job_id)
        self._seq += 1
        job = _Job(
            job_id=job_id,
            spec=spec,
            queue=spec.queue,
            group=plan.group,
            seq=self._seq,
            submitted=now,
            enqueued=now,
            replicas=plan.replicas,
            gang_vec=plan.gang_vec,
            extra_vecs=plan.extra_vecs,
            candidates=plan.candidates,
            size=self._size(plan.gang_vec),
        )
        self._jobs[job_id] = job
        self._enqueue(job, now)
        return list(plan.candidates)

    def restore(self, admission: Admission, spec: JobSpec, now: float) -> None:
        """Re-install an admission made before a restart (the job runs: no quota check).

        Reserves exactly ``admission.replicas`` (the first ``len(replicas)`` replicas of
        ``spec``) on ``admission.cluster``. If the configuration shrank meanwhile, usage may sit
        above a quota; nothing new is admitted there until it fits again. Raises ``ValueError``
        for a known job id or a replica count outside ``[gang_size, total_replicas]``, and
        :class:`~recforge.platform.resources.QuotaError` for an unknown queue, cluster or quota.
        """
        job_id = admission.job_id
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} is already known to the scheduler")
        qs = self._queues.get(spec.queue)
        if qs is None:
            raise UnknownQueue(f"job {job_id!r}: unknown queue {spec.queue!r}")
        n = len(admission.replicas)
        if not spec.gang_size <= n <= spec.total_replicas:
            raise ValueError(
                f"job {job_id!r}: {n} admitted replicas, expected {spec.gang_size}.."
                f"{spec.total_replicas}"
            )
        group = qs.queue.group
        if not self.book.has_quota(group, admission.cluster):
            raise QuotaError(f"group {group!r} has no quota on cluster {admission.cluster!r}")
        replicas = spec.replica_list()
        gang_vec, extra = self._vectors(spec, replicas)
        total = list(gang_vec)
        for vec in extra[: n - spec.gang_size]:
            total = [t + v for t, v in zip(total, vec, strict=True)]
        self.book.reserve_vec(job_id, group, admission.cluster, total)
        self._seq += 1
        self._jobs[job_id] = _Job(
            job_id=job_id,
            spec=spec,
            queue=spec.queue,
            group=group,
            seq=self._seq,
            submitted=now,
            enqueued=now,
            replicas=replicas,
            gang_vec=gang_vec,
            extra_vecs=extra,
            candidates=[admission.cluster],
            size=self._size(gang_vec),
            state="admitted",
            admission=admission,
        )

    def on_finished(self, job_id: str, now: float | None = None) -> Resources:
        """The job ended (any outcome): release what it holds and forget it."""
        return self.remove(job_id)

    def release(self, job_id: str) -> Resources:
        """Release an admitted job's reservation and forget the job; returns what it held."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "admitted":
            raise UnknownJob(f"job {job_id!r} is not admitted")
        return self.remove(job_id)

    def remove(self, job_id: str) -> Resources:
        """Forget a job in any state (cancelled, finished); returns what it held (maybe none)."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            raise UnknownJob(f"unknown job {job_id!r}")
        return self._detach(job)

    def evict(self, job_id: str, now: float, not_before: float | None = None) -> Resources:
        """Take an admitted job back: release its quota and re-queue it.

        The job waits until ``not_before`` (the service's backoff; default ``now``) and then
        queues again with a fresh aging clock starting at that time. Returns what was released.
        """
        job = self._jobs.get(job_id)
        if job is None or job.state != "admitted":
            raise UnknownJob(f"job {job_id!r} is not admitted")
        released = self._detach(job)
        job.admission = None
        job.reserved_cluster = None
        self._seq += 1
        job.seq = self._seq
        start = now if not_before is None else max(now, not_before)
        if start > now:
            job.state = "held"
            job.not_before = start
            heapq.heappush(self._held_heap, (start, job.seq, job_id))
        else:
            self._enqueue(job, now)
        return released

    def _detach(self, job: _Job, admitted_on: str | None = None) -> Resources:
        """Take a job out of every structure; release its quota if admitted.

        Queues that could use what the job held (its quota, or amounts it claimed as a
        starving job in the last pass) are marked dirty for the next pass.
        """
        released = Resources()
        if job.state == "admitted":
            released = self.book.release(job.job_id)
            assert job.admission is not None
            self._capacity_freed(job.admission.cluster)
        elif job.state == "pending":
            qs = self._queues[job.queue]
            if job.starving:
                level = self._starving[qs.queue.priority]
                self._sorted_remove(level, self._starve_entry(job))
                qs.starving -= 1
                for c, holders in self._last_claims.items():
                    if c != admitted_on and job.job_id in holders:  # usable by others now
                        self._capacity_freed(c)
            elif job.entry is not None:
                self._sorted_remove(qs.order, job.entry)
                if admitted_on is None:  # a job left its queue's window outside a pass
                    self._dirty.add(job.queue)
                    self._force.add(job.queue)
            job.entry = None
            job.starving = False
        job.state = "detached"
        return released

    def _capacity_freed(self, cluster: str) -> None:
        for name, qs in self._queues.items():
            if cluster in self._clusters_by_group.get(qs.queue.group, ()):
                self._dirty.add(name)

    def _enqueue(self, job: _Job, now: float) -> None:
        job.state = "pending"
        job.enqueued = now
        job.starving = False
        qs = self._queues[job.queue]
        job.entry = self._entry(job)
        bisect.insort(qs.order, job.entry)
        if self.aging.max_wait_seconds is not None:
            heapq.heappush(
                self._aging_heap, (now + self.aging.max_wait_seconds, job.seq, job.job_id)
            )
        self._dirty.add(job.queue)
        self._force.add(job.queue)

    def _entry(self, job: _Job) -> tuple[int, float, int, str]:
        key = job.size
        if self.aging.aging_seconds is not None:
            key += job.enqueued / self.aging.aging_seconds
        return (-job.spec.priority, key, job.seq, job.job_id)

    def _starve_entry(self, job: _Job) -> tuple[float, int, str]:
        assert self.aging.max_wait_seconds is not None
        return (job.enqueued + self.aging.max_wait_seconds, job.seq, job.job_id)

    def _size(self, vec: Sequence[int]) -> float:
        share = 0.0
        for x, t in zip(vec, self._total_cap, strict=True):
            if t > 0 and x / t > share:
                share = x / t
        return share

    @staticmethod
    def _sorted_remove(lst: list, item: object) -> None:
        i = bisect.bisect_left(lst, item)
        if i < len(lst) and lst[i] == item:
            del lst[i]
        else:  # pragma: no cover - would mean corrupted bookkeeping
            raise AssertionError(f"entry {item!r} not found")

    # -- time-driven transitions --------------------------------------------------------------
    def _advance(self, now: float) -> None:
        while self._held_heap and self._held_heap[0][0] <= now:
            t, seq, job_id = heapq.heappop(self._held_heap)
            job = self._jobs.get(job_id)
            if job is not None and job.state == "held" and job.seq == seq:
                self._enqueue(job, t)
        while self._aging_heap and self._aging_heap[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._aging_heap)
            job = self._jobs.get(job_id)
            if job is None or job.state != "pending" or job.seq != seq or job.starving:
                continue
            qs = self._queues[job.queue]
            assert job.entry is not None
            self._sorted_remove(qs.order, job.entry)
            job.entry = None
            job.starving = True
            qs.starving += 1
            level = self._starving.setdefault(qs.queue.priority, [])
            bisect.insort(level, self._starve_entry(job))
            self._dirty.add(job.queue)
            self._force.add(job.queue)

    def next_event_time(self) -> float | None:
        """When the next time-driven change happens (a job starts starving or leaves backoff)."""
        times = []
        while self._aging_heap:
            t, seq, job_id = self._aging_heap[0]
            job = self._jobs.get(job_id)
            if job is not None and job.state == "pending" and job.seq == seq and not job.starving:
                times.append(t)
                break
            heapq.heappop(self._aging_heap)
        while self._held_heap:
            t, seq, job_id = self._held_heap[0]
            job = self._jobs.get(job_id)
            if job is not None and job.state == "held" and job.seq == seq:
                times.append(t)
                break
            heapq.heappop(self._held_heap)
        return min(times) if times else None

    # -- the pass -----------------------------------------------------------------------------
    def schedule(self, now: float) -> list[Admission]:
        """One scheduling pass at time ``now``; returns the admissions it made (in order)."""
        self._advance(now)
        if not self._dirty:
            self.stats.idle_passes += 1
            return []
        self.stats.passes += 1
        # Events raised during the pass (e.g. a starving job admitted away from the cluster it
        # claimed last pass) mark queues for this pass's later phases and for the next pass.
        work = self._dirty
        self._dirty = set()
        self._pass_force = self._force
        self._force = set()
        self._blocked_shapes = set()
        out: list[Admission] = []
        claims: list[str] = []
        levels = sorted({qs.queue.priority for qs in self._queues.values()}, reverse=True)
        try:
            for level in levels:
                self._starving_phase(level, now, out, claims)
                self._fair_share_phase(level, now, out, work | self._dirty)
        finally:
            for key in claims:
                self.book.release(key)
            self._last_claims = self._pass_claims
            self._pass_claims = {}
        return out

    def _starving_phase(
        self, level: int, now: float, out: list[Admission], claims: list[str]
    ) -> None:
        entries = self._starving.get(level)
        if not entries:
            return
        held = 0
        i = 0
        while i < len(entries) and held < self.max_reservations:
            _, _, job_id = entries[i]
            job = self._jobs[job_id]
            if self._try_admit(job, now, out):
                continue  # entries[i] was removed: the next one moved into place
            i += 1
            cluster = job.reserved_cluster
            if cluster is None or cluster not in job.candidates:
                cluster = self._pick_reservation_cluster(job)
                job.reserved_cluster = cluster
            avail = self.book.available_vec(job.group, cluster)
            claim = [min(a, n) for a, n in zip(avail, job.gang_vec, strict=True)]
            key = _CLAIM + job_id
            self.book.reserve_vec(key, job.group, cluster, claim)
            claims.append(key)
            self._pass_claims.setdefault(cluster, []).append(job_id)
            held += 1

    def _pick_reservation_cluster(self, job: _Job) -> str:
        """The candidate where the gang misses the least (capacity-normalised), first on ties."""
        best, best_gap = job.candidates[0], math.inf
        for c in job.candidates:
            avail = self.book.available_vec(job.group, c)
            cap = self.book.cluster_cap_vec(c)
            gap = sum(
                (n - a) / t if t else math.inf
                for n, a, t in zip(job.gang_vec, avail, cap, strict=True)
                if n > a
            )
            if gap < best_gap:
                best, best_gap = c, gap
        return best

    def _fair_share_phase(
        self, level: int, now: float, out: list[Admission], work: set[str]
    ) -> None:
        heap: list[tuple[float, str]] = []
        for name in sorted(work):
            qs = self._queues[name]
            if qs.queue.priority == level and qs.order:
                heap.append((self._queue_share(qs), name))
        heapq.heapify(heap)
        blocked: dict[str, set[str]] = {}
        while heap:
            share, name = heapq.heappop(heap)
            qs = self._queues[name]
            current = self._queue_share(qs)
            if current > share + 1e-12:  # another queue of the group admitted meanwhile
                heapq.heappush(heap, (current, name))
                continue
            if name not in self._pass_force and not self._offers_more(qs):
                self.stats.skipped_queues += 1
                continue
            skip = blocked.setdefault(name, set())
            admitted = False
            for entry in qs.order:
                job_id = entry[3]
                if job_id in skip:
                    continue
                if self._try_admit(self._jobs[job_id], now, out):
                    admitted = True
                    break
                skip.add(job_id)
                if len(skip) > self.backfill_lookahead:
                    break
            if not admitted:
                qs.snapshot = self._availability(qs)
                continue
            qs.snapshot = None  # its window moved: the next turn must try
            if qs.order:
                heapq.heappush(heap, (self._queue_share(qs), name))

    def _availability(self, qs: _QueueState) -> dict[str, list[int]]:
        group = qs.queue.group
        return {c: list(self.book.available_vec(group, c)) for c in self._clusters_by_group[group]}

    def _offers_more(self, qs: _QueueState) -> bool:
        """Whether some cluster offers the queue's group more of anything than at its last
        blocked turn (or it has no snapshot); if not, its jobs are all still blocked."""
        if qs.snapshot is None:
            return True
        group = qs.queue.group
        for c, before in qs.snapshot.items():
            now = self.book.available_vec(group, c)
            for n, b in zip(now, before):  # noqa: B905 - same dims by construction; hot loop
                if n > b:
                    return True
        return False

    def _queue_share(self, qs: _QueueState) -> float:
        used = self.book.group_used_vec(qs.queue.group)
        share = 0.0
        for u, t in zip(used, self._total_cap, strict=True):
            if t > 0 and u / t > share:
                share = u / t
        return share / qs.queue.weight

    def _try_admit(self, job: _Job, now: float, out: list[Admission]) -> bool:
        """Admit ``job`` on the best cluster that fits its gang now; False if none does."""
        self.stats.tries += 1
        # Within a pass capacity only shrinks (admissions and claims; releases happen between
        # passes), so a gang shape that did not fit for this group stays blocked all pass.
        shape = (job.group, tuple(job.gang_vec), tuple(job.candidates))
        if shape in self._blocked_shapes:
            return False
        gang = job.gang_vec
        group = job.group
        available = self.book.available_vec
        chosen: str | None = None
        chosen_avail: list[int] | None = None
        for c in job.candidates:
            avail = available(group, c)
            for n, a in zip(gang, avail):  # noqa: B905 - same dims by construction; hot loop
                if n > a:
                    break
            else:
                if self.book.within_nominal(group, c, gang):
                    chosen, chosen_avail = c, avail
                    break
                if chosen is None:
                    chosen, chosen_avail = c, avail
        if chosen is None or chosen_avail is None:
            self._blocked_shapes.add(shape)
            return False
        total = list(gang)
        n_extra = 0
        for vec in job.extra_vecs:
            trial = [t + v for t, v in zip(total, vec, strict=True)]
            if any(t > a for t, a in zip(trial, chosen_avail, strict=True)):
                break
            total = trial
            n_extra += 1
        self._detach(job, admitted_on=chosen)  # out of its queue
        self.book.reserve_vec(job.job_id, job.group, chosen, total)
        n = job.spec.gang_size + n_extra
        admission = Admission(
            job_id=job.job_id,
            cluster=chosen,
            cluster_type=self.book.clusters[chosen].type,
            queue=job.queue,
            group=job.group,
            replicas=tuple(ReplicaSlot(r, i, res) for r, i, res in job.replicas[:n]),
            gang_size=job.spec.gang_size,
            total=self.book.to_resources(total),
            waited_seconds=now - job.enqueued,
        )
        job.state = "admitted"
        job.admission = admission
        job.reserved_cluster = None
        out.append(admission)
        self.stats.admissions += 1
        return True

    # -- introspection ------------------------------------------------------------------------
    def pending(self, queue: str | None = None) -> list[str]:
        """Pending job ids in scheduling order (starving first), optionally for one queue."""
        out: list[str] = []
        names = [queue] if queue is not None else sorted(self._queues)
        for name in names:
            qs = self._queues[name]
            out += [e[2] for e in self._starving_of(qs)]
            out += [e[3] for e in qs.order]
        return out

    def admission(self, job_id: str) -> Admission | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.admission

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def _starving_of(self, qs: _QueueState) -> list[tuple[float, int, str]]:
        if not qs.starving:
            return []
        level = self._starving.get(qs.queue.priority, [])
        return [e for e in level if self._jobs[e[2]].queue == qs.queue.name]

    def explain(self, job_id: str, now: float) -> Explanation:
        """Why ``job_id`` is pending (blocking resources per cluster, place, aging), or where
        it runs. Read-only: calling it changes nothing."""
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"unknown job {job_id!r}")
        qs = self._queues[job.queue]
        queue_len = len(qs.order) + qs.starving
        waited = now - job.enqueued
        aging_s = self.aging.aging_seconds
        effective = job.size - (waited / aging_s if aging_s else 0.0)
        max_wait = self.aging.max_wait_seconds
        starving = job.starving or (
            job.state == "pending" and max_wait is not None and waited >= max_wait
        )
        starve_in = None
        if job.state == "pending" and max_wait is not None and not starving:
            starve_in = max_wait - waited
        if job.state == "admitted":
            assert job.admission is not None
            a = job.admission
            return Explanation(
                job_id, "admitted", job.queue, job.group, None, queue_len,
                a.waited_seconds, job.size, job.size, False, None, None, (),
                f"admitted on cluster {a.cluster!r} with {len(a.replicas)} replica(s), "
                f"reserving {a.total}",
            )  # fmt: skip
        position: int | None = None
        if job.state == "pending":
            ahead = self._starving_of(qs)
            if job.starving:
                position = 1 + [e[2] for e in ahead].index(job_id)
            else:
                assert job.entry is not None
                position = 1 + len(ahead) + bisect.bisect_left(qs.order, job.entry)
        gang_total = self.book.to_resources(job.gang_vec)
        verdicts = []
        for c in job.candidates:
            short = tuple(self.book.shortages(job.group, c, gang_total))
            claimed = tuple(j for j in self._last_claims.get(c, []) if j != job_id)
            verdicts.append(ClusterVerdict(c, not short, short, claimed))
        lines = [f"job {job_id!r} is {job.state} in queue {job.queue!r} (group {job.group!r})"]
        if position is not None:
            lines[0] += f", position {position} of {queue_len}"
        lines.append(
            f"gang of {job.spec.gang_size} replica(s) needs {gang_total}; waited {waited:g}s, "
            f"size {job.size:.4f}, effective size {effective:.4f}"
            + (", starving (FIFO + reservation)" if starving else "")
            + (f", starving in {starve_in:g}s" if starve_in is not None else "")
        )
        if job.state == "held":
            lines.append(f"held in backoff until t={job.not_before:g}")
        if job.starving and job.reserved_cluster is not None:
            lines.append(
                f"holds a reservation on cluster {job.reserved_cluster!r}: later jobs of equal "
                "or lower queue priority cannot take what it needs there"
            )
        for v in verdicts:
            if v.fits_now:
                note = "fits now"
                if v.claimed_by:
                    note += f" but amounts are reserved for starving job(s) {list(v.claimed_by)}"
                elif position is not None and position > 1:
                    note += " (waits for its turn: jobs ahead in the queue or the next pass)"
                lines.append(f"  {v.cluster}: {note}")
            else:
                lines.append(f"  {v.cluster}: blocked by " + "; ".join(str(s) for s in v.shortages))
        return Explanation(
            job_id=job_id,
            state=job.state,
            queue=job.queue,
            group=job.group,
            position=position,
            queue_length=queue_len,
            waited_seconds=waited,
            size=job.size,
            effective_size=effective,
            starving=starving,
            starving_in_seconds=starve_in,
            reserved_cluster=job.reserved_cluster,
            clusters=tuple(verdicts),
            message="\n".join(lines),
        )


def _node_check(
    book: QuotaBook, cluster: Cluster, replicas: list[tuple[str, int, Resources]]
) -> str | None:
    """Reason the gang cannot be placed on the cluster's nodes even when idle, or None.

    First-fit decreasing packing is a sufficient test, not an exact one; level 2 may still find
    a placement FFD misses, so this only fails when a single replica fits on no node or FFD
    fails (documented as conservative).
    """
    nodes = [book.vec(n) for n in cluster.nodes]
    vecs = [(book.vec(r), role, idx) for role, idx, r in replicas]
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
