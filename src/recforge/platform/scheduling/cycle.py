"""Level-1 scheduling: gang admission of pending jobs onto clusters within group quotas.

The scheduler is pure and event-driven: the service feeds it events (``submit``, ``on_finished``,
``evict``, ``remove``, ``add_cluster``) and calls :meth:`Scheduler.schedule` to get
:class:`~recforge.platform.model.admission.Admission` decisions. Level 2 (placing replicas on
nodes) belongs to the backend.

Gang admission
    A job is admitted only when its whole gang (the first ``min_available`` replicas, see
    :mod:`recforge.platform.model.specs`) fits in ONE cluster within its group's quota
    (:class:`~recforge.platform.scheduling.quota.QuotaBook`); the gang is reserved atomically,
    nothing partial is ever reserved. Replicas beyond ``min_available`` are elastic extras: at
    admission they are added one by one, in order, while they still fit on the same cluster;
    extras that do not fit are dropped for this run (never added later). The admission lists
    exactly the replicas to launch.

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
    cluster offers its group more of any resource than at that turn, or when every cluster
    still offers less of some resource than the least any job of that turn asks for (its jobs
    would all be blocked again; its head still plans preemption as on a turn), and within a
    pass a gang shape that did not fit for a group is not checked again (capacity only shrinks
    during a pass). A turn whose whole window (head and lookahead) fits on none of its clusters
    is decided at once from the group's availability (what the failing fit checks would do:
    the head may reclaim, the snapshot moves). A gang shape that found nothing to reclaim is
    not planned again while the usage on its clusters and the victims chosen by other plans
    are unchanged (a plan's tentative releases leave the book's versions as they were, see
    :meth:`~recforge.platform.scheduling.quota.QuotaBook.trial`). These shortcuts leave every
    decision unchanged (tested against a scheduler without them, with and without
    preemption). Everything is deterministic given the same sequence of calls.

Preemption and the borrowing rule
    A job that does not fit where it would stay within its group's nominal quota may preempt
    borrowing jobs of other groups there (:mod:`recforge.platform.scheduling.preemption`),
    except jobs admitted while starving;
    :meth:`Scheduler.take_preemptions` hands the plans to the service, which stops the victims
    and calls :meth:`Scheduler.evict` (the service grows the backoff with each preemption of a
    job). A non-starving job may borrow only quota that no other group's pending jobs need
    (:mod:`recforge.platform.scheduling.borrowing`); otherwise a reclaimed borrower would
    borrow the same quota again after its backoff and be preempted again. A job held back by
    that rule is tried again when the lender's demand or usage there changes. Starving jobs
    are exempt (the waiting bound comes first), and a job admitted while starving runs to its
    end: it is never reclaimed (otherwise the bound would promise an admission that the next
    reclaim undoes, and the requeued job would wait the whole bound again).

The pieces: pending queues and aging (:mod:`.queues`), the quota book (:mod:`.quota`), ordering
(:mod:`.ordering`), feasibility checks (:mod:`.feasibility`, :mod:`.checks`), explanation
(:mod:`.explain`) and preemption (:mod:`.preemption`); this module is the cycle that uses them.

Infeasible jobs are rejected at :meth:`Scheduler.submit` with :class:`InfeasibleJob` (the reason
names, per cluster, why it can never run there), unknown queues with :class:`UnknownQueue`, and
unknown resource names with :class:`~recforge.platform.scheduling.errors.UnknownResource`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from recforge.platform.model.admission import Admission, ReplicaSlot
from recforge.platform.model.config import Cluster, Group, GroupQuota, PlatformConfig, Queue
from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import JobSpec
from recforge.platform.scheduling.borrowing import LenderNeeds
from recforge.platform.scheduling.checks import DEFAULT_CHECKS, FeasibilityCheck, JobShape
from recforge.platform.scheduling.errors import QuotaError, UnknownJob, UnknownQueue
from recforge.platform.scheduling.explain import Explanation, explain
from recforge.platform.scheduling.feasibility import feasible_clusters
from recforge.platform.scheduling.ordering import dominant_share, reservation_cluster
from recforge.platform.scheduling.preemption import Preemption, ReclaimPolicy
from recforge.platform.scheduling.queues import (
    AgingPolicy,
    PendingJob,
    PendingQueues,
    QueueState,
)
from recforge.platform.scheduling.quota import QuotaBook

__all__ = ["Scheduler", "SchedulerStats"]

_CLAIM = "\x00claim:"  # reservation keys of claims; cannot collide with job ids given by users


@dataclass
class SchedulerStats:
    """Counters that show how much work passes do (for tests and benchmarks)."""

    passes: int = 0
    idle_passes: int = 0  # schedule() calls that returned at once: no event since the last pass
    tries: int = 0  # gang fit checks (each over the candidate clusters)
    skipped_queues: int = 0  # dirty queues skipped: nothing new could fit (see "Event-driven")
    admissions: int = 0
    preemptions: int = 0  # victims chosen
    held_for_lenders: int = 0  # borrowing admissions refused: a lender's pending jobs need it
    # turns found blocked by the window check (no job of the window fits anywhere) without a
    # fit check per job; decided as a turn of failing fit checks would be
    blocked_windows: int = 0


_Shape = tuple[str, tuple[int, ...], tuple[str, ...]]  # group, gang vector, candidate clusters


class _Window(NamedTuple):
    """The jobs a queue's turn tries first (its head and ``backfill_lookahead`` more)."""

    version: int  # of the queue's order
    ids: list[str]
    gangs: dict[str, list[list[int]]]  # per cluster, the distinct gangs that may run there
    least: list[int]  # per resource, the least any of them asks for


class _Plan(NamedTuple):
    group: str
    replicas: list[tuple[str, int, Resources]]
    gang_vec: list[int]
    extra_vecs: list[list[int]]
    candidates: list[str]


class Scheduler:
    """Level-1 gang admission over several clusters with group quotas (see module docstring).

    ``preemption`` (default on) lets jobs reclaim their group's lent nominal quota;
    ``checks`` are the feasibility rules applied at submission (default
    :data:`~recforge.platform.scheduling.checks.DEFAULT_CHECKS`).
    """

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
        preemption: bool = True,
        checks: Sequence[FeasibilityCheck] = DEFAULT_CHECKS,
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
        self.checks = tuple(checks)
        self.reclaim: ReclaimPolicy | None = ReclaimPolicy() if preemption else None
        self.book = QuotaBook(clusters, groups)
        self._queues = PendingQueues(self.aging)
        self._lender_in_need = LenderNeeds(self.book, self._queues)
        self._priorities: dict[str, int] = {}  # queue -> priority (preemption order)
        for q in queues:
            self.add_queue(q)
        self._jobs: dict[str, PendingJob] = {}
        self._seq = 0
        self._admitted_seq = 0
        self._last_claims: dict[str, list[str]] = {}  # cluster -> starving job ids, last pass
        self._pass_claims: dict[str, list[str]] = {}
        self._blocked_shapes: set[tuple[str, tuple[int, ...], tuple[str, ...]]] = set()
        # shape -> book version token when the shape found nothing to reclaim: the same answer
        # while no usage it depends on changed and no other plan picked victims (across passes)
        self._no_reclaim: dict[_Shape, tuple[int, tuple[int, ...]]] = {}
        self._plans_made = 0
        # group -> cluster -> availability, valid while the book's change counter is unchanged
        self._group_avail_at = -1
        self._group_avail_memo: dict[str, dict[str, list[int]]] = {}
        # queue -> its window (see _window_blocked), valid while the queue's order is unchanged
        self._windows: dict[str, _Window] = {}
        # shape -> (book changes, demand changes) when the borrowing rule held it back: the same
        # verdict while neither changed (within a pass; across passes a release or a submission
        # has always changed one of them)
        self._held_shapes: dict[_Shape, tuple[int, int]] = {}
        self._held_on: dict[_Shape, list[tuple[str, str]]] = {}  # (cluster, lender) per shape
        self._pass_force: set[str] = set()
        self._preemptions: list[Preemption] = []
        self._preemptors: dict[str, str] = {}  # pending job -> cluster it reclaims quota on
        # (cluster, lender group) -> queues with a job that fit there only by borrowing quota
        # that group's pending jobs need; woken (forced) when that group's demand or usage
        # there changes (one of its jobs leaves a queue or is admitted there).
        self._lender_waiters: dict[tuple[str, str], set[str]] = {}
        self._admitted_on: dict[str, dict[str, PendingJob]] = {}  # cluster -> admitted jobs
        self._total_cap: list[int] = []
        self._shares: dict[str, tuple[int, float]] = {}  # group -> (book changes, share)
        self._refresh_capacity()
        self.stats = SchedulerStats()

    # -- configuration ------------------------------------------------------------------------
    def add_queue(self, queue: Queue) -> None:
        if queue.name in self._queues.queues:
            raise QuotaError(f"queue {queue.name!r} is already configured")
        if queue.group not in self.book.groups:
            raise QuotaError(f"queue {queue.name!r} names unknown group {queue.group!r}")
        self._queues.add(queue)
        self._priorities[queue.name] = queue.priority

    def add_cluster(self, cluster: Cluster, quotas: Mapping[str, GroupQuota] | None = None) -> None:
        """Register a new cluster (with group quotas on it); pending jobs are re-evaluated."""
        self.book.add_cluster(cluster, quotas)
        self._refresh_capacity()
        # New dimensions or capacity change every job's vectors, size and candidate clusters.
        for job in self._jobs.values():
            job.gang_vec, job.extra_vecs = self._vectors(job.spec, job.replicas)
            if job.state != "admitted":
                job.candidates = self._feasible(job.job_id, job.spec, job.group, job.gang_vec,
                                                job.replicas)  # fmt: skip
                job.nominal_on = self._nominal_on(job.group, job.gang_vec, job.candidates)
            job.size = dominant_share(job.gang_vec, self._total_cap)
            self._queues.reindex(job)
        self._queues.recount_demand(self._jobs)
        for name in self._queues.queues:
            self._queues.mark(name, force=True)

    def _nominal_on(self, group: str, gang: list[int], candidates: list[str]) -> tuple[str, ...]:
        return tuple(c for c in candidates if self.book.fits_nominal(group, c, gang))

    def _refresh_capacity(self) -> None:
        total = [0] * len(self.book.dims)
        for name in self.book.clusters:
            for i, x in enumerate(self.book.cluster_cap_vec(name)):
                total[i] += x
        self._total_cap = total
        self._shares = {}
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
        qs = self._queues.queues.get(spec.queue)
        if qs is None:
            known = sorted(self._queues.queues)
            raise UnknownQueue(f"job {job_id!r}: unknown queue {spec.queue!r}; known: {known}")
        replicas = spec.replica_list()
        gang_vec, extra = self._vectors(spec, replicas)
        candidates = self._feasible(job_id, spec, qs.queue.group, gang_vec, replicas)
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
        replicas: list[tuple[str, int, Resources]],
    ) -> list[str]:
        shape = JobShape(job_id, spec, group, replicas[: spec.gang_size], gang_vec)
        return feasible_clusters(self.book, self.checks, shape)

    # -- events -------------------------------------------------------------------------------
    def submit(self, job_id: str, spec: JobSpec, now: float) -> list[str]:
        """Queue a job; returns the clusters it may run on.

        Raises :class:`UnknownQueue`, :class:`~recforge.platform.scheduling.errors.
        UnknownResource` or :class:`InfeasibleJob` (nothing is queued then), or ``ValueError``
        for a duplicate id.
        """
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} is already known to the scheduler")
        if job_id.startswith(_CLAIM):
            raise ValueError(f"invalid job id {job_id!r}")
        plan = self._plan(spec, job_id)
        self._seq += 1
        job = PendingJob(
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
            size=dominant_share(plan.gang_vec, self._total_cap),
            nominal_on=self._nominal_on(plan.group, plan.gang_vec, plan.candidates),
        )
        self._jobs[job_id] = job
        self._queues.enqueue(job, now)
        return list(plan.candidates)

    def restore(self, admission: Admission, spec: JobSpec, now: float) -> None:
        """Re-install an admission made before a restart (the job runs: no quota check).

        Reserves exactly ``admission.replicas`` (the first ``len(replicas)`` replicas of
        ``spec``) on ``admission.cluster``. If the configuration shrank meanwhile, usage may sit
        above a quota; nothing new is admitted there until it fits again. Raises ``ValueError``
        for a known job id or a replica count outside ``[gang_size, total_replicas]``, and
        :class:`QuotaError` for an unknown queue, cluster or quota.
        """
        job_id = admission.job_id
        if job_id in self._jobs:
            raise ValueError(f"job {job_id!r} is already known to the scheduler")
        qs = self._queues.queues.get(spec.queue)
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
        self._admitted_seq += 1
        job = self._jobs[job_id] = PendingJob(
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
            size=dominant_share(gang_vec, self._total_cap),
            state="admitted",
            admission=admission,
            admitted_seq=self._admitted_seq,
        )
        self._admitted_on.setdefault(admission.cluster, {})[job_id] = job

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
        job.evicting = None
        job.admitted_starving = False
        self._seq += 1
        job.seq = self._seq
        start = now if not_before is None else max(now, not_before)
        if start > now:
            self._queues.hold(job, start)
        else:
            self._queues.enqueue(job, now)
        return released

    def _detach(self, job: PendingJob, admitted_on: str | None = None) -> Resources:
        """Take a job out of every structure; release its quota if admitted.

        Queues that could use what the job held (its quota, or amounts it claimed as a
        starving job in the last pass) are marked dirty for the next pass.
        """
        released = Resources()
        if job.state == "admitted":
            released = self.book.release(job.job_id)
            assert job.admission is not None
            self._admitted_on[job.admission.cluster].pop(job.job_id, None)
            self._capacity_freed(job.admission.cluster)
        elif job.state == "pending":
            if self._queues.take_out(job, in_pass=admitted_on is not None):
                for c, holders in self._last_claims.items():
                    if c != admitted_on and job.job_id in holders:  # usable by others now
                        self._capacity_freed(c)
            for c in job.nominal_on:  # less demand there: held borrowers may fit now
                self._wake_lender_waiters(c, job.group)
        job.preempting = ()
        self._preemptors.pop(job.job_id, None)
        job.state = "detached"
        return released

    def _wake_lender_waiters(self, cluster: str, group: str) -> None:
        names = self._lender_waiters.pop((cluster, group), None)
        if names:
            for name in names:
                self._queues.mark(name, force=True)

    def _capacity_freed(self, cluster: str) -> None:
        for name, qs in self._queues.queues.items():
            if cluster in self._clusters_by_group.get(qs.queue.group, ()):
                self._queues.mark(name)

    def next_event_time(self) -> float | None:
        """When the next time-driven change happens (a job starts starving or leaves backoff)."""
        return self._queues.next_event_time(self._jobs)

    def take_preemptions(self) -> list[Preemption]:
        """The preemptions planned since the last call (the service stops those jobs and calls
        :meth:`evict` for each)."""
        out, self._preemptions = self._preemptions, []
        return out

    def live_victims(self, job: PendingJob) -> tuple[str, ...]:
        """Jobs ``job`` preempts that have not been evicted yet."""
        return tuple(
            v for v in job.preempting
            if (vj := self._jobs.get(v)) is not None and vj.evicting == job.job_id
        )  # fmt: skip

    # -- the pass -----------------------------------------------------------------------------
    def schedule(self, now: float) -> list[Admission]:
        """One scheduling pass at time ``now``; returns the admissions it made (in order)."""
        queues = self._queues
        queues.advance(now, self._jobs)
        if not queues.dirty:
            self.stats.idle_passes += 1
            return []
        self.stats.passes += 1
        # Events raised during the pass (e.g. a starving job admitted away from the cluster it
        # claimed last pass) mark queues for this pass's later phases and for the next pass.
        work = queues.dirty
        queues.dirty = set()
        self._pass_force = queues.force
        queues.force = set()
        self._blocked_shapes = set()
        self._held_shapes = {}
        self._held_on = {}
        out: list[Admission] = []
        claims: list[str] = []
        try:
            for level in queues.levels():
                self._starving_phase(level, now, out, claims)
                self._preemptor_phase(level, now, out, claims)
                self._fair_share_phase(level, now, out, work | queues.dirty)
        finally:
            for key in claims:
                self.book.release(key)
            self._last_claims = self._pass_claims
            self._pass_claims = {}
        return out

    def _starving_phase(
        self, level: int, now: float, out: list[Admission], claims: list[str]
    ) -> None:
        entries = self._queues.starving.get(level)
        if not entries:
            return
        held = 0
        i = 0
        while i < len(entries) and held < self.max_reservations:
            _, _, job_id = entries[i]
            job = self._jobs[job_id]
            if self._try_admit(job, now, out):
                continue  # entries[i] was removed: the next one moved into place
            self._consider_preemption(job)
            i += 1
            cluster = job.reserved_cluster
            if cluster is None or cluster not in job.candidates:
                cluster = reservation_cluster(self.book, job.group, job.gang_vec, job.candidates)
                job.reserved_cluster = cluster
            avail = self.book.available_vec(job.group, cluster)
            claim = [min(a, n) for a, n in zip(avail, job.gang_vec, strict=True)]
            key = _CLAIM + job_id
            self.book.reserve_vec(key, job.group, cluster, claim)
            claims.append(key)
            self._pass_claims.setdefault(cluster, []).append(job_id)
            held += 1

    def _preemptor_phase(
        self, level: int, now: float, out: list[Admission], claims: list[str]
    ) -> None:
        """Jobs waiting for their victims to stop: admitted as soon as they fit, and meanwhile
        they claim what is free on the cluster they reclaim, so the quota they take back cannot
        go to someone else first."""
        for job_id, cluster in list(self._preemptors.items()):
            job = self._jobs[job_id]
            if self._queues.queues[job.queue].queue.priority != level or job.starving:
                continue
            if self._try_admit(job, now, out):
                continue
            if not self.live_victims(job):  # victims gone and it still does not fit
                del self._preemptors[job_id]
                continue
            avail = self.book.available_vec(job.group, cluster)
            claim = [min(a, n) for a, n in zip(avail, job.gang_vec, strict=True)]
            key = _CLAIM + job_id
            self.book.reserve_vec(key, job.group, cluster, claim)
            claims.append(key)
            self._pass_claims.setdefault(cluster, []).append(job_id)

    def _fair_share_phase(
        self, level: int, now: float, out: list[Admission], work: set[str]
    ) -> None:
        heap: list[tuple[float, str]] = []
        for name in sorted(work):
            qs = self._queues.queues[name]
            if qs.queue.priority == level and qs.order:
                heap.append((self._queue_share(qs.queue), name))
        heapq.heapify(heap)
        blocked: dict[str, set[str]] = {}
        while heap:
            share, name = heapq.heappop(heap)
            qs = self._queues.queues[name]
            current = self._queue_share(qs.queue)
            if current > share + 1e-12:  # another queue of the group admitted meanwhile
                heapq.heappush(heap, (current, name))
                continue
            avail = self._group_avail(qs.queue.group)
            if name not in self._pass_force and not self._offers_more(qs, avail):
                self.stats.skipped_queues += 1
                continue
            if name not in self._pass_force and self._below_least_demand(qs, avail):
                # A turn would end blocked too; do what it would do besides failing fit checks
                # (so decisions stay those of a scheduler that tries): the queue's head may
                # reclaim lent quota, and the snapshot moves to what is available now.
                self.stats.skipped_queues += 1
                if not blocked.get(name) and qs.order:
                    self._consider_preemption(self._jobs[qs.order[0][3]])
                qs.snapshot = avail
                continue
            skip = blocked.setdefault(name, set())
            if not skip:
                window = self._window_blocked(qs, avail)
                if window is not None:
                    # Every job a turn would try fails its fit check: do what that turn does.
                    self.stats.blocked_windows += 1
                    self._consider_preemption(self._jobs[window[0]])
                    skip.update(window)
                    qs.snapshot = self._group_avail(qs.queue.group)
                    qs.window_min = self._windows[name].least
                    continue
            admitted = False
            for entry in qs.order:
                job_id = entry[3]
                if job_id in skip:
                    continue
                job = self._jobs[job_id]
                # Until this turn admits, the book changes only by the head's preemption plan,
                # which undoes what it tries: ``avail`` stays exact for the turn.
                if not self._fits_somewhere(job, avail):
                    self.stats.tries += 1  # the fit check _try_admit would fail
                elif self._try_admit(job, now, out):
                    admitted = True
                    break
                if not skip:  # the queue's head: it may reclaim lent quota
                    self._consider_preemption(job)
                skip.add(job_id)
                if len(skip) > self.backfill_lookahead:
                    break
            if not admitted:
                qs.snapshot = self._group_avail(qs.queue.group)
                tried = [self._jobs[j].gang_vec for j in skip]
                qs.window_min = [min(col) for col in zip(*tried, strict=True)] if tried else None
                continue
            qs.snapshot = None  # its window moved: the next turn must try
            if qs.order:
                heapq.heappush(heap, (self._queue_share(qs.queue), name))

    def _consider_preemption(self, job: PendingJob) -> None:
        if self.reclaim is None or self.live_victims(job):
            return
        # A shape that found nothing to reclaim finds nothing again while neither the usage
        # the plan reads (its clusters, its group's total) nor the victims already chosen by
        # other plans changed.
        shape = (job.group, tuple(job.gang_vec), tuple(job.candidates))
        token = (self._plans_made, self.book.version(job.candidates))
        if self._no_reclaim.get(shape) == token:
            return
        plan = self.reclaim.plan(self.book, job, self._admitted_on, self._priorities)
        if not plan:  # (the plan's tentative releases were undone: the token is still current)
            self._no_reclaim[shape] = token
            return
        self._plans_made += 1
        for p in plan:
            self._jobs[p.victim].evicting = job.job_id
        job.preempting = tuple(p.victim for p in plan)
        self._preemptors[job.job_id] = plan[0].cluster
        self._preemptions.extend(plan)
        self.stats.preemptions += len(plan)

    def _group_avail(self, group: str) -> dict[str, list[int]]:
        """What ``group`` could take now on each cluster it has quota on (shared: read only;
        valid until the book changes)."""
        book = self.book
        if self._group_avail_at != book.changes:
            self._group_avail_at = book.changes
            self._group_avail_memo = {}
        got = self._group_avail_memo.get(group)
        if got is None:
            available = book.available_vec
            got = {c: available(group, c) for c in self._clusters_by_group[group]}
            self._group_avail_memo[group] = got
        return got

    def _window_blocked(self, qs: QueueState, avail: dict[str, list[int]]) -> list[str] | None:
        """The job ids a turn of ``qs`` would try first (its head and ``backfill_lookahead``
        more) when none of them fits on any of its clusters now, else None."""
        w = self._windows.get(qs.queue.name)
        if w is None or w.version != qs.version:
            ids = [e[3] for e in qs.order[: self.backfill_lookahead + 1]]
            if not ids:
                return None
            jobs = [self._jobs[j] for j in ids]
            gangs: dict[str, list[list[int]]] = {}
            for job in jobs:
                for c in job.candidates:
                    vecs = gangs.setdefault(c, [])
                    if job.gang_vec not in vecs:
                        vecs.append(job.gang_vec)
            w = self._windows[qs.queue.name] = _Window(
                qs.version,
                ids,
                gangs,
                [min(col) for col in zip(*(j.gang_vec for j in jobs), strict=True)],
            )
        for c, vecs in w.gangs.items():
            a = avail[c]
            for v in vecs:
                for n, x in zip(v, a):  # noqa: B905 - same dims by construction; hot loop
                    if n > x:
                        break
                else:
                    return None  # this one fits here: a real turn decides
        return w.ids

    @staticmethod
    def _fits_somewhere(job: PendingJob, avail: dict[str, list[int]]) -> bool:
        gang = job.gang_vec
        for c in job.candidates:
            for n, a in zip(gang, avail[c]):  # noqa: B905 - same dims by construction; hot loop
                if n > a:
                    break
            else:
                return True
        return False

    def _offers_more(self, qs: QueueState, avail: dict[str, list[int]]) -> bool:
        """Whether some cluster offers the queue's group more of anything than at its last
        blocked turn (or it has no snapshot); if not, its jobs are all still blocked."""
        snapshot = qs.snapshot
        if snapshot is None:
            return True
        for c, before in snapshot.items():
            now = avail[c]
            for n, b in zip(now, before):  # noqa: B905 - same dims by construction; hot loop
                if n > b:
                    return True
        return False

    def _below_least_demand(self, qs: QueueState, avail: dict[str, list[int]]) -> bool:
        """Whether every cluster offers the queue's group less of some resource than the least
        any job of its last blocked turn asks for (each of them asks at least that much, so
        all are still blocked). False when there is no blocked turn to compare with."""
        least = qs.window_min
        if qs.snapshot is None or least is None:
            return False
        for c in qs.snapshot:
            now = avail[c]
            for m, n in zip(least, now):  # noqa: B905 - same dims by construction; hot loop
                if m > n:
                    break
            else:
                return False  # this cluster could hold the least demand: try
        return True

    def _queue_share(self, queue: Queue) -> float:
        group = queue.group
        at = self.book.changes
        hit = self._shares.get(group)
        if hit is None or hit[0] != at:
            hit = self._shares[group] = (
                at,
                dominant_share(self.book.group_used_vec(group), self._total_cap),
            )
        return hit[1] / queue.weight

    def _try_admit(self, job: PendingJob, now: float, out: list[Admission]) -> bool:
        """Admit ``job`` on the best cluster that fits its gang now; False if none does."""
        self.stats.tries += 1
        # Within a pass capacity only shrinks (admissions and claims; releases happen between
        # passes), so a gang shape that did not fit for this group stays blocked all pass.
        shape = (job.group, tuple(job.gang_vec), tuple(job.candidates))
        if shape in self._blocked_shapes:
            return False
        held = self._held_shapes.get(shape)
        if held is not None and not job.starving:  # noqa: SIM102 - the memo, then its check
            if held == (self.book.changes, self._queues.demand_changes):
                self.stats.held_for_lenders += 1
                for c, lender in self._held_on[shape]:
                    self._lender_waiters.setdefault((c, lender), set()).add(job.queue)
                return False
        gang = job.gang_vec
        group = job.group
        book = self.book
        available = self._group_avail(group)
        chosen: str | None = None
        chosen_avail: list[int] | None = None
        borrowing: list[tuple[str, list[int]]] = []  # clusters where it fits only by borrowing
        for c in job.candidates:
            avail = available[c]
            for n, a in zip(gang, avail):  # noqa: B905 - same dims by construction; hot loop
                if n > a:
                    break
            else:
                if book.within_nominal(group, c, gang):
                    chosen, chosen_avail = c, avail
                    break
                borrowing.append((c, avail))
        if chosen is None:
            if not borrowing:
                self._blocked_shapes.add(shape)
                return False
            # A starving job may borrow what lenders need: the waiting bound comes first (and
            # lenders' jobs, once starving, may too: nobody waits on each other forever).
            held_on: list[tuple[str, str]] = []
            for c, avail in borrowing:  # the first where no lender's pending jobs need it
                need = None if job.starving else self._lender_in_need(group, c, gang)
                if need is None:
                    chosen, chosen_avail = c, avail
                    break
                held_on.append((c, need.group))
                self._lender_waiters.setdefault((c, need.group), set()).add(job.queue)
            if chosen is None or chosen_avail is None:
                # Not memoised as blocked: the rule may allow it later in this pass, once usage
                # or pending demand changed.
                self.stats.held_for_lenders += 1
                self._held_shapes[shape] = (book.changes, self._queues.demand_changes)
                self._held_on[shape] = held_on
                return False
        assert chosen_avail is not None
        total = list(gang)
        n_extra = 0
        for vec in job.extra_vecs:
            trial = [t + v for t, v in zip(total, vec, strict=True)]
            if any(t > a for t, a in zip(trial, chosen_avail, strict=True)):
                break
            if (
                not job.starving
                and not book.within_nominal(group, chosen, trial)
                and self._lender_in_need(group, chosen, trial) is not None
            ):
                break  # an extra that would borrow what a lender needs
            total = trial
            n_extra += 1
        job.admitted_starving = job.starving  # (before _detach clears it)
        self._detach(job, admitted_on=chosen)  # out of its queue
        self.book.reserve_vec(job.job_id, job.group, chosen, total)
        self._wake_lender_waiters(chosen, group)  # it uses more of its nominal quota there
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
        self._admitted_on.setdefault(chosen, {})[job.job_id] = job
        self._admitted_seq += 1
        job.admitted_seq = self._admitted_seq
        out.append(admission)
        self.stats.admissions += 1
        return True

    # -- introspection ------------------------------------------------------------------------
    def pending(self, queue: str | None = None) -> list[str]:
        """Pending job ids in scheduling order (starving first), optionally for one queue."""
        names = [queue] if queue is not None else sorted(self._queues.queues)
        return [j for name in names for j in self._queues.ordered(name, self._jobs)]

    def admission(self, job_id: str) -> Admission | None:
        job = self._jobs.get(job_id)
        return None if job is None else job.admission

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def explain(self, job_id: str, now: float) -> Explanation:
        """Why ``job_id`` is pending, or where it runs (:func:`~.explain.explain`)."""
        return explain(self, job_id, now)
