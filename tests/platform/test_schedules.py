"""Schedules: cron instants in a time zone, concurrency policies, catch-up after downtime,
backfill, suspend/resume, and the refusals at creation.

The service's clock is real time plus an offset the test moves forward (downtime of hours in
an instant); the jobs themselves run for real on the local backend.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dag_support import Services, run_until

from recforge.platform.model.schedules import ScheduleSpec, iter_instants, parse_schedule_spec
from recforge.platform.model.specs import SpecError
from recforge.platform.runtime.errors import Conflict, Forbidden, Invalid, NotFound
from recforge.platform.runtime.service import PlatformService
from recforge.platform.store import User

PY = sys.executable
ALICE = User("alice", "ml", False)
BOB = User("bob", "ml", False)
EVE = User("eve", "other", False)

#: marks "<scheduled at> start|end <time>"; waits for the file argv[2] ('-': no wait) between.
STEP = (
    "import os, sys, time\n"
    "at = os.environ['RECFORGE_SCHEDULED_AT']\n"
    "def mark(w):\n"
    "    with open(sys.argv[1], 'a') as f: f.write(f'{at} {w} {time.time()}\\n')\n"
    "mark('start')\n"
    "go, deadline = sys.argv[2], time.time() + 300\n"
    "while go != '-' and not os.path.exists(go) and time.time() < deadline: time.sleep(0.05)\n"
    "mark('end')\n"
)


def job(marker: Path, go: Path | None = None) -> dict[str, Any]:
    return {"name": "tick", "queue": "q",
            "command": [PY, "-c", STEP, str(marker), str(go) if go else "-"],
            "replica_specs": [{"role": "worker", "resources": {"cpu": 0.5}}]}  # fmt: skip


def marks(marker: Path) -> list[tuple[str, str, float]]:
    if not marker.exists():
        return []
    return [(a, w, float(t)) for a, w, t in (ln.split() for ln in marker.read_text().splitlines())]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class Clock:
    """Real time plus an offset; starts one minute after a whole hour."""

    def __init__(self) -> None:
        #: the whole hour the clock starts just after (exact: instants are compared to it)
        self.hour = float(math.ceil(time.time() / 3600) * 3600)
        self.offset = self.hour + 60 - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(tmp_path: Path, clock: Clock) -> Iterator[PlatformService]:
    services = Services(tmp_path)
    yield services(clock=clock)
    services.close()


def instants(svc: PlatformService, sid: int) -> dict[float, Any]:
    return {i.instant: i for i in svc.store.instants(sid)}


def settled(svc: PlatformService, sid: int, n: int) -> Any:
    """The schedule's instants once ``n`` are recorded and none is queued or running."""
    got = instants(svc, sid)
    return len(got) == n and all(i.state not in ("QUEUED", "STARTED") for i in got.values()) and got


# -- the model ------------------------------------------------------------------------------------
def test_cron_instants_follow_the_time_zone_across_daylight_saving_changes() -> None:
    spec = ScheduleSpec(name="s", cron="30 2 * * *", timezone="Europe/Berlin", job={"x": 1})
    spring = datetime(2026, 3, 28, 12, tzinfo=UTC).timestamp()
    got = [iso(t) for t in spec.instants(spring, spring + 3 * 86400, 10)]
    # 02:30 does not exist on 29 March (clocks jump 02:00 -> 03:00): it runs at 03:00 CEST.
    assert got == ["2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00",
                   "2026-03-31T00:30:00+00:00"]  # fmt: skip
    autumn = datetime(2026, 10, 24, 12, tzinfo=UTC).timestamp()
    got = [iso(t) for t in spec.instants(autumn, autumn + 2 * 86400, 10)]
    # 02:30 happens twice on 25 October: it runs once (the first, CEST).
    assert got == ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
    # The latest n before a time, and a backfill range, agree with the forward walk.
    assert [iso(t) for t in spec.latest(autumn, autumn + 2 * 86400, 1)] == [got[-1]]
    assert iter_instants(spec, autumn, autumn + 2 * 86400) == spec.instants(
        autumn, autumn + 2 * 86400, 10)
    every_second = ScheduleSpec(name="s", cron="*/15 * * * * *", job={"x": 1})
    t0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert every_second.instants(t0, t0 + 60, 10) == [t0 + 15, t0 + 30, t0 + 45, t0 + 60]
    with pytest.raises(SpecError, match="more than 1000"):
        iter_instants(every_second, t0, t0 + 86400)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"cron": "0 * * * *", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "0 * * * *", "at": "2030-01-01T00:00:00"}, "exactly one"),
        ({}, "exactly one"),
        ({"cron": "0 * * * *", "concurrency": "allow"}, "concurrency"),
        ({"cron": "0 * * * *", "catch_up": 0}, "catch_up"),
    ],
)
def test_bad_schedules_are_refused_naming_the_field(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_schedule_spec({"name": "s", "job": {"x": 1}, **body})
    assert needle in str(err.value)


def test_creation_checks_the_target_and_stores_nothing_when_refused(
    svc: PlatformService, tmp_path: Path
) -> None:
    m = tmp_path / "m"
    bad_dag = {"name": "d", "queue": "q", "nodes": [
        {"name": "a", "job": job(m)}, {"name": "b", "job": job(m)}],
        "edges": [["a", "b"], ["b", "a"]]}  # fmt: skip
    cases = [
        ({"name": "s", "cron": "0 * * * *", "dag": bad_dag}, Invalid, "cycle"),
        ({"name": "s", "cron": "0 * * * *", "job": {**job(m), "queue": "oq"}}, Forbidden, "'oq'"),
        ({"name": "s", "cron": "0 * * * *", "job": {**job(m), "queue": "zz"}}, Invalid, "'zz'"),
        ({"name": "s", "at": "2001-01-01T00:00:00", "job": job(m)}, Invalid, "in the past"),
    ]
    for body, err, needle in cases:
        with pytest.raises(err) as got:
            svc.schedules.create(ALICE, body)
        assert needle in str(got.value), (needle, str(got.value))
    assert svc.store.list_schedules() == []
    svc.schedules.create(ALICE, {"name": "s", "cron": "0 * * * *", "job": job(m)})
    with pytest.raises(Conflict, match="has a schedule named 's'"):
        svc.schedules.create(BOB, {"name": "s", "cron": "0 * * * *", "job": job(m)})


# -- the service ----------------------------------------------------------------------------------
def test_catch_up_after_downtime_runs_the_latest_instants_in_the_schedules_zone(
    svc: PlatformService, clock: Clock, tmp_path: Path
) -> None:
    m = tmp_path / "m"
    # Hourly in India (UTC+05:30): instants at half past each hour, UTC.
    sid = svc.schedules.create(ALICE, {"name": "hourly", "cron": "0 * * * *",
                                       "timezone": "Asia/Kolkata", "concurrency": "queue",
                                       "catch_up": 2, "job": job(m)}).id  # fmt: skip
    first = clock.hour + 1800
    assert svc.store.get_schedule(sid).next_at == first
    svc.tick()
    assert instants(svc, sid) == {}
    clock.jump(5 * 3600)  # down for five hours: five instants due at once
    got = run_until(svc, lambda: settled(svc, sid, 2), 120, "two instants to run")
    due = [first + h * 3600 for h in range(5)]
    assert sorted(got) == due[3:]
    assert all(i.state == "DONE" and i.outcome == "SUCCEEDED" for i in got.values())
    # They ran oldest first, one after the other (queue), each once.
    rows = marks(m)
    assert [(a, w) for a, w, _ in rows] == [
        (iso(due[3]), "start"), (iso(due[3]), "end"), (iso(due[4]), "start"), (iso(due[4]), "end")
    ]  # fmt: skip
    events = [msg for _, msg in svc.schedules.events(ALICE, sid)]
    assert (f"missed 3 instant(s) from {iso(due[0])} to {iso(due[2])}: 3 beyond the catch-up "
            "bound of 2") in events  # fmt: skip
    assert svc.store.get_schedule(sid).next_at == due[4] + 3600
    # The jobs carry the schedule's labels and owner.
    run = svc.store.get_job(got[due[4]].run_id)
    assert run.owner == "alice" and run.spec["labels"]["schedule"] == "hourly"


def test_forbid_skips_queue_waits_and_replace_cancels_a_run_still_going(
    svc: PlatformService, clock: Clock, tmp_path: Path
) -> None:
    ids = {}
    for policy in ("forbid", "queue", "replace"):
        spec = {"name": policy, "cron": "0 * * * *", "concurrency": policy,
                "job": job(tmp_path / f"m-{policy}", tmp_path / f"go-{policy}")}  # fmt: skip
        ids[policy] = svc.schedules.create(ALICE, spec).id
    t1, t2 = clock.hour + 3600, clock.hour + 7200
    clock.jump(3600)
    run_until(svc, lambda: all(marks(tmp_path / f"m-{p}") for p in ids), 120, "first runs")
    clock.jump(3600)  # the next instant comes while each first run still goes
    run_until(svc, lambda: len(instants(svc, ids["forbid"])) == 2
              and len(instants(svc, ids["queue"])) == 2
              and [w for _, w, _ in marks(tmp_path / "m-replace")] == ["start", "start"],
              120, "the second instants")  # fmt: skip
    forbid = instants(svc, ids["forbid"])
    assert forbid[t2].state == "SKIPPED" and "forbid" in forbid[t2].reason
    assert forbid[t2].run_id is None and forbid[t1].state == "STARTED"
    assert instants(svc, ids["queue"])[t2].state == "QUEUED"
    for policy in ids:
        (tmp_path / f"go-{policy}").touch()
    forbid = run_until(svc, lambda: settled(svc, ids["forbid"], 2), 120, "forbid to settle")
    queue = run_until(svc, lambda: settled(svc, ids["queue"], 2), 120, "queue to settle")
    replace = run_until(svc, lambda: settled(svc, ids["replace"], 2), 120, "replace to settle")
    assert forbid[t1].outcome == "SUCCEEDED" and forbid[t2].outcome is None
    assert [a for a, w, _ in marks(tmp_path / "m-forbid") if w == "start"] == [iso(t1)]
    # queue: the second ran once the first had ended.
    assert queue[t1].outcome == queue[t2].outcome == "SUCCEEDED"
    q = marks(tmp_path / "m-queue")
    assert [(a, w) for a, w, _ in q] == [(iso(t1), "start"), (iso(t1), "end"),
                                         (iso(t2), "start"), (iso(t2), "end")]  # fmt: skip
    # replace: the first run was cancelled for the second.
    assert replace[t1].outcome == "CANCELLED" and replace[t2].outcome == "SUCCEEDED"
    first_job = svc.store.get_job(replace[t1].run_id)
    assert "replaced by the run of" in first_job.reason
    assert [(a, w) for a, w, _ in marks(tmp_path / "m-replace")][-1] == (iso(t2), "end")


def test_backfill_runs_a_past_range_once_oldest_first(svc: PlatformService, clock: Clock,
                                                      tmp_path: Path) -> None:  # fmt: skip
    m = tmp_path / "m"
    sid = svc.schedules.create(ALICE, {"name": "bf", "cron": "0 * * * *", "job": job(m)}).id
    hour = clock.hour
    naive = datetime.fromtimestamp(hour, UTC).replace(tzinfo=None)
    out = svc.schedules.backfill(ALICE, sid, naive - timedelta(hours=4),
                                 naive - timedelta(hours=1))  # fmt: skip
    want = [hour - h * 3600 for h in (4, 3, 2, 1)]
    assert out == {"recorded": want, "already": []}
    got = run_until(svc, lambda: settled(svc, sid, 4), 120, "the backfill to run")
    assert all(i.backfill and i.outcome == "SUCCEEDED" for i in got.values())
    assert [(a, w) for a, w, _ in marks(m)] == [x for t in want for x in ((iso(t), "start"),
                                                                          (iso(t), "end"))]
    # A second backfill overlapping the first runs only what was not recorded before.
    out = svc.schedules.backfill(ALICE, sid, naive - timedelta(hours=5),
                                 naive - timedelta(hours=3))  # fmt: skip
    assert out == {"recorded": [hour - 5 * 3600], "already": want[:2]}
    run_until(svc, lambda: settled(svc, sid, 5), 120, "the second backfill")
    starts = [a for a, w, _ in marks(m) if w == "start"]
    assert sorted(starts) == sorted(set(starts)) and len(starts) == 5
    with pytest.raises(Invalid, match="covers the past"):
        svc.schedules.backfill(ALICE, sid, naive, naive + timedelta(hours=2))
    with pytest.raises(Forbidden):
        svc.schedules.backfill(BOB, sid, naive - timedelta(hours=2), naive)
    with pytest.raises(NotFound):
        svc.schedules.backfill(EVE, sid, naive - timedelta(hours=2), naive)


def test_suspend_resume_and_delete(svc: PlatformService, clock: Clock, tmp_path: Path) -> None:
    m = tmp_path / "m"
    sid = svc.schedules.create(ALICE, {"name": "s", "cron": "0 * * * *", "job": job(m)}).id
    svc.schedules.set_suspended(ALICE, sid, True)
    clock.jump(3 * 3600)
    for _ in range(20):
        svc.tick()
    assert instants(svc, sid) == {} and not m.exists()
    svc.schedules.set_suspended(ALICE, sid, False)  # catch_up 1: only the latest runs
    got = run_until(svc, lambda: settled(svc, sid, 1), 120, "the latest instant")
    assert list(got) == [clock.hour + 3 * 3600]
    events = [msg for _, msg in svc.schedules.events(ALICE, sid)]
    assert "suspended by alice" in events and "active by alice" in events
    assert any(e.startswith("missed 2 instant(s)") for e in events)
    with pytest.raises(Forbidden):
        svc.schedules.delete(BOB, sid)
    svc.schedules.delete(ALICE, sid)
    with pytest.raises(NotFound):
        svc.schedules.get(ALICE, sid)


def test_a_one_off_runs_once_and_finishes(svc: PlatformService, clock: Clock,
                                          tmp_path: Path) -> None:  # fmt: skip
    m = tmp_path / "m"
    at = datetime.fromtimestamp(clock() + 600, UTC).replace(microsecond=0)
    sid = svc.schedules.create(ALICE, {"name": "once", "at": at.isoformat(), "job": job(m)}).id
    clock.jump(3600)
    got = run_until(svc, lambda: settled(svc, sid, 1), 120, "the one-off")
    assert list(got) == [at.timestamp()]
    assert svc.store.get_schedule(sid).state == "FINISHED"
    clock.jump(3600)
    for _ in range(10):
        svc.tick()
    assert len(instants(svc, sid)) == 1
