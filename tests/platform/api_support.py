"""Shared set-up for the REST API / CLI tests: a real service on a temporary SQLite store.

The platform has one local cluster (4 cores, 4 GiB) and two groups, ``ml`` and ``cv``, each with
a nominal quota of 2 cores / 2 GiB there and no borrowing; queue ``ml-q`` feeds ``ml`` and
``cv-q`` feeds ``cv``. Users: alice and bob in ``ml``, carol in ``cv``, plus the bootstrap admin.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serve_support import JOB_PYTHON

from recforge.platform.api import create_app
from recforge.platform.backends.local import LocalBackend
from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.states import TERMINAL_STATES
from recforge.platform.runtime.reconciler import LoopSettings as ServiceSettings
from recforge.platform.runtime.service import PlatformService, save_config
from recforge.platform.store import Store

with warnings.catch_warnings():
    # starlette's TestClient warns that it prefers httpx2; httpx works and is what we ship.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_TOKEN = "test-admin-token-0123456789"
CONFIG: dict[str, Any] = {
    "clusters": [{"name": "local", "type": "local", "capacity": {"cpu": 4, "memory": "4Gi"}}],
    "groups": [
        {
            "name": g,
            "quotas": [
                {
                    "cluster": "local",
                    "nominal": {"cpu": 2, "memory": "2Gi"},
                    "borrowing_limit": {"cpu": 0, "memory": 0},
                }
            ],
        }
        for g in ("ml", "cv")
    ],
    "queues": [{"name": "ml-q", "group": "ml"}, {"name": "cv-q", "group": "cv"}],
}
USERS = {"alice": "ml", "bob": "ml", "carol": "cv"}


def job_spec(
    name: str = "train",
    *,
    queue: str = "ml-q",
    cpu: float = 1,
    memory: str = "256Mi",
    command: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid one-replica job spec (a quick ``python -c pass`` unless ``command`` is given)."""
    return {
        "name": name,
        "queue": queue,
        "command": command or [JOB_PYTHON, "-c", "pass"],
        "replica_specs": [
            {"role": "master", "resources": {"cpu": cpu, "memory": memory}},
        ],
        **extra,
    }


@dataclass
class Platform:
    """A service, its store and app, a TestClient and one token per user."""

    service: PlatformService
    store: Store
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def submit(self, who: str, spec: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post("/jobs", json=spec, headers=self.auth(who))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def close(self) -> None:
        # Stop anything still running so no test leaves processes behind.
        for job in self.store.iter_jobs(
            [s for s in self.store.count_jobs() if s not in TERMINAL_STATES]
        ):
            # Through the service: the store's flag alone never reaches the loop's cancels.
            self.service.cancel_now(self.store.request_cancel(job.id), "test over")
        self.service.tick()
        for backend in self.service.backends.values():
            backend.close()
        self.client.close()
        self.store.close()


def make_store(tmp_path: Path, url: str | None = None) -> tuple[Store, str]:
    url = url or f"sqlite:///{tmp_path / 'platform.db'}"
    store = Store(url)
    save_config(store, parse_platform_config(CONFIG, source="test config"))
    return store, url


@contextlib.contextmanager
def running_platform(tmp_path: Path) -> Iterator[Platform]:
    """:func:`make_platform` with its loop running in a thread (as ``serve`` runs it); stopped
    and closed on exit."""
    p = make_platform(tmp_path)
    stop = threading.Event()
    loop = threading.Thread(target=p.service.run_forever, args=(stop,), daemon=True)
    loop.start()
    try:
        yield p
    finally:
        stop.set()
        p.service.reconciler.wake.set()
        loop.join(timeout=30)
        p.close()


def make_platform(tmp_path: Path, url: str | None = None) -> Platform:
    """The platform on ``url`` (default: a SQLite file in ``tmp_path``)."""
    store, url = make_store(tmp_path, url)
    backend = LocalBackend(tmp_path / "runtime", heartbeat_interval=0.5)
    service = PlatformService(
        store, {"local": backend}, settings=ServiceSettings(heartbeat_timeout=None)
    )
    app = create_app(service, admin_token=ADMIN_TOKEN)
    plat = Platform(service, store, TestClient(app), {"admin": ADMIN_TOKEN})
    for user, group in USERS.items():
        store.add_user(user, group)
        plat.tokens[user] = store.issue_token(user, label="test")
    return plat


@contextlib.contextmanager
def serving(app: Any, port: int | None = None) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (``port``, default a free one) in a thread;
    yields its URL and stops it on exit."""
    import time

    import uvicorn
    from serve_support import free_port

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    web = threading.Thread(target=server.run, daemon=True)
    web.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and web.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        web.join(timeout=30)
