"""The submission path does not wait for the scheduling loop, and what it gives up is safe.

A submission is checked against a scheduler of its own and queued through the gate's inbox, so
it returns while a pass holds the scheduler's lock; the inbox keeps the order and reports a
refused job; SQLite writers of one process queue on a lock instead of failing on the busy
timeout; a local launch writes its handle once, complete; the sidecar's imports stay light.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from recforge.platform.backends import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.specs import parse_job_spec
from recforge.platform.model.states import JobState
from recforge.platform.runtime.gate import SchedulerGate
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.scheduling import Scheduler
from recforge.platform.store import Store, User

CONFIG = {
    "clusters": [{"name": "c1", "type": "local", "capacity": {"cpu": 4, "memory": "8Gi"}}],
    "groups": [{"name": "ml", "quotas": [{"cluster": "c1", "nominal": {"cpu": 4,
                                                                      "memory": "8Gi"}}]}],
    "queues": [{"name": "q", "group": "ml"}],
}  # fmt: skip
ALICE = User("alice", "ml", False)
DEADLINE = 120.0  # generous: the machine may be loaded


def _spec(name: str, cpu: float = 1.0, queue: str = "q") -> dict[str, object]:
    return {"name": name, "queue": queue, "command": ["/bin/true"],
            "replica_specs": [{"role": "master", "resources": {"cpu": cpu}}]}  # fmt: skip


class _HeldScheduler(Scheduler):
    """A scheduler whose passes wait for ``release`` once ``hold`` is set (a slow pass)."""

    hold = threading.Event()
    inside = threading.Event()
    release = threading.Event()

    def schedule(self, now: float):  # type: ignore[no-untyped-def]
        if self.hold.is_set():
            self.inside.set()
            assert self.release.wait(DEADLINE), "the test never released the pass"
        return super().schedule(now)


def test_a_submission_returns_while_a_pass_holds_the_scheduler(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    config = parse_platform_config(CONFIG)
    save_config(store, config)
    backend = LocalBackend(tmp_path / "runtime", heartbeat_interval=0.5)
    svc = PlatformService(store, {"local": backend}, scheduler_factory=_HeldScheduler,
                          settings=LoopSettings(tick_interval=0.05))  # fmt: skip
    _HeldScheduler.hold.set()
    ticker = threading.Thread(target=svc.tick, daemon=True)
    try:
        ticker.start()
        assert _HeldScheduler.inside.wait(DEADLINE)  # the pass holds the scheduler's lock now
        done = threading.Event()
        ids: list[int] = []

        def submit() -> None:
            ids.append(svc.submit(ALICE, _spec("while-held")))
            done.set()

        threading.Thread(target=submit, daemon=True).start()
        # The old path queued the job under the scheduler's lock: it would wait for release.
        assert done.wait(DEADLINE), "the submission waited for the pass"
        assert store.get_job(ids[0]).state is JobState.PENDING
    finally:
        _HeldScheduler.hold.clear()
        _HeldScheduler.release.set()
        ticker.join(DEADLINE)
    # The next pass takes the job from the inbox and admits it.
    deadline = time.monotonic() + DEADLINE
    while store.get_job(ids[0]).state is JobState.PENDING:
        assert time.monotonic() < deadline, store.get_job(ids[0])
        svc.tick()
    assert store.get_job(ids[0]).state in (JobState.STARTING, JobState.RUNNING,
                                           JobState.SUCCEEDED)  # fmt: skip
    for j in store.iter_jobs([JobState.STARTING, JobState.RUNNING]):
        if j.handle:
            backend.cancel(j.handle)
    backend.close()
    store.close()


def test_the_inbox_keeps_submission_order_and_reports_refusals() -> None:
    gate = SchedulerGate(parse_platform_config(CONFIG), Scheduler)
    refused: list[tuple[int, str]] = []
    for i in (1, 2, 3):
        gate.enqueue(i, parse_job_spec(_spec(f"j{i}", cpu=2.0)), 100.0 + i,
                     lambda exc, i=i: refused.append((i, str(exc))))  # fmt: skip
    # Queued against a queue that the scheduler does not know (a config change raced it).
    gate.enqueue(4, parse_job_spec(_spec("j4", queue="gone")), 104.0,
                 lambda exc: refused.append((4, str(exc))))  # fmt: skip
    assert not gate.knows(99) and refused and refused[0][0] == 4 and "gone" in refused[0][1]
    result = gate.schedule(200.0)
    # 4 cpus: the first two in submission order fit, the third waits.
    assert [a.job_id for a in result.admissions] == ["1", "2"]
    assert gate.knows(3) and not gate.knows(4)
    assert len(refused) == 1  # reported once


def test_a_refused_inbox_job_fails_naming_why(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}")
    save_config(store, parse_platform_config(CONFIG))
    svc = PlatformService(store, {"local": LocalBackend(tmp_path / "runtime")})
    job_spec, queue = svc.check_job(ALICE, _spec("late"))
    # The scheduler changes under the checked job (as a racing config change would).
    svc.gate.rebuild(parse_platform_config({**CONFIG, "queues": [{"name": "q2", "group": "ml"}]}),
                     lambda: ([], []), time.time())  # fmt: skip
    job = svc.store_job(ALICE, job_spec, queue)
    svc.tick()
    got = store.get_job(job.id)
    assert got.state is JobState.FAILED and "cannot be scheduled" in got.reason, got.reason
    store.close()


def test_sqlite_writers_of_one_process_wait_for_each_other_not_for_the_busy_timeout(
    tmp_path: Path,
) -> None:
    # A busy timeout far below how long the first writer holds its transaction: without the
    # store's writer lock the second writer fails with "database is locked".
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", busy_timeout_s=0.01)
    spec = parse_job_spec(_spec("w")).canonical()
    holding, about_to_write = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        assert holding.wait(DEADLINE)
        about_to_write.set()
        try:
            store.create_job(name="b", owner="alice", group="ml", queue="q", spec=spec)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=second_writer)
    t.start()
    with store.batch():
        store.create_job(name="a", owner="alice", group="ml", queue="q", spec=spec)
        holding.set()
        assert about_to_write.wait(DEADLINE)
        time.sleep(0.3)  # hold the write lock well past the busy timeout
    t.join(DEADLINE)
    assert not errors, errors
    assert sorted(j.name for j in store.iter_jobs([JobState.PENDING])) == ["a", "b"]
    store.close()


def test_a_local_launch_writes_its_handle_once_complete(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "runtime", heartbeat_interval=0.5)
    spec = parse_job_spec({"name": "g", "command": ["/bin/true"], "replica_specs": [
        {"role": "master"}, {"role": "worker", "replicas": 2}]})  # fmt: skip
    handle = backend.launch(7, spec, None)
    on_disk = backend.recover_handle(7, 1, settle_s=0.0)
    assert on_disk is not None and on_disk["complete"] is True
    assert [r["index"] for r in on_disk["replicas"]] == [0, 1, 2]
    assert [r["pid"] for r in on_disk["replicas"]] == [r["pid"] for r in handle["replicas"]]
    deadline = time.monotonic() + DEADLINE
    while not backend.poll(handle).all_succeeded:
        assert time.monotonic() < deadline, backend.poll(handle)
        time.sleep(0.05)
    backend.close()


def test_the_sidecar_and_spawner_import_no_numpy() -> None:
    # They are forked for every replica: only the standard library (and recforge's stdlib-only
    # pieces, the one JSON encoder included) may load.
    code = ("import sys, recforge.platform.backends.spawner, recforge.platform.backends.sidecar;"
            "print([m for m in ('numpy', 'sqlalchemy', 'pydantic') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
