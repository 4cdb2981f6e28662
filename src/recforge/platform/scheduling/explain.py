"""'Why is job X pending?': the blocking resources per cluster, the job's place, its aging state,
reservations of starving jobs, quota held back for lenders (:mod:`.borrowing`) and preemptions
in progress. Read-only (the borrowing check reserves tentatively and gives it back)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recforge.platform.scheduling.borrowing import LenderNeed, lender_in_need
from recforge.platform.scheduling.errors import UnknownJob
from recforge.platform.scheduling.quota import Shortage

if TYPE_CHECKING:
    from recforge.platform.scheduling.cycle import Scheduler

__all__ = ["ClusterVerdict", "Explanation", "explain"]


@dataclass(frozen=True)
class ClusterVerdict:
    """How one candidate cluster looks for a pending job right now."""

    cluster: str
    fits_now: bool
    shortages: tuple[Shortage, ...]
    claimed_by: tuple[str, ...] = ()  # starving jobs holding a reservation there (last pass)
    # It fits only by borrowing quota another group's pending jobs need (the borrowing rule).
    held_for: LenderNeed | None = None


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
    preempting: tuple[str, ...] = ()  # victims this job waits for
    preempted_by: str | None = None  # the job that is preempting this admitted one


def explain(s: Scheduler, job_id: str, now: float) -> Explanation:
    """Why ``job_id`` is pending (blocking resources per cluster, place, aging, preemption), or
    where it runs. Changes nothing."""
    job = s._jobs.get(job_id)
    if job is None:
        raise UnknownJob(f"unknown job {job_id!r}")
    qs = s._queues.queues[job.queue]
    queue_len = len(qs.order) + qs.starving
    waited = now - job.enqueued
    aging_s = qs.aging.aging_seconds
    effective = job.size - (waited / aging_s if aging_s else 0.0)
    max_wait = qs.aging.max_wait_seconds
    starving = job.starving or (
        job.state == "pending" and max_wait is not None and waited >= max_wait
    )
    starve_in = None
    if job.state == "pending" and max_wait is not None and not starving:
        starve_in = max_wait - waited
    if job.state == "admitted":
        assert job.admission is not None
        a = job.admission
        message = (
            f"admitted on cluster {a.cluster!r} with {len(a.replicas)} replica(s), "
            f"reserving {a.total}"
        )
        if job.evicting is not None:
            message += (
                f"; being preempted by job {job.evicting} (its group reclaims the nominal quota "
                f"this job's group borrowed on {a.cluster!r})"
            )
        return Explanation(
            job_id, "admitted", job.queue, job.group, None, queue_len,
            a.waited_seconds, job.size, job.size, False, None, None, (), message,
            preempted_by=job.evicting,
        )  # fmt: skip
    position: int | None = None
    if job.state == "pending":
        ahead = s._queues.starving_of(qs, s._jobs)
        if job.starving:
            position = 1 + [e[2] for e in ahead].index(job_id)
        else:
            assert job.entry is not None
            position = 1 + len(ahead) + bisect.bisect_left(qs.order, job.entry)
    gang_total = s.book.to_resources(job.gang_vec)
    verdicts = []
    for c in job.candidates:
        short = tuple(s.book.shortages(job.group, c, gang_total))
        claimed = tuple(j for j in s._last_claims.get(c, []) if j != job_id)
        held = None
        if not short and not job.starving and not s.book.within_nominal(job.group, c, job.gang_vec):
            held = lender_in_need(s.book, s._queues.demand, job.group, c, job.gang_vec)
        verdicts.append(ClusterVerdict(c, not short and held is None, short, claimed, held))
    lines = [f"job {job_id!r} is {job.state} in queue {job.queue!r} (group {job.group!r})"]
    if position is not None:
        lines[0] += f", position {position} of {queue_len}"
    lines.append(
        f"gang of {job.spec.gang_size} replica(s) needs {gang_total}; waited {waited:g}s, "
        f"size {job.size:.4f}, effective size {effective:.4f}"
        + (", starving (FIFO + reservation)" if starving else "")
        + (f", starving in {starve_in:g}s" if starve_in is not None else "")
    )
    if job.spec.spark is not None:
        lines.append(
            f"spark: driver + {job.spec.spark.executors.instances} executor(s) are one gang; "
            "the driver starts only when it and all of these executors fit"
        )
    if job.state == "held":
        lines.append(f"held in backoff until t={job.not_before:g}")
    if job.starving and job.reserved_cluster is not None:
        lines.append(
            f"holds a reservation on cluster {job.reserved_cluster!r}: later jobs of equal "
            "or lower queue priority cannot take what it needs there"
        )
    victims = s.live_victims(job)
    if victims:
        where = s._jobs[victims[0]].admission
        cluster = where.cluster if where is not None else "?"
        lines.append(
            f"preempting job(s) {list(victims)} on cluster {cluster!r} to reclaim group "
            f"{job.group!r}'s nominal quota lent to other groups; admitted once they stop"
        )
    for v in verdicts:
        if v.fits_now:
            note = "fits now"
            if v.claimed_by:
                note += f" but amounts are reserved for starving job(s) {list(v.claimed_by)}"
            elif position is not None and position > 1:
                note += " (waits for its turn: jobs ahead in the queue or the next pass)"
            lines.append(f"  {v.cluster}: {note}")
        elif v.held_for is not None:
            lines.append(f"  {v.cluster}: fits, but {v.held_for}")
        else:
            lines.append(f"  {v.cluster}: blocked by " + "; ".join(str(x) for x in v.shortages))
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
        preempting=victims,
    )
