"""Shared set-up of the DAG and schedule tests: a service with a run directory on a real store
and the local backend, ticked by the test (no loop thread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recforge.platform.backends import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.states import JobState
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store

CONFIG: dict[str, Any] = {
    "clusters": [{"name": "local1", "type": "local", "capacity": {"cpu": 2, "memory": "8Gi"}}],
    "groups": [
        {"name": "ml", "quotas": [{"cluster": "local1", "nominal": {"cpu": 2, "memory": "8Gi"}}]},
        {"name": "other", "quotas": [{"cluster": "local1", "nominal": {"cpu": 1}}]},
    ],
    "queues": [{"name": "q", "group": "ml"}, {"name": "oq", "group": "other"}],
}


class Services:
    """Makes services on stores in ``tmp``; :meth:`close` stops what they left running."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.made: list[tuple[Store, LocalBackend]] = []

    def __call__(self, url: str | None = None,
                 clock: Callable[[], float] = time.time) -> PlatformService:  # fmt: skip
        store = Store(url or f"sqlite:///{self.tmp / 'platform.db'}", clock=clock)
        save_config(store, parse_platform_config(CONFIG))
        backend = LocalBackend(self.tmp / "runtime", heartbeat_interval=0.3, term_grace=1.0)
        self.made.append((store, backend))
        settings = LoopSettings(tick_interval=0.05, heartbeat_timeout=None,
                                default_pending_deadline=None)  # fmt: skip
        return PlatformService(store, {"local": backend}, runs_dir=self.tmp / "runs",
                               settings=settings, clock=clock)  # fmt: skip

    def close(self) -> None:
        for store, backend in self.made:
            for j in store.iter_jobs([JobState.STARTING, JobState.RUNNING]):
                if j.handle:
                    backend.cancel(j.handle)
            store.close()
            backend.close()


def run_until(svc: PlatformService, pred: Callable[[], Any], timeout: float = 60.0,
              what: str = "the condition") -> Any:  # fmt: skip
    """Tick the service until ``pred`` holds (generous deadline for a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not (value := pred()):
        if time.monotonic() > deadline:
            runs = [(r.id, r.state.value, r.reason) for r in svc.store.list_dag_runs()[0]]
            jobs = [(j.id, j.state.value, j.reason) for j in svc.store.list_jobs(limit=20).items]
            raise AssertionError(f"timed out waiting for {what}; runs: {runs}; jobs: {jobs}")
        svc.tick()
        time.sleep(0.02)
    return value
