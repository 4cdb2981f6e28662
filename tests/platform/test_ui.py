"""The web UI in headless Chromium (Playwright on Debian's ``chromium``; no browser download).

One served platform per module (uvicorn on 127.0.0.1, the service's loop running): alice and bob
in group ``ml``, carol in ``cv``. Every page must load with no console error and fetch nothing
but this server; what a page shows is compared with what the REST API answers for the same
token; a user of one group must find nothing of another group's work anywhere in the UI; data
is shown as text, never run as markup. ``RECFORGE_UI_SCREENSHOTS=DIR`` also writes a 1280x800
screenshot of each page to DIR (docs/ui/ holds the committed ones).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import job_spec
from serve_support import wait_until
from ui_support import UiServer, tab, ui_server

from recforge.platform.store import User

PY = sys.executable
SCRIPT_NAME = "<script>window.__pwned=1</script>"
IMG_NAME = "<img src=x onerror=window.__pwned=2>"
SHOTS = os.environ.get("RECFORGE_UI_SCREENSHOTS")
CELLS = "rows => rows.map(r => [...r.cells].map(c => c.innerText))"


def _state(server: UiServer, job_id: int) -> str:
    return str(server.api("admin", "GET", f"/jobs/{job_id}")["state"])


def _step(name: str, queue: str, code: int = 0) -> dict[str, Any]:
    return {"name": name, "job": job_spec(name, queue=queue, cpu=0.25, command=[
        PY, "-c", f"import sys; print('step {name}'); sys.exit({code})"])}


def _dag(name: str, queue: str) -> dict[str, Any]:
    """read -> (left, right) -> join; left fails, and the policy lets right finish."""
    return {"name": name, "queue": queue, "failure_policy": "continue",
            "nodes": [_step("read", queue), _step("left", queue, 3), _step("right", queue),
                      _step("join", queue)],
            "edges": [["read", "left"], ["read", "right"], ["left", "join"], ["right", "join"]]}


def _dag_state(server: UiServer, run_id: int) -> str:
    return str(server.api("admin", "GET", f"/dags/{run_id}")["state"])


SERVER_CODE = ("import os, http.server as h; h.ThreadingHTTPServer(('127.0.0.1', "
               "int(os.environ['PORT'])), h.SimpleHTTPRequestHandler).serve_forever()")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    with ui_server(tmp_path_factory.mktemp("ui")) as s:
        hello = s.api("alice", "POST", "/jobs", json=job_spec(
            "hello", cpu=0.5, command=[PY, "-c", "print('hello from the job'); print('line 2')"]))
        wait_until(lambda: _state(s, hello["id"]) == "SUCCEEDED", 120, "hello to succeed")
        # Markup where users write free text: a label and the job's output (job names follow
        # the name rule, so a name with markup is stored directly: the API would refuse it).
        marked = s.api("alice", "POST", "/jobs", json=job_spec(
            "markup", cpu=0.25, labels={"note": IMG_NAME},
            command=[PY, "-c", f"print({SCRIPT_NAME!r}); print({IMG_NAME!r})"]))
        wait_until(lambda: _state(s, marked["id"]) == "SUCCEEDED", 120, "markup job to end")
        raw = s.service.store.create_job(name=SCRIPT_NAME, owner="alice", group="ml",
                                         queue="ml-q", spec=job_spec("x"), reason=IMG_NAME)
        s.service.cancel(User("alice", "ml", False), raw.id)
        # DAG runs (one per group) and schedules (one per group, one backfilled instant).
        dag = s.api("alice", "POST", "/dags", json=_dag("pipeline", "ml-q"))
        cv_dag = s.api("carol", "POST", "/dags", json=_dag("cv-secret-dag", "cv-q"))
        for run in (dag, cv_dag):
            wait_until(lambda r=run: _dag_state(s, r["id"]) not in ("PENDING", "RUNNING"), 180,
                       "the DAG runs to end")
        sched = s.api("alice", "POST", "/schedules", json={
            "name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
            "concurrency": "forbid", "job": job_spec("nightly-train", cpu=0.25)})
        s.api("alice", "POST", f"/schedules/{sched['id']}/backfill",
              json={"start": "2026-01-10T00:00:00", "end": "2026-01-10T23:59:00"})
        cv_sched = s.api("carol", "POST", "/schedules", json={
            "name": "cv-secret-schedule", "cron": "0 * * * *",
            "job": job_spec("cv-secret-hourly", queue="cv-q", cpu=0.25)})
        wait_until(lambda: [i["outcome"] for i in s.api(
            "alice", "GET", f"/schedules/{sched['id']}/instants")] == ["SUCCEEDED"], 180,
            "the backfilled instant to run")
        # Holding quota: a running batch job and a service; then a job that must wait.
        sleeper = s.api("alice", "POST", "/jobs", json=job_spec(
            "sleeper", cpu=1, command=[PY, "-c", "import time; time.sleep(900)"]))
        svc = s.api("alice", "POST", "/jobs", json={
            "name": "web", "queue": "ml-q", "kind": "service", "command": [PY, "-c", SERVER_CODE],
            "service": {"replicas": 1, "max_replicas": 2, "readiness": {"http_path": "/"},
                        "resources": {"cpu": 0.25, "memory": "128Mi"}}})
        wait_until(lambda: _state(s, sleeper["id"]) == "RUNNING", 120, "sleeper to run")
        wait_until(lambda: s.api("alice", "GET", f"/jobs/{svc['id']}/service")["ready"] == 1,
                   180, "the service to be ready")
        # readiness is seen before the reconciler records RUNNING: wait for that too, so that
        # the page and the API never disagree on a state still moving
        wait_until(lambda: _state(s, svc["id"]) == "RUNNING", 120, "the service job to run")
        waiting = s.api("alice", "POST", "/jobs", json=job_spec("waiting", cpu=1.5))
        secret = s.api("carol", "POST", "/jobs", json=job_spec("cv-secret-job", queue="cv-q"))
        wait_until(lambda: _state(s, secret["id"]) == "SUCCEEDED", 120, "carol's job to end")
        s.ids = {"hello": hello["id"], "sleeper": sleeper["id"],  # type: ignore[attr-defined]
                 "secret": secret["id"], "markup": marked["id"], "raw": raw.id,
                 "dag": dag["id"], "cv_dag": cv_dag["id"], "schedule": sched["id"],
                 "cv_schedule": cv_sched["id"], "service": svc["id"], "waiting": waiting["id"]}
        yield s


def _rows(t: Any, table: str) -> list[list[str]]:
    """The text of every cell of ``table``'s body, row by row."""
    return t.page.eval_on_selector_all(f"{table} tbody tr", CELLS)  # type: ignore[no-any-return]


def _shot(t: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        t.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_login_keeps_the_token_in_session_storage_and_lists_the_groups_jobs(
    chromium: Any, server: UiServer
) -> None:
    with tab(chromium, server) as t:
        t.page.goto(f"{server.url}/ui")  # no token: the login page
        t.page.wait_for_selector("#login")
        assert t.page.evaluate("location.hash") == "#/login"
        _shot(t, "login")
        t.page.fill("#token", "not-a-token")
        t.page.click("#login button[type=submit]")
        t.page.wait_for_selector("#login-message .error")
        assert "unknown, revoked or expired token" in t.page.inner_text("#login-message")
        assert t.page.evaluate("sessionStorage.length") == 0
        t.login(server.tokens["alice"])
        assert t.page.evaluate("sessionStorage.getItem('recforge.token')") == \
            server.tokens["alice"]
        assert t.page.evaluate("localStorage.length") == 0  # never kept beyond the tab
        assert t.page.inner_text("#who") == "alice · group ml"
        t.page.wait_for_selector("#jobs-table")
        api = server.api("alice", "GET", "/jobs")["items"]
        ids = t.page.eval_on_selector_all(
            "#jobs-table tbody tr", "rows => rows.map(r => r.cells[0].innerText)")
        assert ids == [str(j["id"]) for j in api]
        names = t.page.eval_on_selector_all(".job-name", "els => els.map(e => e.innerText)")
        assert names == [j["name"] for j in api]
        assert {"hello", "markup", SCRIPT_NAME, "sleeper", "web", "waiting"} <= set(names)
        states = t.page.eval_on_selector_all(
            "#jobs-table [data-state]", "els => els.map(e => e.dataset.state)")
        assert states == [j["state"] for j in api]
        _shot(t, "jobs")
        # the state filter asks the API for that state only
        t.page.select_option("#state-filter", "SUCCEEDED")
        t.page.wait_for_function(
            "() => [...document.querySelectorAll('#jobs-table [data-state]')]"
            ".every(e => e.dataset.state === 'SUCCEEDED')")
        assert t.page.inner_text("#jobs-table").count("hello") == 1
        # log out: the token is gone and the pages ask for it again
        t.page.click("#logout")
        t.page.wait_for_selector("#login")
        assert t.page.evaluate("sessionStorage.length") == 0
        t.open("jobs")
        t.page.wait_for_function("() => location.hash === '#/login'")
        assert t.errors == [f"Failed to load resource: the server responded with a status of "
                            f"401 (Unauthorized) @ {server.url}/whoami"]
        assert all(r.startswith(server.url) for r in t.requests)


def test_markup_in_names_labels_reasons_and_logs_shows_as_text_and_runs_nothing(
    chromium: Any, server: UiServer
) -> None:
    refused = httpx.post(f"{server.url}/jobs", json=job_spec(SCRIPT_NAME), timeout=60,
                         headers={"Authorization": f"Bearer {server.tokens['alice']}"})
    assert refused.status_code == 422 and "job name" in refused.text  # the name rule
    ids = server.ids  # type: ignore[attr-defined]
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        t.page.wait_for_selector("#jobs-table")
        names = t.page.eval_on_selector_all(".job-name", "els => els.map(e => e.innerText)")
        assert SCRIPT_NAME in names
        t.open(f"jobs/{ids['raw']}")
        t.page.wait_for_selector("#events-table")
        assert t.page.inner_text("#job-name") == SCRIPT_NAME
        first = t.page.eval_on_selector("#events-table tbody tr", "r => r.cells[3].innerText")
        assert first == IMG_NAME  # the stored reason of its creation event
        t.open(f"jobs/{ids['markup']}")
        t.page.wait_for_function(
            "() => document.querySelector('#log-text')?.textContent.includes('window.__pwned')")
        assert t.page.inner_text("#log-text").splitlines()[:2] == [SCRIPT_NAME, IMG_NAME]
        assert f"note={IMG_NAME}" in t.page.inner_text("#job-labels")
        assert t.page.evaluate("window.__pwned") is None
        assert t.page.eval_on_selector_all("#main script, #main img", "els => els.length") == 0
        assert t.errors == []


def test_a_user_of_one_group_sees_nothing_of_another_groups_work(
    chromium: Any, server: UiServer
) -> None:
    ids = server.ids  # type: ignore[attr-defined]
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        for route, ready in [("jobs", "#jobs-table"), ("dags", "#dags-table"),
                             ("schedules", "#schedules-table"), ("queues", "#usage-table"),
                             ("services", "#services-table")]:
            t.open(route)
            t.page.wait_for_selector(ready)
            html = t.page.content()
            assert "cv-secret" not in html and "cv-q" not in html, route
            assert "carol" not in html, route
        t.open("queues")
        t.page.wait_for_selector("#usage-table")
        assert {r[1] for r in _rows(t, "#usage-table")} == {"ml"}
        assert [q[0] for q in _rows(t, "#queues-table")] == ["ml-q"]
        refused = []
        for kind in ("jobs/secret", "dags/cv_dag", "schedules/cv_schedule"):
            path = f"/{kind.split('/')[0]}/{ids[kind.split('/')[1]]}"
            route = path.lstrip("/")
            t.open(route)
            t.page.wait_for_selector("#main .error")
            assert t.page.inner_text("#main .error").startswith("404: no "), route
            assert "cv-secret" not in t.page.content()
            refused.append(f"{server.url}{path}")
        assert t.errors and all(any(e.endswith(f"@ {u}") for u in refused) and "404" in e
                                for e in t.errors), t.errors
    with tab(chromium, server) as t:  # carol sees her own work, and nothing of ml's
        t.login(server.tokens["carol"])
        t.page.wait_for_selector("#jobs-table")
        text = t.page.inner_text("#jobs-table")
        assert "cv-secret-job" in text and "hello" not in text and "sleeper" not in text
        t.open("dags")
        t.page.wait_for_selector("#dags-table")
        assert "cv-secret-dag" in t.page.inner_text("#dags-table")
        assert "pipeline" not in t.page.inner_text("#dags-table")
        assert t.errors == []
    with tab(chromium, server) as t:  # an admin sees both groups
        t.login(server.tokens["admin"])
        t.open("queues")
        t.page.wait_for_selector("#usage-table")
        assert {r[1] for r in _rows(t, "#usage-table")} == {"ml", "cv"}
        assert t.errors == []


def test_the_dag_run_page_draws_the_graph_with_each_nodes_state(
    chromium: Any, server: UiServer
) -> None:
    run_id = server.ids["dag"]  # type: ignore[attr-defined]
    api = server.api("alice", "GET", f"/dags/{run_id}")
    states = {n["name"]: n["state"] for n in api["nodes"]}
    assert states == {"read": "SUCCEEDED", "left": "FAILED", "right": "SUCCEEDED",
                      "join": "SKIPPED"}  # the spec's failure policy, seen through the API
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        t.open("dags")
        t.page.wait_for_selector("#dags-table")
        assert t.page.inner_text("#dags-table .dag-name") == "pipeline"
        _shot(t, "dags")
        t.page.click("#dags-table .dag-name")
        t.page.wait_for_selector("#dag-graph g.node")
        drawn = dict(t.page.eval_on_selector_all(
            "#dag-graph g.node", "els => els.map(e => [e.dataset.node, e.dataset.state])"))
        assert drawn == states
        edges = t.page.eval_on_selector_all(
            "#dag-graph path.edge", "els => els.map(e => [e.dataset.from, e.dataset.to])")
        assert sorted(map(tuple, edges)) == [("left", "join"), ("read", "left"),
                                             ("read", "right"), ("right", "join")]
        # layered left to right: read, then left and right one above the other, then join
        box = dict(t.page.eval_on_selector_all("#dag-graph g.node", """els => els.map(e => {
            const b = e.getBoundingClientRect(); return [e.dataset.node, [b.x, b.y]]; })"""))
        assert box["read"][0] < box["left"][0] == box["right"][0] < box["join"][0]
        assert box["left"][1] != box["right"][1]
        # each node links to its job; the table shows the same states and jobs
        jobs = {n["name"]: n["job_id"] for n in api["nodes"]}
        links = dict(t.page.eval_on_selector_all("#dag-graph a", """els => els.map(a =>
            [a.querySelector('g').dataset.node, a.getAttribute('href')])"""))
        assert links == {n: f"#/jobs/{j}" for n, j in jobs.items() if j is not None}
        assert [r[1] for r in _rows(t, "#nodes-table")] == [n["state"] for n in api["nodes"]]
        events = server.api("alice", "GET", f"/dags/{run_id}/events")
        assert len(_rows(t, "#dag-events-table")) == len(events)
        _shot(t, "dag")
        t.page.click(f"#dag-graph a[href='#/jobs/{jobs['left']}']")
        t.page.wait_for_selector("#log-text")
        assert t.page.inner_text("#job-name") == "left"
        t.page.wait_for_function(
            "() => document.querySelector('#log-text').textContent.includes('step left')")
        assert t.errors == []


def test_a_pending_job_shows_why_and_the_queue_and_quota_page_agree_with_the_api(
    chromium: Any, server: UiServer
) -> None:
    waiting = server.ids["waiting"]  # type: ignore[attr-defined]
    why = server.api("alice", "GET", f"/jobs/{waiting}/why")
    assert why["state"] == "PENDING" and why["blocking"], why
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        t.open(f"jobs/{waiting}")
        t.page.wait_for_selector("#why-blocking")
        shown = t.page.inner_text("#why-reason").splitlines()
        assert shown[0] == why["reason"].splitlines()[0]  # later lines count the waiting time
        assert shown[-1].strip() == why["reason"].splitlines()[-1].strip() == (
            "local: blocked by cpu: needs 1.5, 0.5 available (limited by group 'ml' nominal + "
            "borrowing limit)")
        assert t.page.inner_text("#why-position").startswith(f"place {why['queue_position']} ")
        rows = _rows(t, "#why-blocking")
        assert rows == [[b["cluster"], b["resource"], f"{b['needed']:g}", f"{b['available']:g}",
                         b["limited_by"]] for b in why["blocking"]]
        assert t.page.inner_text("#no-logs").startswith("Not launched yet")
        _shot(t, "why")
        overview = server.api("alice", "GET", "/overview")
        t.open("queues")
        t.page.wait_for_selector("#usage-table")
        queues = _rows(t, "#queues-table")
        assert [(q[0], q[2], q[4]) for q in queues] == [
            (q["name"], str(len(q["pending"])), str(q["admitted"])) for q in overview["queues"]]
        assert str(waiting) in queues[0][5]
        usage = _rows(t, "#usage-table")
        cpu = next(r for r in usage if r[2].startswith("cpu"))
        ml = overview["clusters"][0]["groups"][0]
        assert (cpu[0], cpu[1], float(cpu[3]), float(cpu[4])) == (
            "local", "ml", ml["used"]["cpu"], ml["nominal"]["cpu"])
        assert ml["used"]["cpu"] == 1.5  # the sleeper (1) and the service (2 x 0.25)
        _shot(t, "queues")
        assert t.errors == []


def test_schedules_and_services_pages_show_what_the_api_says(
    chromium: Any, server: UiServer
) -> None:
    ids = server.ids  # type: ignore[attr-defined]
    instants = server.api("alice", "GET", f"/schedules/{ids['schedule']}/instants")
    svc = server.api("alice", "GET", f"/jobs/{ids['service']}/service")
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        t.open("schedules")
        t.page.wait_for_selector("#schedules-table")
        row = t.page.eval_on_selector("#schedules-table tbody tr",
                                      "r => [...r.cells].map(c => c.innerText)")
        assert row[1] == "nightly" and row[3] == "cron 30 2 * * * (Europe/Berlin)"
        _shot(t, "schedules")
        t.page.click("#schedules-table .schedule-name")
        t.page.wait_for_selector("#instants-table")
        cells = _rows(t, "#instants-table")
        assert len(cells) == len(instants) == 1
        assert cells[0][2] == "yes" and cells[0][4] == "SUCCEEDED"
        assert cells[0][3] == f"job {instants[0]['run_id']}"
        _shot(t, "schedule")
        t.open("services")
        t.page.wait_for_selector("#services-table")
        row = t.page.eval_on_selector("#services-table tbody tr",
                                      "r => [...r.cells].map(c => c.innerText)")
        assert row[1] == "web" and row[4] == svc["address"] and row[5] == "1 / 1 / 2"
        _shot(t, "services")
        t.page.click("#services-table .service-name")
        t.page.wait_for_selector("#service-replicas")
        assert t.page.inner_text("#service-address") == svc["address"]
        _shot(t, "job")
        assert t.errors == []


def test_cancel_on_the_job_page_is_for_the_owner_and_refused_to_a_group_mate(
    chromium: Any, server: UiServer
) -> None:
    sleeper = server.ids["sleeper"]  # type: ignore[attr-defined]
    assert _state(server, sleeper) == "RUNNING"
    with tab(chromium, server) as t:  # bob is in ml: he may see alice's job, not cancel it
        t.login(server.tokens["bob"])
        t.open(f"jobs/{sleeper}")
        t.page.wait_for_selector("#cancel")
        t.page.click("#cancel")
        t.page.wait_for_selector("#job .error")
        assert t.page.inner_text("#job .error").startswith(
            f"403: user 'bob' may not cancel job {sleeper} of 'alice'")
        assert _state(server, sleeper) == "RUNNING"
        assert len(t.errors) == 1 and "403" in t.errors[0]
    with tab(chromium, server) as t:
        t.login(server.tokens["alice"])
        t.open(f"jobs/{sleeper}")
        t.page.wait_for_selector("#cancel")
        t.page.click("#cancel")
        t.page.wait_for_selector("#job h1 [data-state=CANCELLED]")  # the page refreshes itself
        assert _state(server, sleeper) == "CANCELLED"
        assert t.page.query_selector("#cancel") is None
        assert t.errors == []
