"""PlatformService end to end with real processes (local backend) on a real store."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg import fresh_pg_url
from serve_support import JOB_PYTHON, remove, shared_dir, start_server, wait_until

from recforge.platform.backends import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.states import JobState
from recforge.platform.runtime.errors import Conflict, Forbidden, Invalid, NotFound
from recforge.platform.runtime.reconciler import LoopSettings as ServiceSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store, User

S = JobState
PY = sys.executable
ALICE = User("alice", "ml", False)
BOB = User("bob", "ml", False)
EVE = User("eve", "other", False)

CONFIG = {
    "clusters": [{"name": "local1", "type": "local", "capacity": {"cpu": 2, "memory": "8Gi"}}],
    "groups": [
        {"name": "ml", "quotas": [{"cluster": "local1", "nominal": {"cpu": 2, "memory": "8Gi"}}]},
        {
            "name": "other",
            "quotas": [{"cluster": "local1", "nominal": {}, "borrowing_limit": {"cpu": 0.5}}],
        },
    ],
    "queues": [{"name": "q", "group": "ml"}, {"name": "oq", "group": "other"}],
}

# Appends "<job> <attempt> <replica> start|end <time>" lines to a marker file around a sleep;
# the sleep may be a comma-separated list, one per attempt (the last one for later attempts).
MARK = (
    "import os, sys, time\n"
    "e = os.environ\n"
    "def mark(what):\n"
    "    with open(sys.argv[1], 'a') as f:\n"
    "        f.write(f\"{e['RECFORGE_JOB_ID']} {e['RECFORGE_ATTEMPT']} "
    "{e['RECFORGE_REPLICA_INDEX']} {what} {time.time()}\\n\")\n"
    "naps = sys.argv[2].split(',')\n"
    "nap = float(naps[min(int(e['RECFORGE_ATTEMPT']), len(naps)) - 1])\n"
    "mark('start'); time.sleep(nap); mark('end'); sys.exit(int(sys.argv[3]))\n"
)


def job(name: str, marker: Path, *, sleep: float | str = 0.3, code: int = 0, cpu: float = 1.0,
        replicas: int = 1, python: str = PY, **kw: Any) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "name": name,
        "queue": "q",
        "command": [python, "-c", MARK, str(marker), str(sleep), str(code)],
        "replica_specs": [{"role": "worker", "replicas": replicas, "resources": {"cpu": cpu}}],
    }
    body.update(kw)
    return body


def marks(marker: Path) -> list[tuple[int, int, int, str, float]]:
    if not marker.exists():
        return []
    out = []
    for line in marker.read_text().splitlines():
        j, a, r, what, t = line.split()
        out.append((int(j), int(a), int(r), what, float(t)))
    return out


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., PlatformService]]:
    stores: list[Store] = []
    backends: list[LocalBackend] = []

    def make(url: str | None = None, **settings: Any) -> PlatformService:
        url = url or f"sqlite:///{tmp_path / 'platform.db'}"
        store = Store(url)
        stores.append(store)
        save_config(store, parse_platform_config(CONFIG))
        backend = LocalBackend(
            tmp_path / "runtime", heartbeat_interval=0.3, term_grace=1.0
        )
        backends.append(backend)
        opts = {"tick_interval": 0.05, "heartbeat_timeout": 5.0, **settings}
        return PlatformService(store, {"local": backend}, settings=ServiceSettings(**opts))

    yield make
    for s in stores:
        for j in s.iter_jobs([S.STARTING, S.RUNNING]):
            if j.handle:
                backends[0].cancel(j.handle)
        s.close()
    for b in backends:
        b.close()


def run_until(svc: PlatformService, pred: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            states = {j.id: (j.state.value, j.reason) for j in svc.store.list_jobs(limit=50).items}
            raise AssertionError(f"timed out; jobs: {states}")
        svc.tick()
        time.sleep(0.03)


def states_of(svc: PlatformService, *ids: int) -> list[JobState]:
    return [svc.store.get_job(i).state for i in ids]


def test_submit_refuses_bad_jobs_before_storing(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "m"
    with pytest.raises(Invalid, match="unknown queue 'nope'"):
        svc.submit(ALICE, job("a", m, queue="nope"))
    with pytest.raises(Conflict, match=r"can never be admitted.*cpu"):
        svc.submit(ALICE, job("a", m, cpu=3))
    with pytest.raises(Invalid, match=r"replica_specs\.0\.replicas"):
        svc.submit(ALICE, job("a", m, replicas=0))
    with pytest.raises(Forbidden, match="may not submit to queue 'q'"):
        svc.submit(EVE, job("a", m))
    with pytest.raises(Conflict, match=r"more than group 'other' can ever get.*cpu 1 > 0\.5"):
        svc.submit(EVE, job("a", m, queue="oq"))  # over its quota (borrowing limit 0.5 cpu)
    with pytest.raises(NotFound, match="unknown template 'nope'"):
        svc.submit(ALICE, {"template": "nope"})
    many = job("a", m, cpu=0, replicas=10_000)  # zero resources, still 10,000 processes
    with pytest.raises(Conflict, match=r"pods 10000 > 110"):
        svc.submit(ALICE, many)
    assert svc.store.count_jobs() == {}
    admin = User("root", "ops", True)
    with pytest.raises(Invalid, match=r"(?s)body is not a valid job spec.*unknown field 'comand'"):
        svc.put_template(admin, {"name": "typo", "owner": "ml",
                                 "body": {"name": "t", "comand": ["true"]}})  # fmt: skip
    assert svc.store.get_template("typo") is None  # refused when stored, not at submission
    svc.put_template(
        admin,
        {
            "name": "sleeper",
            "owner": "ml",
            "parameters": [{"name": "secs", "type": "float", "default": 0.1}],
            "body": {**job("tpl", m), "command": [PY, "-c", MARK, str(m), "${secs}", "0"]},
        },
    )
    with pytest.raises(NotFound, match="unknown template 'sleeper'"):  # another group's
        svc.submit(EVE, {"template": "sleeper", "values": {"secs": 0.2}})
    jid = svc.submit(ALICE, {"template": "sleeper", "values": {"secs": 0.2}})
    stored = svc.store.get_job(jid)
    assert stored.state is S.PENDING and stored.spec["command"][-2] == "0.2"
    assert "position 1" in svc.explain(jid)


@pytest.mark.parametrize(
    "backend_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_gangs_that_do_not_fit_together_never_deadlock(
    make_service, tmp_path: Path, backend_db: str, request: pytest.FixtureRequest
) -> None:
    url = None
    if backend_db == "postgres":
        url = fresh_pg_url(request.getfixturevalue("pg_server"))
    svc = make_service(url)
    m = tmp_path / "marks"
    # Each gang: 2 replicas x 0.75 cpu = 1.5 of the 2 cores. Either fits alone, never both.
    a = svc.submit(ALICE, job("a", m, cpu=0.75, replicas=2, sleep=0.4))
    b = svc.submit(BOB, job("b", m, cpu=0.75, replicas=2, sleep=0.4))
    run_until(svc, lambda: states_of(svc, a, b) == [S.SUCCEEDED, S.SUCCEEDED])
    rows = marks(m)
    for jid in (a, b):
        assert sorted((r, w) for j, _, r, w, _ in rows if j == jid) == [
            (0, "end"), (0, "start"), (1, "end"), (1, "start")
        ]  # fmt: skip
        assert [e.to_state for e in svc.store.events(jid)] == [
            S.PENDING, S.ADMITTED, S.STARTING, S.RUNNING, S.SUCCEEDED
        ]  # fmt: skip
        assert svc.store.get_job(jid).attempts == 1
    first_end = max(t for j, _, _, w, t in rows if j == a and w == "end")
    second_start = min(t for j, _, _, w, t in rows if j == b and w == "start")
    assert first_end <= second_start  # whole gangs, one after the other
    assert "succeeded" in {r.state for r in svc.store.replicas(a)}


def test_failing_job_backs_off_exponentially_then_fails(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "marks"
    retry = {"max_attempts": 3, "backoff_seconds": 0.3, "backoff_factor": 2, "max_backoff": 5}
    jid = svc.submit(ALICE, job("flaky", m, sleep=0, code=1, retry=retry))
    run_until(svc, lambda: states_of(svc, jid) == [S.FAILED])
    job_rec = svc.store.get_job(jid)
    assert job_rec.attempts == 3
    assert "exit code 1" in job_rec.reason and "gave up after 3 attempt(s)" in job_rec.reason
    assert sorted(a for _, a, _, w, _ in marks(m) if w == "start") == [1, 2, 3]
    events = svc.store.events(jid)
    backoffs = [e for e in events if e.to_state is S.BACKOFF]
    requeues = [e for e in events if e.to_state is S.PENDING and e.from_state is S.BACKOFF]
    assert len(backoffs) == 2 and len(requeues) == 2
    waited = [r.at - b.at for b, r in zip(backoffs, requeues, strict=True)]
    assert waited[0] >= 0.3 and waited[1] >= 0.6  # 0.3 s, then 0.3 * 2
    assert "retry 2/3 in 0.3s" in backoffs[0].reason and "retry 3/3 in 0.6s" in backoffs[1].reason

    # A replica that cannot even start (missing working directory) is a failed launch.
    bad = svc.submit(ALICE, job("nowhere", m, workdir=str(tmp_path / "missing"),
                                retry={"max_attempts": 2, "backoff_seconds": 0.1}))  # fmt: skip
    run_until(svc, lambda: states_of(svc, bad) == [S.FAILED])
    rec = svc.store.get_job(bad)
    assert rec.attempts == 2 and "cannot start the command" in rec.reason
    assert "missing" in rec.reason and "gave up after 2 attempt(s)" in rec.reason


def _replica_pids(svc: PlatformService, jid: int) -> tuple[int, int]:
    """(sidecar pid, command pid) of replica 0 once its sidecar is up (it wrote its pid file)."""

    def pid_file() -> Path | None:
        handle = svc.store.get_job(jid).handle
        path = Path(handle["dir"]) / "replica-0.pid" if handle else None
        return path if path is not None and path.exists() else None

    run_until(svc, lambda: pid_file() is not None)
    info = json.loads(pid_file().read_text())  # type: ignore[union-attr]
    return int(info["pid"]), int(info["child_pid"])


def _gone(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return raw[raw.rindex(")") + 2] in "ZX"


def test_killed_command_fails_the_job(make_service, tmp_path: Path) -> None:
    svc = make_service()
    jid = svc.submit(ALICE, job("victim", tmp_path / "m", sleep=30))
    _, child = _replica_pids(svc, jid)
    os.kill(child, signal.SIGKILL)
    run_until(svc, lambda: states_of(svc, jid) == [S.FAILED], timeout=10)
    assert (
        "replica 0 failed with exit code -9 (killed by signal 9)" in svc.store.get_job(jid).reason
    )


def _ticks_until(svc: PlatformService, pred: Callable[[], bool], timeout: float
                 ) -> list[tuple[float, float]]:  # fmt: skip
    """Tick until ``pred`` holds; the (start, end) of every tick on the service's clock."""
    ticks: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s; ticks: {len(ticks)}"
        t0 = time.time()
        svc.tick()
        ticks.append((t0, time.time()))
        time.sleep(0.03)
    return ticks


def _event_at(svc: PlatformService, jid: int, state: JobState) -> float:
    return next(e.at for e in svc.store.events(jid) if e.to_state is state)


def test_stalled_sidecar_is_lost_by_missed_heartbeats(make_service, tmp_path: Path) -> None:
    """Lost once its last heartbeat is older than the timeout: never earlier (the bound is on
    the heartbeat file's own clock), and at the first poll after that (one tick later at most,
    whatever the load)."""
    timeout, interval = 3.0, 0.05  # the beat is every 0.3 s: 10 missed beats before a loss
    svc = make_service(heartbeat_timeout=timeout, tick_interval=interval)
    jid = svc.submit(ALICE, job("stall", tmp_path / "m", sleep=120))
    sidecar, child = _replica_pids(svc, jid)
    run_until(svc, lambda: states_of(svc, jid) == [S.RUNNING], timeout=60)
    job_dir = Path(svc.store.get_job(jid).handle["dir"])  # type: ignore[index]
    os.kill(sidecar, signal.SIGSTOP)  # alive to the OS, silent to the platform (a hung node)
    ticks = _ticks_until(svc, lambda: states_of(svc, jid) == [S.FAILED], timeout=timeout + 60)
    # What the backend reads: the beat file, or the pid file before the first beat; frozen now.
    beat_file = job_dir / "replica-0.hb"
    last_beat = (beat_file if beat_file.exists() else job_dir / "replica-0.pid").stat().st_mtime
    lost_at = _event_at(svc, jid, S.FAILED)
    reason = svc.store.get_job(jid).reason
    assert "replica 0 lost: no heartbeat for" in reason, reason
    assert lost_at - last_beat > timeout, (lost_at, last_beat)
    # Polled at least every tick_interval: the first tick starting that long after the beat
    # expired has seen it.
    due = last_beat + timeout + interval
    first_due = next((end for start, end in ticks if start > due), None)
    assert first_due is None or lost_at <= first_due, (lost_at, due, ticks[-3:])
    # The lost gang was stopped (SIGKILL reaches a stopped process).
    wait_until(lambda: _gone(child) and _gone(sidecar), 30, "the lost gang to be gone")


def test_killed_sidecar_is_lost_and_retried(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "m"
    # Attempt 1 would sleep 120 s (it can only end by being stopped), attempt 2 sleeps 0.3 s.
    retry = {"max_attempts": 2, "backoff_seconds": 0.1}
    jid = svc.submit(ALICE, job("lost", m, sleep="120,0.3", retry=retry))
    sidecar, child = _replica_pids(svc, jid)
    os.kill(sidecar, signal.SIGKILL)
    run_until(svc, lambda: states_of(svc, jid) == [S.SUCCEEDED], timeout=60)
    events = svc.store.events(jid)
    assert any("replica 0 lost: process gone without an exit code" in e.reason for e in events)
    assert svc.store.get_job(jid).attempts == 2
    wait_until(lambda: _gone(child), 30, "attempt 1's command to be gone")  # stopped, not left
    assert [a for _, a, _, w, _ in marks(m) if w == "end"] == [2]  # attempt 1 was killed


def test_cancel_and_run_deadline(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "m"
    running = svc.submit(ALICE, job("long", m, sleep=30, cpu=2))
    waiting = svc.submit(ALICE, job("next", m, sleep=0.1, cpu=2))
    _, child = _replica_pids(svc, running)
    run_until(svc, lambda: states_of(svc, running) == [S.RUNNING])
    assert states_of(svc, waiting) == [S.PENDING]
    with pytest.raises(NotFound, match=f"no job with id {running}"):  # another group's job
        svc.cancel(User("carol", "search", False), running)
    with pytest.raises(Forbidden, match="only its owner or an admin may"):
        svc.cancel(BOB, running)  # same group as the owner: may see it, not cancel it
    assert states_of(svc, running)[-1] is S.RUNNING
    flagged = svc.cancel(ALICE, running)  # launched: the loop stops it right away
    assert flagged.cancel_requested and flagged.state is S.RUNNING
    run_until(svc, lambda: states_of(svc, running) == [S.CANCELLED])
    wait_until(lambda: _gone(child), 30, "the cancelled command to be gone")
    assert svc.store.get_job(running).reason == "cancelled by alice"
    with pytest.raises(Conflict, match="already finished: CANCELLED"):
        svc.cancel(ALICE, running)
    run_until(svc, lambda: states_of(svc, waiting) == [S.SUCCEEDED])  # quota came back
    pending = svc.submit(ALICE, job("never", m))
    assert svc.cancel(User("root", "ops", True), pending).state is S.CANCELLED

    slow = svc.submit(ALICE, job("slow", m, sleep=30, run_deadline_seconds=0.8))
    run_until(svc, lambda: states_of(svc, slow) == [S.FAILED])
    rec = svc.store.get_job(slow)
    assert "run deadline 0.8s exceeded" in rec.reason and rec.attempts == 1


KILL9_CONFIG = {
    **CONFIG,
    "backends": {"local": {"heartbeat_interval": 0.3, "term_grace": 1.0}},
    "jobs": {"tick_interval": 0.05, "heartbeat_timeout": 5.0},
}


@pytest.mark.parametrize(
    "backend_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill9_of_serve_loses_nothing_and_starts_nothing_twice(
    tmp_path: Path, backend_db: str, request: pytest.FixtureRequest
) -> None:
    """``recforge platform serve`` killed with SIGKILL while jobs run, then started again: every
    job starts once and ends once, and quota is rebuilt (never more jobs at once than fit)."""
    url = None
    if backend_db == "postgres":
        url = fresh_pg_url(request.getfixturevalue("pg_server"))
    shared = shared_dir()
    m = shared / "marks"
    server = start_server(tmp_path / "serve", KILL9_CONFIG, store_url=url)
    try:
        admin = server.client()
        # One core each, two fit at once: j0 ends while the service is down, j1 outlives the
        # restart, j2 and j3 must wait for the restored reservations to be released.
        sleeps = [1.0, 3.0, 0.5, 0.5]
        ids = [admin.submit(job(f"j{i}", m, sleep=s, python=JOB_PYTHON))["id"]
               for i, s in enumerate(sleeps)]  # fmt: skip

        def state(i: int) -> str:
            return str(admin.get_job(i)["state"])

        wait_until(lambda: sum(state(i) == "RUNNING" for i in ids) == 2, 60, "two running")
        server.kill9()  # no cleanup at all
        wait_until(lambda: any(w == "end" for j, _, _, w, _ in marks(m) if j == ids[0]), 30,
                   "j0 to end while no service is up")  # fmt: skip
        server.restart()
        wait_until(lambda: {state(i) for i in ids} == {"SUCCEEDED"}, 180, "every job to succeed")
        admin.close()
    finally:
        code = server.stop()
        rows = marks(m)
        remove(shared)
    assert code == 0, server.text()
    for jid in ids:
        assert [(a, w) for j, a, _, w, _ in rows if j == jid] == [(1, "start"), (1, "end")]
    # Quota was rebuilt after the restart: never more than 2 one-core jobs at once.
    spans = [(t, +1 if w == "start" else -1) for _, _, _, w, t in rows]
    live, peak = 0, 0
    for _, d in sorted(spans):
        live += d
        peak = max(peak, live)
    assert peak == 2
    text = server.text()
    assert '"msg": "recovered"' in text and '"msg": "job succeeded"' in text
    assert "cannot restore" not in text


def test_elastic_extras_are_launched_when_they_fit(make_service, tmp_path: Path) -> None:
    svc = make_service()
    m = tmp_path / "m"
    jid = svc.submit(ALICE, job("elastic", m, cpu=0.5, replicas=3, min_available=1))
    run_until(svc, lambda: states_of(svc, jid) == [S.SUCCEEDED])
    rec = svc.store.get_job(jid)
    assert rec.admission is not None and len(rec.admission["replicas"]) == 3
    assert sorted(r for _, _, r, w, _ in marks(m) if w == "end") == [0, 1, 2]
    assert [r.index for r in svc.store.replicas(jid)] == [0, 1, 2]


def test_recover_after_a_crash_between_launch_and_handle_write(
    make_service, tmp_path: Path
) -> None:
    """STARTING without a stored handle: the restarted service finds the processes, no relaunch."""
    first = make_service()
    m = tmp_path / "m"
    jid = first.submit(ALICE, job("crashy", m, sleep=1.0))
    _replica_pids(first, jid)  # the sidecar is up (it wrote its pid file before beating)
    handle = first.store.get_job(jid).handle
    assert handle is not None
    first.store.update_job(jid, handle=None)  # as if the service died before writing it
    Path(handle["dir"], "handle.json").unlink()  # ...and before the backend finished launching
    second = make_service()
    out = second.recover()
    assert out == {"reattached": [jid], "relaunch": [], "lost": []}
    recovered = second.store.get_job(jid).handle
    assert recovered is not None and recovered["replicas"][0]["pid"] == handle["replicas"][0]["pid"]
    run_until(second, lambda: states_of(second, jid) == [S.SUCCEEDED])
    assert [(a, w) for _, a, _, w, _ in marks(m)] == [(1, "start"), (1, "end")]

    def ghost_of(name: str, **kw: Any) -> int:
        """A job left STARTING by a crash before anything of its launch happened."""
        ghost = second.submit(ALICE, job(name, m, sleep=0.1, **kw))
        second.store.transition(ghost, S.ADMITTED, "test", cluster="local1",
                                admission=second.store.get_job(jid).admission)  # fmt: skip
        second.store.transition(ghost, S.STARTING, "test: launch never happened", attempts=1)
        return ghost

    # Nothing of the attempt was started and the local backend is sure of it: the same attempt
    # is launched again (the crash was the platform's), even for a job allowed one attempt.
    ghost = ghost_of("ghost")
    third = make_service()
    assert third.recover() == {"reattached": [], "relaunch": [ghost], "lost": []}
    run_until(third, lambda: states_of(third, ghost) == [S.SUCCEEDED])
    rec = third.store.get_job(ghost)
    assert rec.attempts == 1 and "interrupted" not in rec.reason
    assert [(a, w) for j, a, _, w, _ in marks(m) if j == ghost] == [(1, "start"), (1, "end")]

    # A backend that cannot tell: the attempt counts as failed and is retried.
    retry = {"max_attempts": 2, "backoff_seconds": 0.1}
    unsure = ghost_of("unsure", retry=retry)
    fourth = make_service()
    fourth.backends["local"].recovers_launches = False
    assert fourth.recover()["lost"] == [unsure]
    rec = fourth.store.get_job(unsure)
    assert rec.state is S.BACKOFF and "launch interrupted by a restart" in rec.reason
    run_until(fourth, lambda: states_of(fourth, unsure) == [S.SUCCEEDED])
    assert fourth.store.get_job(unsure).attempts == 2
