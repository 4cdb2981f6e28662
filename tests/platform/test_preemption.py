"""Preemption that reclaims lent quota, end to end with real processes on two clusters.

Group ``risk`` borrows ``ml``'s idle nominal quota on both clusters; when ``ml`` wants it back,
its jobs preempt risk's borrowing jobs (the newest first), one on each cluster. The victims'
events name the preemptor and why, ``why`` explains both sides, the victims are requeued with
backoff (without using up their attempts) and run again once there is room.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recforge.platform.backends import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.states import JobState
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store, User

S = JobState
PY = sys.executable
ML = User("ana", "ml", False)
RISK = User("rui", "risk", False)
ADMIN = User("root", "admin", True)
CONFIG = {
    "clusters": [
        {"name": "east", "type": "local", "capacity": {"cpu": 2}},
        {"name": "west", "type": "local", "capacity": {"cpu": 2}},
    ],
    "groups": [
        {"name": "ml", "quotas": [{"cluster": "east", "nominal": {"cpu": 1}},
                                  {"cluster": "west", "nominal": {"cpu": 1}}]},
        {"name": "risk", "quotas": [{"cluster": "east", "nominal": {"cpu": 1}},
                                    {"cluster": "west", "nominal": {"cpu": 1}}]},
    ],
    "queues": [{"name": "mlq", "group": "ml"}, {"name": "riskq", "group": "risk"}],
}  # fmt: skip


def stubborn(ready: Path) -> str:
    """Code that ignores SIGTERM, so stopping it takes the backend's grace period.

    That is long enough to ask the preemptor `why` while its victim is being stopped. The job
    counts as running once its process starts, before Python has installed the handler; so it
    says when the handler is in place by a file in ``ready`` named after its pid.
    """
    return ("import os, signal, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: None)\n"
            f"open(os.path.join({str(ready)!r}, str(os.getpid())), 'w').close()\n"
            "time.sleep(120)\n")  # fmt: skip


def job(name: str, queue: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "queue": queue, "command": [PY, "-c", code],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1}}], **extra}  # fmt: skip


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PlatformService]:
    store = Store(f"sqlite:///{tmp_path / 'platform.db'}")
    save_config(store, parse_platform_config(CONFIG))
    backend = LocalBackend(tmp_path / "rt", heartbeat_interval=0.3, term_grace=5.0)
    svc = PlatformService(store, {"local": backend},
                          settings=LoopSettings(tick_interval=0.05, heartbeat_timeout=30))
    stop = threading.Event()
    loop = threading.Thread(target=svc.run_forever, args=(stop,), daemon=True)
    loop.start()
    yield svc
    for j in store.iter_jobs([S.PENDING, S.ADMITTED, S.STARTING, S.RUNNING, S.BACKOFF]):
        store.request_cancel(j.id)
        svc.reconciler.request_cancel(j.id, "test over")
    deadline = time.monotonic() + 60
    while store.count_jobs([S.STARTING, S.RUNNING]) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    svc.reconciler.wake.set()
    loop.join(timeout=30)
    backend.close()
    store.close()


def wait_for(pred: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_lent_quota_is_reclaimed_on_both_clusters(service: PlatformService, tmp_path: Path
                                                   ) -> None:  # fmt: skip
    store = service.store
    ready = tmp_path / "ready"
    ready.mkdir()
    # risk fills both clusters: 1 own + 1 borrowed core on each, the newest ones stubborn.
    risk = [service.submit(RISK, job(f"r{i}", "riskq", stubborn(ready),
                                     retry={"max_attempts": 1, "backoff_seconds": 0.5}))
            for i in range(4)]  # fmt: skip
    wait_for(lambda: all(store.get_job(j).state is S.RUNNING for j in risk), "risk to run")
    where = {j: store.get_job(j).cluster for j in risk}
    assert sorted(where.values()) == ["east", "east", "west", "west"]
    wait_for(lambda: len(list(ready.iterdir())) == 4, "risk's jobs to ignore SIGTERM")

    # ml's jobs run until the test releases them: m1 still runs when m2 is scheduled, however
    # long stopping m2's victim takes on a loaded machine.
    release = tmp_path / "release"
    quick = ("import os, time\n"
             f"while not os.path.exists({str(release)!r}): time.sleep(0.05)\n")  # fmt: skip
    first = service.submit(ML, job("m1", "mlq", quick))
    # While its victim takes its grace period to stop, the preemptor says what it waits for.
    why = wait_for(lambda: (w := service.why(ML, first)).detail.get("preempting") and w,
                   "the preemptor to name its victim")  # fmt: skip
    [victim1] = why.detail["preempting"]
    assert "preempting job(s)" in why.reason and "reclaim group 'ml'" in why.reason
    wait_for(lambda: store.get_job(first).state is S.RUNNING, "m1 to run")
    second = service.submit(ML, job("m2", "mlq", quick))
    wait_for(lambda: store.get_job(second).state in (S.RUNNING, S.SUCCEEDED), "m2 to run")
    release.touch()
    m1, m2 = store.get_job(first), store.get_job(second)
    assert {m1.cluster, m2.cluster} == {"east", "west"}  # one reclaimed on each cluster

    victims = [j for j in risk if S.BACKOFF in {e.to_state for e in store.events(j)}]
    assert len(victims) == 2 and victim1 in victims
    assert {where[v] for v in victims} == {"east", "west"}
    # Newest admission first on each cluster: the later risk job of each pair was preempted.
    for c in ("east", "west"):
        pair = sorted(j for j in risk if where[j] == c)
        assert [v for v in victims if where[v] == c] == [pair[-1]]
    for v, preemptor in ((victim1, first), (next(x for x in victims if x != victim1), second)):
        ev = next(e for e in store.events(v) if e.to_state is S.BACKOFF)
        assert ev.from_state is S.RUNNING
        assert f"preempted by job {preemptor} of group 'ml'" in ev.reason
        assert f"reclaims its nominal quota on cluster '{where[v]}'" in ev.reason
        assert "lent to group 'risk'" in ev.reason and "requeued in" in ev.reason
        assert store.get_job(v).preemptions == 1
    # The victims come back (their attempts were not used up) once ml's short jobs are done.
    wait_for(lambda: all(store.get_job(v).state is S.RUNNING for v in victims), "victims to rerun",
             timeout=90)  # fmt: skip
    for v in victims:
        rec = store.get_job(v)
        assert rec.attempts == 2 and rec.preemptions == 1
        assert service.why(RISK, v).detail["preemptions"] == 1
    untouched = [j for j in risk if j not in victims]
    assert all(store.get_job(j).attempts == 1 for j in untouched)
