"""REST API against a real PlatformService on a temporary SQLite store with the local backend."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import ADMIN_TOKEN, Platform, job_spec, make_platform
from pg import PostgresServer, fresh_pg_url

from recforge.platform.api import TokenAuth
from recforge.platform.client import PlatformClient, PlatformError
from recforge.platform.logs import JsonLogFormatter
from recforge.platform.model.states import JobState
from recforge.platform.store import User


@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    p = make_platform(tmp_path)
    yield p
    p.close()


def test_healthz_is_open_and_everything_else_needs_a_token(plat: Platform) -> None:
    c = plat.client
    assert c.get("/healthz").json() == {"status": "ok", "store": "sqlite"}
    r = c.get("/jobs")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in r.json()["detail"]
    assert c.get("/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert c.get("/jobs", headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401
    assert c.post("/jobs", json=job_spec()).status_code == 401
    assert c.get("/whoami", headers=plat.auth("alice")).json() == {
        "user": "alice", "group": "ml", "admin": False,
    }
    assert c.get("/whoami", headers=plat.auth("admin")).json()["admin"] is True


def test_tokens_are_stored_hashed(plat: Platform) -> None:
    with plat.store.engine.connect() as conn:
        stored = [row[0] for row in conn.exec_driver_sql("SELECT token_hash FROM tokens")]
    assert len(stored) == 3
    assert not set(stored) & set(plat.tokens.values())
    assert ADMIN_TOKEN not in stored  # the bootstrap token is never written anywhere


def test_token_auth_caches_hits_for_a_bounded_time(plat: Platform) -> None:
    tok = plat.tokens["bob"]
    cached = TokenAuth(plat.store, admin_token="boot", cache_seconds=60)
    uncached = TokenAuth(plat.store, cache_seconds=0)
    assert cached(tok) == User("bob", "ml", False) == uncached(tok)
    assert cached("boot") == User("admin", "admin", True)
    assert uncached("boot") is None and cached("boot-x") is None
    [info] = plat.store.list_tokens("bob")
    assert plat.store.revoke_token(info.token_id)
    assert uncached(tok) is None
    assert cached(tok) == User("bob", "ml", False)  # within its cache window
    cached._cache = {k: (u, 0.0) for k, (u, _) in cached._cache.items()}  # window over
    assert cached(tok) is None


def test_submit_get_list_events_cancel(plat: Platform) -> None:
    c = plat.client
    job = plat.submit("alice", job_spec("train-1", env={"SEED": "3"}))
    assert job["state"] == "PENDING" and job["owner"] == "alice" and job["group"] == "ml"
    assert job["queue"] == "ml-q" and job["spec"]["env"] == {"SEED": "3"}
    assert job["spec"]["min_available"] == 1  # the stored spec is the canonical one
    got = c.get(f"/jobs/{job['id']}", headers=plat.auth("alice")).json()
    assert got == job
    page = c.get("/jobs", headers=plat.auth("alice")).json()
    assert [j["id"] for j in page["items"]] == [job["id"]] and page["next_cursor"] is None

    r = c.post(f"/jobs/{job['id']}/cancel", headers=plat.auth("alice"))
    assert r.status_code == 200 and r.json()["state"] == "CANCELLED"
    r = c.post(f"/jobs/{job['id']}/cancel", headers=plat.auth("alice"))
    assert r.status_code == 409 and "already finished: CANCELLED" in r.json()["detail"]
    evs = c.get(f"/jobs/{job['id']}/events", headers=plat.auth("alice")).json()
    assert [(e["from_state"], e["to_state"]) for e in evs] == [
        (None, "PENDING"), ("PENDING", "CANCELLED"),
    ]
    assert plat.store.get_job(job["id"]).state is JobState.CANCELLED


def test_pagination_and_filters(plat: Platform) -> None:
    c, h = plat.client, plat.auth("alice")
    ids = [plat.submit("alice", job_spec(f"j{i}", cpu=0.1))["id"] for i in range(7)]
    seen: list[int] = []
    cursor = None
    sizes = []
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/jobs", params=params, headers=h).json()
        sizes.append(len(page["items"]))
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sizes == [3, 3, 1]
    assert seen == sorted(ids, reverse=True)  # newest first, no duplicates, nothing missed

    c.post(f"/jobs/{ids[2]}/cancel", headers=h)
    cancelled = c.get("/jobs", params={"state": "CANCELLED"}, headers=h).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[2]]
    both = c.get("/jobs", params=[("state", "CANCELLED"), ("state", "PENDING")], headers=h)
    assert len(both.json()["items"]) == 7
    assert c.get("/jobs", params={"queue": "cv-q"}, headers=h).json()["items"] == []

    bad = c.get("/jobs", params={"cursor": "abc"}, headers=h)
    assert bad.status_code == 422 and bad.json()["field"] == "query.cursor"
    bad = c.get("/jobs", params={"state": "SLEEPING"}, headers=h)
    assert bad.status_code == 422 and "query.state" in bad.json()["detail"]
    assert c.get("/jobs", params={"limit": 0}, headers=h).status_code == 422
    assert c.get("/jobs", params={"limit": 1001}, headers=h).status_code == 422


def test_other_groups_jobs_look_missing(plat: Platform) -> None:
    c = plat.client
    job = plat.submit("alice", job_spec())
    jid = job["id"]
    missing = c.get("/jobs/999999", headers=plat.auth("carol"))
    assert missing.status_code == 404
    for method, path in [
        ("GET", f"/jobs/{jid}"),
        ("GET", f"/jobs/{jid}/why"),
        ("GET", f"/jobs/{jid}/events"),
        ("GET", f"/jobs/{jid}/logs"),
        ("POST", f"/jobs/{jid}/cancel"),
    ]:
        r = c.request(method, path, headers=plat.auth("carol"))
        assert r.status_code == 404, (method, path)
        assert r.json()["detail"] == f"no job with id {jid}"
    assert c.get("/jobs", headers=plat.auth("carol")).json()["items"] == []
    r = c.get("/jobs", params={"group": "ml"}, headers=plat.auth("carol"))
    assert r.status_code == 403
    assert plat.store.get_job(jid).state is JobState.PENDING  # carol's cancel did nothing

    # Admins see every group's jobs and may filter by group.
    page = c.get("/jobs", params={"group": "ml"}, headers=plat.auth("admin")).json()
    assert [j["id"] for j in page["items"]] == [jid]
    # Same group: bob sees it, but only its owner (or an admin) may cancel it.
    assert c.get(f"/jobs/{jid}", headers=plat.auth("bob")).status_code == 200
    r = c.post(f"/jobs/{jid}/cancel", headers=plat.auth("bob"))
    assert r.status_code == 403 and "only its owner or an admin" in r.json()["detail"]
    assert plat.store.get_job(jid).state is JobState.PENDING
    r = c.post(f"/jobs/{jid}/cancel", headers=plat.auth("alice"))
    assert r.status_code == 200 and r.json()["state"] == "CANCELLED"


def test_queue_of_another_group_is_refused(plat: Platform) -> None:
    r = plat.client.post("/jobs", json=job_spec(queue="cv-q"), headers=plat.auth("alice"))
    assert r.status_code == 403
    assert r.json()["field"] == "queue" and "'cv'" in r.json()["detail"]
    # An admin may submit anywhere; the job belongs to the queue's group.
    job = plat.submit("admin", job_spec(queue="cv-q"))
    assert job["group"] == "cv" and job["owner"] == "admin"


@pytest.mark.parametrize(
    ("body", "status", "field", "needle"),
    [
        ({"name": "x", "queue": "ml-q"}, 422, "command", "needs a non-empty argv list"),
        ({**job_spec(), "replicas": 2}, 422, "replicas", "unknown field 'replicas'"),
        (job_spec(memory="lots"), 422, "replica_specs.0.resources.memory", "invalid memory"),
        (job_spec(name="bad name!"), 422, "name", "invalid job name"),
        ({**job_spec(), "kind": "kubernetes"}, 422, "kind", "not supported yet"),
        (job_spec(queue="nowhere"), 422, "queue", "unknown queue 'nowhere'"),
        (job_spec(cpu=3), 409, None, "can never be admitted"),  # over ml's 2-core quota
        (job_spec(cpu=64), 409, None, "cpu"),  # bigger than the cluster
        (job_spec(memory="3Gi"), 409, None, "memory"),
        (job_spec(cpu=1.7e306), 422, None, "out of range"),  # overflows in specs.py
        ({"template": "nope", "values": {}}, 404, "template", "unknown template 'nope'"),
        ({"template": "nope", "values": [1]}, 422, "values", "must be a mapping"),
    ],
)
def test_bad_submissions_name_the_problem(
    plat: Platform, body: dict[str, object], status: int, field: str | None, needle: str
) -> None:
    r = plat.client.post("/jobs", json=body, headers=plat.auth("alice"))
    assert r.status_code == status, r.text
    out = r.json()
    assert needle in out["detail"]
    if field is not None:
        assert out["field"] == field
    assert plat.store.count_jobs() == {}  # nothing was stored


def test_unknown_extended_resource_and_malformed_bodies(plat: Platform) -> None:
    c, h = plat.client, plat.auth("alice")
    spec = job_spec()
    spec["replica_specs"][0]["resources"]["extended"] = {"fpga": 1}
    r = c.post("/jobs", json=spec, headers=h)  # a resource no cluster has: malformed input
    assert r.status_code == 422 and "fpga" in r.json()["detail"]
    assert r.json()["field"] == "replica_specs"
    r = c.post("/jobs", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("invalid request")
    assert c.post("/jobs", json=[1, 2], headers=h).status_code == 422
    assert c.get("/jobs/0", headers=h).status_code == 422
    assert c.get(f"/jobs/{2**31}", headers=h).status_code == 422  # beyond any INTEGER id


def test_only_admins_change_config_templates_and_tokens(plat: Platform) -> None:
    c = plat.client
    groups = c.get("/groups", headers=plat.auth("alice")).json()
    assert [g["name"] for g in groups] == ["cv", "ml"]
    clusters = c.get("/clusters", headers=plat.auth("alice")).json()
    queues = c.get("/queues", headers=plat.auth("alice")).json()
    for method, path, body in [
        ("PUT", "/groups", groups),
        ("PUT", "/clusters", clusters),
        ("PUT", "/queues", queues),
        ("POST", "/templates", {"name": "t", "body": job_spec()}),
        ("DELETE", "/templates/t", None),
        ("POST", "/tokens", {"user": "mallory", "group": "ml", "admin": True}),
    ]:
        r = c.request(method, path, json=body, headers=plat.auth("alice"))
        assert r.status_code == 403, (method, path, r.text)
        assert "not an admin" in r.json()["detail"]
    assert plat.store.get_user("mallory") is None

    # An admin raises ml's quota to 3 cores: a 3-core job that was infeasible now fits.
    assert c.post("/jobs", json=job_spec(cpu=3), headers=plat.auth("alice")).status_code == 409
    ml = next(g for g in groups if g["name"] == "ml")
    ml["quotas"][0]["nominal"]["cpu"] = 3
    r = c.put("/groups", json=groups, headers=plat.auth("admin"))
    assert r.status_code == 200, r.text
    assert next(g for g in r.json() if g["name"] == "ml")["quotas"][0]["nominal"]["cpu"] == 3
    assert plat.submit("alice", job_spec(cpu=3))["state"] == "PENDING"

    # Changes that break references are refused whole, naming the problem.
    r = c.put("/groups", json=[g for g in groups if g["name"] != "cv"],
              headers=plat.auth("admin"))
    assert r.status_code == 409 and "unknown group 'cv'" in r.json()["detail"]
    assert len(c.get("/groups", headers=plat.auth("admin")).json()) == 2
    r = c.put("/queues", json=[{"name": "q", "group": "ml", "weight": -1}],
              headers=plat.auth("admin"))
    assert r.status_code == 422 and "weight" in r.json()["detail"]


def test_config_changes_never_strand_unfinished_jobs(plat: Platform) -> None:
    c, h = plat.client, plat.auth("admin")
    queues = c.get("/queues", headers=h).json()
    job = plat.submit("alice", job_spec())
    r = c.put("/queues", json=[q for q in queues if q["name"] != "ml-q"], headers=h)
    assert r.status_code == 409 and "cannot remove queue 'ml-q'" in r.json()["detail"]
    moved = [{**q, "group": "cv"} if q["name"] == "ml-q" else q for q in queues]
    r = c.put("/queues", json=moved, headers=h)
    assert r.status_code == 409 and "move to another group" in r.json()["detail"]
    assert {q["name"] for q in c.get("/queues", headers=h).json()} == {"ml-q", "cv-q"}
    c.post(f"/jobs/{job['id']}/cancel", headers=plat.auth("alice"))
    r = c.put("/queues", json=[q for q in queues if q["name"] != "ml-q"], headers=h)
    assert r.status_code == 200 and [q["name"] for q in r.json()] == ["cv-q"]
    assert [q.name for q in plat.service.config.queues] == ["cv-q"]  # the service reloaded
    r = c.post("/jobs", json=job_spec(), headers=plat.auth("alice"))
    assert r.status_code == 422 and "unknown queue 'ml-q'" in r.json()["detail"]

    clusters = c.get("/clusters", headers=h).json()
    spare = {"name": "spare", "type": "local", "capacity": {"cpu": 1}}
    assert c.put("/clusters", json=[*clusters, spare], headers=h).status_code == 200
    held = plat.store.create_job(name="held", owner="carol", group="cv", queue="cv-q",
                                 spec=job_spec(queue="cv-q"))
    plat.store.transition(held.id, JobState.ADMITTED, "test", cluster="spare")
    r = c.put("/clusters", json=clusters, headers=h)
    assert r.status_code == 409 and "['spare']" in r.json()["detail"]
    plat.store.transition(held.id, JobState.CANCELLED, "test")
    assert [x["name"] for x in c.put("/clusters", json=clusters, headers=h).json()] == ["local"]


def test_admin_issues_tokens(plat: Platform) -> None:
    c, h = plat.client, plat.auth("admin")
    r = c.post("/tokens", json={"user": "dave", "group": "cv", "label": "ci"}, headers=h)
    assert r.status_code == 201
    tok = r.json()["token"]
    me = c.get("/whoami", headers={"Authorization": f"Bearer {tok}"}).json()
    assert me == {"user": "dave", "group": "cv", "admin": False}
    r = c.post("/tokens", json={"user": "dave", "group": "ml"}, headers=h)
    assert r.status_code == 409 and "is in group 'cv'" in r.json()["detail"]
    r = c.post("/tokens", json={"user": "erin"}, headers=h)
    assert r.status_code == 422 and r.json()["field"] == "group"
    r = c.post("/tokens", json={"user": "erin", "group": "nlp"}, headers=h)
    assert r.status_code == 422 and "unknown group 'nlp'" in r.json()["detail"]
    r = c.post("/tokens", json={"user": "admin", "group": "ml"}, headers=h)
    assert r.status_code == 422 and "reserved" in r.json()["detail"]
    r = c.post("/tokens", json={"user": "root", "group": "admin", "admin": True}, headers=h)
    assert r.status_code == 201 and r.json()["admin"] is True
    assert plat.store.get_user("erin") is None
    # A second token for an existing user works; both stay valid.
    tok2 = c.post("/tokens", json={"user": "dave"}, headers=h).json()["token"]
    assert tok2 != tok
    assert c.get("/whoami", headers={"Authorization": f"Bearer {tok2}"}).status_code == 200


TEMPLATE: dict[str, Any] = {
    "name": "trainer",
    "owner": "ml",
    "description": "data-parallel trainer",
    "parameters": [
        {"name": "workers", "type": "int", "default": 1, "min": 1, "max": 3},
        {"name": "lr", "type": "float", "required": True},
    ],
    "body": {
        "name": "trainer",
        "queue": "ml-q",
        "command": [sys.executable, "-c", "pass", "--lr=${lr}"],
        "replica_specs": [
            {"role": "master", "resources": {"cpu": 0.5}},
            {"role": "worker", "replicas": "${workers}", "resources": {"cpu": 0.5}},
        ],
    },
}


def test_templates_render_and_store_the_spec(plat: Platform) -> None:
    c = plat.client
    r = c.post("/templates", json=TEMPLATE, headers=plat.auth("admin"))
    assert r.status_code == 201, r.text
    assert [t["name"] for t in c.get("/templates", headers=plat.auth("alice")).json()] == [
        "trainer"
    ]
    # Owned by ml: invisible (and unusable) for cv.
    assert c.get("/templates", headers=plat.auth("carol")).json() == []
    assert c.get("/templates/trainer", headers=plat.auth("carol")).status_code == 404
    r = c.post("/jobs", json={"template": "trainer", "values": {"lr": 0.1}},
               headers=plat.auth("carol"))
    assert r.status_code == 404

    job = plat.submit("alice", {"template": "trainer", "values": {"lr": "0.05", "workers": 2}})
    spec = job["spec"]
    assert spec["command"][-1] == "--lr=0.05"
    assert [(rs["role"], rs["replicas"]) for rs in spec["replica_specs"]] == [
        ("master", 1), ("worker", 2),
    ]
    assert plat.store.get_job(job["id"]).spec == spec  # the rendered spec is what is stored

    for values, needle in [
        ({}, "missing required parameter(s) ['lr']"),
        ({"lr": 0.1, "workers": 9}, "above the maximum"),
        ({"lr": 0.1, "gpus": 1}, "unknown parameter(s) ['gpus']"),
        ({"lr": "fast"}, "expected float"),
    ]:
        r = c.post("/jobs", json={"template": "trainer", "values": values},
                   headers=plat.auth("alice"))
        assert r.status_code == 422 and needle in r.json()["detail"], (values, r.text)

    bad = {**TEMPLATE, "body": {**TEMPLATE["body"], "name": "${undeclared}"}}
    r = c.post("/templates", json=bad, headers=plat.auth("admin"))
    assert r.status_code == 422 and "undeclared" in r.json()["detail"]
    assert c.delete("/templates/trainer", headers=plat.auth("admin")).status_code == 204
    assert c.delete("/templates/trainer", headers=plat.auth("admin")).status_code == 404
    # Jobs rendered earlier keep their spec.
    assert plat.store.get_job(job["id"]).spec == spec


def _wait(pred: object, plat: Platform, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        plat.service.tick()
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_why_logs_and_cancel_of_a_running_job(plat: Platform) -> None:
    c, h = plat.client, plat.auth("alice")
    script = "import time; print('hello from replica', flush=True); time.sleep(60)"
    first = plat.submit("alice", job_spec("long", cpu=2, command=[sys.executable, "-c", script]))
    r = c.get(f"/jobs/{first['id']}/logs", headers=h)
    assert r.status_code == 409 and "never launched" in r.json()["detail"]
    _wait(lambda: plat.store.get_job(first["id"]).state is JobState.RUNNING, plat)

    second = plat.submit("alice", job_spec("next", cpu=2))
    third = plat.submit("alice", job_spec("after", cpu=2))
    plat.service.tick()
    why = c.get(f"/jobs/{second['id']}/why", headers=h).json()
    assert why["state"] == "PENDING" and why["queue"] == "ml-q"
    assert why["queue_position"] == 1
    [block] = [b for b in why["blocking"] if b["resource"] == "cpu"]
    assert block["cluster"] == "local" and block["needed"] == 2 and block["available"] == 0
    assert "'ml'" in block["limited_by"]
    assert "blocked by" in why["reason"]
    assert c.get(f"/jobs/{third['id']}/why", headers=h).json()["queue_position"] == 2
    running = c.get(f"/jobs/{first['id']}/why", headers=h).json()
    assert running["state"] == "RUNNING" and running["blocking"] == []

    def has_hello() -> bool:
        r = c.get(f"/jobs/{first['id']}/logs", params={"replica": 0, "tail": 5}, headers=h)
        return r.status_code == 200 and "hello from replica" in r.json()["text"]

    _wait(has_hello, plat)
    r = c.get(f"/jobs/{first['id']}/logs", params={"replica": 7}, headers=h)
    assert r.status_code == 404 and r.json()["field"] == "replica"

    flagged = c.post(f"/jobs/{first['id']}/cancel", headers=h).json()
    assert flagged["state"] == "RUNNING" and flagged["cancel_requested"]  # the loop stops it
    _wait(lambda: plat.store.get_job(first["id"]).state is JobState.CANCELLED, plat)
    assert running["detail"]["backend"]["replicas"][0]["phase"] == "running"
    _wait(lambda: plat.store.get_job(second["id"]).state is not JobState.PENDING, plat)
    assert plat.store.get_job(third["id"]).state is JobState.PENDING


def test_one_json_access_log_line_per_request(
    plat: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="recforge.platform.access"):
        plat.client.get("/jobs", headers=plat.auth("alice"))
        plat.client.get("/jobs/12345", headers=plat.auth("carol"))
        plat.client.get("/jobs")
    records = [r for r in caplog.records if r.name == "recforge.platform.access"]
    got = [(r.user, r.group, r.path, r.status) for r in records]  # type: ignore[attr-defined]
    assert got == [
        ("alice", "ml", "/jobs", 200),
        ("carol", "cv", "/jobs/12345", 404),
        (None, None, "/jobs", 401),
    ]
    # The service's JSON formatter (used by `serve`) turns each into one JSON line.
    line = json.loads(JsonLogFormatter().format(records[0]))
    assert {k: line[k] for k in ("method", "path", "status", "user", "group")} == {
        "method": "GET", "path": "/jobs", "status": 200, "user": "alice", "group": "ml",
    }
    assert line["duration_ms"] >= 0 and "\n" not in JsonLogFormatter().format(records[0])


def test_openapi_describes_the_api(plat: Platform) -> None:
    spec = plat.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ["/jobs", "/jobs/{job_id}", "/jobs/{job_id}/why", "/jobs/{job_id}/logs",
                 "/jobs/{job_id}/cancel", "/jobs/{job_id}/events", "/clusters", "/groups",
                 "/queues", "/templates", "/templates/{name}", "/tokens", "/healthz"]:
        assert path in paths, path
    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    refs = {s["$ref"].rsplit("/", 1)[-1] for s in body["oneOf"]}
    assert refs == {"JobSpec", "TemplateSubmission"}
    schemas = spec["components"]["schemas"]
    assert {"JobSpec", "TemplateSubmission", "ReplicaSpec", "Resources"} <= set(schemas)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "422" in paths["/jobs"]["post"]["responses"]


@pytest.mark.postgres
def test_on_postgresql(tmp_path: Path, pg_server: PostgresServer) -> None:
    """The same API on PostgreSQL, including values SQLite accepts but PostgreSQL refuses."""
    plat = make_platform(tmp_path, fresh_pg_url(pg_server))
    try:
        c, h = plat.client, plat.auth("alice")
        ids = [plat.submit("alice", job_spec(f"pg{i}", cpu=0.1))["id"] for i in range(3)]
        page = c.get("/jobs", params={"limit": 2}, headers=h).json()
        assert [j["id"] for j in page["items"]] == ids[:0:-1]
        rest = c.get("/jobs", params={"cursor": page["next_cursor"]}, headers=h).json()
        assert [j["id"] for j in rest["items"]] == ids[:1]
        # Ids beyond PostgreSQL's INTEGER are client errors, never database errors.
        assert c.get(f"/jobs/{2**31}", headers=h).status_code == 422
        big = c.get("/jobs", params={"cursor": str(2**31 + 5)}, headers=h)
        assert big.status_code == 200 and len(big.json()["items"]) == 3
        # NUL characters cannot go into PostgreSQL text columns: 422, not 500.
        r = c.post("/tokens", json={"user": "zed", "group": "ml", "label": "a\x00b"},
                   headers=plat.auth("admin"))
        assert r.status_code == 422 and r.json()["field"] == "body.label"
        r = c.post("/templates", json={"name": "t", "owner": "m\x00l", "body": job_spec()},
                   headers=plat.auth("admin"))
        assert r.status_code == 422 and r.json()["field"] == "body.owner"
        assert c.post(f"/jobs/{ids[0]}/cancel", headers=h).json()["state"] == "CANCELLED"
    finally:
        plat.close()


def test_client_over_an_injected_http_client(plat: Platform) -> None:
    with PlatformClient("http://testserver", plat.tokens["alice"], http=plat.client) as pc:
        job = pc.submit(job_spec("via-client"))
        assert pc.get_job(job["id"])["name"] == "via-client"
        assert [j["id"] for j in pc.list_jobs(state=["PENDING"])["items"]] == [job["id"]]
        assert pc.why(job["id"])["queue_position"] == 1
        with pytest.raises(PlatformError) as err:
            pc.submit(job_spec(queue="nowhere"))
        assert err.value.status == 422 and "unknown queue 'nowhere'" in err.value.detail
        assert pc.cancel(job["id"])["state"] == "CANCELLED"
        with pytest.raises(PlatformError) as err:
            pc.put_config("queues", [])
        assert err.value.status == 403
    assert "authorization" not in plat.client.headers  # the injected client is left as given


def test_oversized_bodies_are_refused(plat: Platform) -> None:
    c, h = plat.client, plat.auth("alice")
    big = job_spec(env={"BLOB": "x" * (2 << 20)})
    r = c.post("/jobs", json=big, headers=h)
    assert r.status_code == 413 and "exceeds 1048576 bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "x", "env": {"BLOB": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}}'

    r = c.post("/jobs", content=chunks(), headers={**h, "content-type": "application/json"})
    assert r.status_code == 400
    assert plat.store.count_jobs() == {}
