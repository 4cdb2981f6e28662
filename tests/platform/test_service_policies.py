"""Scheduling policies end to end with real processes: small jobs first with a bounded wait for
big ones, and group quotas with borrowing across two clusters."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recforge.platform.backends import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.states import JobState
from recforge.platform.runtime.reconciler import LoopSettings as ServiceSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.scheduling import AgingPolicy, Scheduler
from recforge.platform.store import Store, User

S = JobState
PY = sys.executable
ANA = User("ana", "ml", False)

# Appends "<job> start|end <time>" to a marker file around a sleep.
MARK = (
    "import os, sys, time\n"
    "def mark(w):\n"
    "    with open(sys.argv[1], 'a') as f:\n"
    "        f.write(f\"{os.environ['RECFORGE_JOB_ID']} {w} {time.time()}\\n\")\n"
    "mark('start'); time.sleep(float(sys.argv[2])); mark('end')\n"
)


def job(name: str, marker: Path, cpu: float, sleep: float, queue: str = "q") -> dict[str, Any]:
    return {
        "name": name,
        "queue": queue,
        "command": [PY, "-c", MARK, str(marker), str(sleep)],
        "replica_specs": [{"role": "worker", "replicas": 1, "resources": {"cpu": cpu}}],
    }


def intervals(marker: Path) -> dict[int, tuple[float, float]]:
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for line in marker.read_text().splitlines():
        j, what, t = line.split()
        (starts if what == "start" else ends)[int(j)] = float(t)
    return {j: (starts[j], ends[j]) for j in starts if j in ends}


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., PlatformService]]:
    made: list[tuple[Store, LocalBackend]] = []

    def make(config: dict[str, Any], aging: AgingPolicy | None = None) -> PlatformService:
        url = f"sqlite:///{tmp_path / 'platform.db'}"
        store = Store(url)
        save_config(store, parse_platform_config(config))
        backend = LocalBackend(tmp_path / "rt", heartbeat_interval=0.3,
                               term_grace=1.0)
        made.append((store, backend))
        return PlatformService(
            store, {"local": backend},
            scheduler_factory=lambda cfg: Scheduler(cfg, aging=aging),
            settings=ServiceSettings(tick_interval=0.05, heartbeat_timeout=10.0),
        )

    yield make
    for store, backend in made:
        for j in store.iter_jobs([S.STARTING, S.RUNNING]):
            if j.handle:
                backend.cancel(j.handle)
        store.close()
        backend.close()


def run_until(svc: PlatformService, pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, {
            j.id: (j.state.value, j.reason) for j in svc.store.list_jobs(limit=50).items
        }
        svc.tick()
        time.sleep(0.02)


ONE_CLUSTER = {
    "clusters": [{"name": "box", "type": "local", "capacity": {"cpu": 2, "memory": "8Gi"}}],
    "groups": [{"name": "ml", "quotas": [{"cluster": "box", "nominal": {"cpu": 2}}]}],
    "queues": [{"name": "q", "group": "ml"}],
}


def test_small_jobs_overtake_a_big_one_which_still_starts_within_the_bound(
    make_service, tmp_path: Path
) -> None:
    max_wait = 1.5
    svc = make_service(ONE_CLUSTER, AgingPolicy(aging_seconds=None, max_wait_seconds=max_wait))
    ticks: list[tuple[float, float]] = []  # (start, end) of every tick, on the store's clock
    tick = svc.tick

    def timed_tick() -> Any:
        t0 = time.time()
        out = tick()
        ticks.append((t0, time.time()))
        return out

    svc.tick = timed_tick  # type: ignore[method-assign]
    m = tmp_path / "marks"
    first = svc.submit(ANA, job("first", m, cpu=1.0, sleep=0.6))
    run_until(svc, lambda: svc.store.get_job(first).state is S.RUNNING)
    t_big = time.time()
    big = svc.submit(ANA, job("big", m, cpu=2.0, sleep=0.2))
    # A steady stream of small jobs that always fit beside whatever runs: without the bound they
    # would keep one core busy and the big job would never start. The stream lasts until the big
    # job left PENDING (a minute at most, however loaded the machine).
    smalls = []
    t_end = time.monotonic() + 60.0
    while time.monotonic() < t_end and svc.store.get_job(big).state is S.PENDING:
        smalls.append(svc.submit(ANA, job(f"s{len(smalls)}", m, cpu=1.0, sleep=0.5)))
        for _ in range(10):
            svc.tick()
            time.sleep(0.03)
    run_until(svc, lambda: svc.store.get_job(big).state is S.SUCCEEDED, timeout=120)
    run_until(svc, lambda: all(svc.store.get_job(s).state is S.SUCCEEDED for s in smalls),
              timeout=120)  # fmt: skip
    spans = intervals(m)
    # Small jobs went first: at least one small started after the big one was submitted and
    # before the big one started.
    big_start = spans[big][0]
    overtook = [s for s in smalls if t_big < spans[s][0] < big_start]
    assert overtook, "no small job overtook the big one"

    # The bound, stated on the store's own clock and in scheduling passes (independent of how
    # slowly processes start or ticks run on a loaded machine): once the big job starves
    # (max_wait after it was queued), no job is admitted before it, so it is admitted in the
    # first tick that starts after the jobs holding quota at that moment have ended (a tick
    # settles ended jobs before its pass, or the next one does). Without the bound small jobs
    # keep getting admitted.
    def at(job_id: int, state: JobState) -> float:
        return next(e.at for e in svc.store.events(job_id) if e.to_state is state)

    starving = svc.store.get_job(big).created_at + max_wait  # the scheduler's aging clock
    admitted_big = at(big, S.ADMITTED)
    holders = [j for j in [first, *smalls] if at(j, S.ADMITTED) <= starving]
    released = max(at(j, S.SUCCEEDED) for j in holders)
    late = [j for j in smalls if starving < at(j, S.ADMITTED) < admitted_big]
    assert not late, f"jobs {late} were admitted while the big job was starving"
    ready = max(starving, released)
    bound = next((end for start, end in ticks if start > ready), None)
    assert bound is not None and admitted_big <= bound, (admitted_big, ready, bound)
    # Never more than the 2 cores in use, and the big job ran alone.
    assert all(not (s0 < spans[big][1] and spans[big][0] < s1)
               for j, (s0, s1) in spans.items() if j != big)


TWO_CLUSTERS = {
    "clusters": [
        {"name": "east", "type": "local", "capacity": {"cpu": 2, "memory": "8Gi"}},
        {"name": "west", "type": "local", "capacity": {"cpu": 2, "memory": "8Gi"}},
    ],
    "groups": [
        {"name": "ml", "quotas": [
            {"cluster": "east", "nominal": {"cpu": 1}, "borrowing_limit": {"cpu": 0.5}},
            {"cluster": "west", "nominal": {"cpu": 1}, "borrowing_limit": {"cpu": 0.5}},
        ]},
        {"name": "risk", "quotas": [
            {"cluster": "east", "nominal": {"cpu": 1}},
            {"cluster": "west", "nominal": {"cpu": 1}},
        ]},
    ],
    "queues": [{"name": "q", "group": "ml"}, {"name": "rq", "group": "risk"}],
}


def test_quota_borrowing_holds_across_two_clusters(make_service, tmp_path: Path) -> None:
    svc = make_service(TWO_CLUSTERS)
    m = tmp_path / "marks"
    # ml may use 1 + 0.5 borrowed cpu per cluster: two 0.75-cpu jobs per cluster, four in all.
    ids = [svc.submit(ANA, job(f"j{i}", m, cpu=0.75, sleep=1.5)) for i in range(5)]
    run_until(svc, lambda: sum(svc.store.get_job(i).state is S.RUNNING for i in ids) == 4)
    for _ in range(10):
        svc.tick()
        time.sleep(0.03)
    states = [svc.store.get_job(i).state for i in ids]
    assert states.count(S.RUNNING) == 4 and states.count(S.PENDING) == 1
    clusters = [svc.store.get_job(i).cluster for i in ids if svc.store.get_job(i).state
                is S.RUNNING]
    assert sorted(clusters) == ["east", "east", "west", "west"]
    waiting = next(i for i in ids if svc.store.get_job(i).state is S.PENDING)
    why = svc.explain(waiting)
    assert "cpu" in why, why
    # risk's own nominal quota is still there for risk even though ml borrowed from it.
    risk = svc.submit(User("rui", "risk", False), job("r", m, cpu=0.5, sleep=0.1, queue="rq"))
    run_until(svc, lambda: svc.store.get_job(risk).state is S.SUCCEEDED)
    run_until(svc, lambda: all(svc.store.get_job(i).state is S.SUCCEEDED for i in ids))
    spans = intervals(m)
    assert max_overlap([spans[i] for i in ids]) == 4
