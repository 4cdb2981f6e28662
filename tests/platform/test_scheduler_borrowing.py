"""The borrowing rule: a group lends only the quota its own pending jobs do not need.

Without it a borrower preempted to give quota back borrows the same quota again after its
backoff and is preempted again (a preemption storm); see scheduling/borrowing.py.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter

import pytest
from test_scheduler import RECLAIM_CFG, ids, job

from recforge.platform.model.config import parse_platform_config
from recforge.platform.scheduling import Scheduler
from recforge.platform.scheduling.borrowing import lender_in_need


def _replay(s: Scheduler, lender_submits_at: float) -> Counter[str]:
    """gb runs b1 (its whole nominal 4) and b2 (2 more: borrowed from ga); from
    ``lender_submits_at`` ga runs a stream of 100 s jobs of 4 and 6 cpu (its nominal is 6).
    Victims are stopped and requeued after 60 s, as the service does. Returns the preemption
    count per victim."""
    s.submit("b1", job("b1", queue="qb", cpu=4, priority=1), now=0)
    s.submit("b2", job("b2", queue="qb", cpu=2), now=0)
    pending_lender = [(lender_submits_at, f"a{i}", 6 if i % 2 else 4) for i in range(8)]
    ends: list[tuple[float, str]] = []
    end_of: dict[str, float] = {}
    preempted: Counter[str] = Counter()
    now = 0.0
    for _ in range(1_000):
        while pending_lender and pending_lender[0][0] <= now:
            _, name, cpu = pending_lender.pop(0)
            # Decreasing job priority: the lender's jobs run in submission order.
            s.submit(name, job(name, queue="qa", cpu=cpu, priority=100 - int(name[1:])), now=now)
        for a in s.schedule(now):
            end_of[a.job_id] = now + (1_000 if a.job_id.startswith("b") else 100)
            heapq.heappush(ends, (end_of[a.job_id], a.job_id))
        for p in s.take_preemptions():
            assert p.preemptor.startswith("a") and p.victim.startswith("b")
            end_of.pop(p.victim, None)
            s.evict(p.victim, now, not_before=now + 60)
            preempted[p.victim] += 1
        arrivals = [pending_lender[0][0]] if pending_lender else []
        times = [t for t in (ends[0][0] if ends else None, s.next_event_time()) if t is not None]
        times += arrivals
        if not times:
            break
        now = max(now, min(times))
        while ends and ends[0][0] <= now:
            end, jid = heapq.heappop(ends)
            if end_of.get(jid) == end:
                del end_of[jid]
                s.on_finished(jid, now)
    assert len(s) == 0, "every job ran to its end"
    return preempted


def test_a_reclaimed_borrower_does_not_borrow_the_lenders_quota_again() -> None:
    """gb borrows ga's idle quota while ga has no demand; ga's stream reclaims it once. The
    scheduler before the rule let b2 borrow again after each backoff and preempted it 4 times
    (measured on main @dbd3eca with this replay); now it waits until ga needs nothing more."""
    s = Scheduler(parse_platform_config(RECLAIM_CFG))
    preempted = _replay(s, lender_submits_at=10)
    assert preempted == Counter({"b2": 1})
    assert s.stats.held_for_lenders > 0
    assert s.stats.preemptions == 1


def test_a_borrower_never_takes_what_a_lender_with_pending_jobs_needs() -> None:
    """With ga's demand known from the start nothing is ever preempted (the scheduler before
    the rule preempted b2 4 times in this replay), and no job waits forever."""
    s = Scheduler(parse_platform_config(RECLAIM_CFG))
    preempted = _replay(s, lender_submits_at=0)
    assert preempted == Counter()
    assert s.stats.preemptions == 0


def test_why_explains_a_job_held_back_for_a_lender() -> None:
    s = Scheduler(parse_platform_config(RECLAIM_CFG))
    s.submit("a1", job("a1", queue="qa", cpu=2), now=0)
    s.submit("a2", job("a2", queue="qa", cpu=6), now=0)  # 2 + 6 > 6: waits for a1
    s.submit("b1", job("b1", queue="qb", cpu=4, priority=1), now=0)
    s.submit("b2", job("b2", queue="qb", cpu=3), now=0)  # would borrow 3 of ga's idle 4
    assert sorted(ids(s.schedule(now=0))) == ["a1", "b1"]
    why = s.explain("b2", now=1)
    [c] = why.clusters
    assert not c.fits_now and c.shortages == () and c.held_for is not None
    assert c.held_for.group == "ga" and c.held_for.resources == ("cpu",)
    assert (
        "c: fits, but borrowing there would take cpu that group 'ga' needs for its own 1 "
        "pending job(s)" in why.message
    )
    # Once ga needs nothing more, b2 may borrow what is idle (woken without a release).
    s.remove("a2")
    assert ids(s.schedule(now=2)) == ["b2"]
    assert s.explain("b2", now=2).state == "admitted"


def test_a_lender_without_pending_jobs_lends_and_own_nominal_is_never_held() -> None:
    s = Scheduler(parse_platform_config(RECLAIM_CFG))
    s.submit("b1", job("b1", queue="qb", cpu=4, priority=1), now=0)
    s.submit("b2", job("b2", queue="qb", cpu=5), now=0)  # borrows 5 of ga's idle 6
    assert sorted(ids(s.schedule(now=0))) == ["b1", "b2"]
    # ga's job within its nominal is admitted by reclaiming, never held back by the rule.
    s.submit("a1", job("a1", queue="qa", cpu=6), now=1)
    assert s.schedule(now=1) == []
    assert [p.victim for p in s.take_preemptions()] == ["b2"]
    assert s.stats.held_for_lenders == 0


def test_a_starving_job_may_borrow_what_lenders_need() -> None:
    """The waiting bound comes first: once starving, a borrower is admitted if it fits."""
    cfg = {
        **RECLAIM_CFG,
        "queues": [
            {"name": "qa", "group": "ga", "max_wait_seconds": 10_000},
            {"name": "qb", "group": "gb", "max_wait_seconds": 100},
        ],
    }
    s = Scheduler(parse_platform_config(cfg))
    s.submit("a1", job("a1", queue="qa", cpu=2), now=0)
    s.submit("a2", job("a2", queue="qa", cpu=6), now=0)  # ga's demand: 6 of its nominal
    s.submit("b1", job("b1", queue="qb", cpu=4, priority=1), now=0)
    s.submit("b2", job("b2", queue="qb", cpu=3), now=0)
    assert sorted(ids(s.schedule(now=0))) == ["a1", "b1"]
    assert s.schedule(now=50) == []
    assert s.explain("b2", now=50).clusters[0].held_for is not None
    assert ids(s.schedule(now=100)) == ["b2"]  # starving at 100: borrows 3 of ga's idle 4
    # Admitted under the waiting bound, b2 runs to its end: a2 (ga's 6, only 3 free once a1
    # ended) does not reclaim from it, and gets its quota when b2 ends.
    s.on_finished("a1", now=101)
    assert s.schedule(now=101) == [] and s.take_preemptions() == []
    assert s.explain("a2", now=101).preempting == ()
    s.on_finished("b2", now=200)
    assert ids(s.schedule(now=200)) == ["a2"]


@pytest.mark.parametrize("seed", range(20))
def test_available_after_equals_reserving_and_asking(seed: int) -> None:
    """``available_after_vec`` (what the rule uses instead of a tentative reservation) gives
    what reserving the request and asking ``available_vec`` gives, on random states; and
    another group's reservation of ``x`` lowers a group's availability by at most ``x`` (the
    rule's shortcut when a lender keeps enough anyway)."""
    rng = random.Random(seed)
    cfg = parse_platform_config(
        {
            "clusters": [{"name": "c", "type": "local", "capacity": {"cpu": 40, "gpu": 8}}],
            "groups": [
                {
                    "name": f"g{g}",
                    "quotas": [
                        {
                            "cluster": "c",
                            "nominal": {"cpu": 10, "gpu": 2},
                            **(
                                {"lending_limit": {"cpu": rng.choice([0, 3, 6])}}
                                if g % 2
                                else {"borrowing_limit": {"cpu": rng.choice([0, 5, 20])}}
                            ),
                        }
                    ],
                }
                for g in range(4)
            ],
            "queues": [{"name": "q", "group": "g0"}],
        }
    )
    s = Scheduler(cfg)
    book = s.book
    for k in range(rng.randrange(0, 8)):  # random usage within what each group may take
        g = f"g{rng.randrange(4)}"
        avail = book.available_vec(g, "c")
        want = [rng.randint(0, a) if a < 10**9 else 0 for a in avail]
        book.reserve_vec(f"r{k}", g, "c", want)
    for g in range(4):
        for o in range(4):
            if g == o:
                continue
            avail = book.available_vec(f"g{o}", "c")
            req = [rng.randint(0, a) if a < 10**9 else 0 for a in avail]
            predicted = book.available_after_vec(f"g{g}", "c", f"g{o}", req)
            before = book.available_vec(f"g{g}", "c")
            assert all(p >= b - x for p, b, x in zip(predicted, before, req, strict=True))
            book.reserve_vec("probe", f"g{o}", "c", req)
            assert predicted == book.available_vec(f"g{g}", "c"), (g, o, req)
            book.release("probe")


def test_lender_in_need_names_the_lender_and_ignores_the_borrowers_own_group() -> None:
    s = Scheduler(parse_platform_config(RECLAIM_CFG))
    s.submit("a1", job("a1", queue="qa", cpu=5), now=0)  # ga's demand on c: 5 cpu
    s.submit("b1", job("b1", queue="qb", cpu=4), now=0)
    demand = s._queues.demand
    assert demand["c"]["ga"][0] == 1 and demand["c"]["gb"][0] == 1
    book = s.book
    vec = book.vec(job("x", cpu=2).replica_list()[0][2])
    # gb taking 2 more than its nominal would leave ga 8 - 2 = 6 >= 5: allowed
    assert lender_in_need(book, demand, "gb", "c", vec) is None
    big = book.vec(job("x", cpu=6).replica_list()[0][2])
    need = lender_in_need(book, demand, "gb", "c", big)
    assert need is not None and need.group == "ga" and need.pending_jobs == 1
    # ga taking 6 leaves gb the 4 its pending b1 needs.
    assert lender_in_need(book, demand, "ga", "c", big) is None
