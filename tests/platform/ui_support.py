"""Shared set-up of the web UI tests: the API app (with the UI) served by uvicorn on 127.0.0.1
in a thread, over a real service with its loop running, and a browser page per test that
records console errors and every request it makes."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from api_support import ADMIN_TOKEN, USERS, make_store
from serve_support import free_port, wait_until

from recforge.platform.api import create_app
from recforge.platform.backends.local import LocalBackend
from recforge.platform.model.states import TERMINAL_STATES
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService

#: generous waits for a loaded machine (Playwright's default is 30 s).
WAIT_MS = 90_000
VIEWPORT = {"width": 1280, "height": 800}


@dataclass
class UiServer:
    """A served app: its URL, the service behind it and one token per user."""

    url: str
    service: PlatformService
    tokens: dict[str, str] = field(default_factory=dict)

    def api(self, who: str, method: str, path: str, **kw: Any) -> Any:
        auth = {"Authorization": f"Bearer {self.tokens[who]}"}
        r = httpx.request(method, self.url + path, timeout=60, headers=auth, **kw)
        if r.is_error:
            raise AssertionError(f"{method} {path} as {who}: {r.status_code} {r.text}")
        return None if r.status_code == 204 else r.json()


@contextlib.contextmanager
def ui_server(tmp_path: Path) -> Iterator[UiServer]:
    """The platform of :mod:`api_support` (with a DAG run directory), its loop in a thread and
    the app on a free loopback port; everything still running is cancelled on exit."""
    store, _ = make_store(tmp_path)
    backend = LocalBackend(tmp_path / "runtime", heartbeat_interval=0.5, term_grace=2.0)
    service = PlatformService(store, {"local": backend}, runs_dir=tmp_path / "runs",
                              settings=LoopSettings(heartbeat_timeout=None,
                                                    default_pending_deadline=None))  # fmt: skip
    tokens = {"admin": ADMIN_TOKEN}
    for user, group in USERS.items():
        store.add_user(user, group)
        tokens[user] = store.issue_token(user, label="ui test")
    app = create_app(service, admin_token=ADMIN_TOKEN)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))  # fmt: skip
    stop = threading.Event()
    loop = threading.Thread(target=service.run_forever, args=(stop,), daemon=True)
    web = threading.Thread(target=server.run, daemon=True)
    loop.start()
    web.start()
    try:
        wait_until(lambda: server.started, 60, "uvicorn to listen")
        yield UiServer(f"http://127.0.0.1:{port}", service, tokens)
    finally:
        # Through the service: the store's flag alone never reaches the loop, which owns the
        # processes (a flag-only cancel left the service job and the sleeper running).
        for job in store.iter_jobs([s for s in store.count_jobs() if s not in TERMINAL_STATES]):
            service.cancel_now(store.request_cancel(job.id), "test over")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            s not in TERMINAL_STATES and n for s, n in store.count_jobs().items()
        ):
            service.reconciler.wake.set()
            time.sleep(0.1)
        server.should_exit = True
        stop.set()
        service.reconciler.wake.set()
        web.join(timeout=30)
        loop.join(timeout=30)
        backend.close()
        store.close()


@dataclass
class Tab:
    """A browser page on the UI, with what went wrong in it."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, route: str) -> None:
        self.page.goto(f"{self.base}/ui/#/{route}")

    def __str__(self) -> str:  # what a failed assertion shows: the page and its errors
        try:
            main = self.page.inner_text("#main", timeout=5000)
        except Exception as exc:  # the page may be gone
            main = f"(unreadable: {exc})"
        return f"url {self.page.url}\nerrors {self.errors}\nmain:\n{main}"

    def login(self, token: str) -> None:
        self.open("login")
        self.page.fill("#token", token)
        self.page.click("#login button[type=submit]")
        self.page.wait_for_selector("#who:not(:empty)", timeout=WAIT_MS)


@contextlib.contextmanager
def tab(browser: Any, server: UiServer) -> Iterator[Tab]:
    """A fresh browser context (its own sessionStorage) on ``server``."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    t = Tab(page, server.url)
    page.on("console", lambda m: t.errors.append(f"{m.text} @ {m.location.get('url')}")
            if m.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda e: t.errors.append(f"page error: {e}"))
    page.on("request", lambda r: t.requests.append(r.url))
    try:
        yield t
    except Exception as exc:
        raise AssertionError(f"{exc}\n--- the page ---\n{t}") from exc
    finally:
        context.close()
