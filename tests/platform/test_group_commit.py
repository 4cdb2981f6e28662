"""Group commit of REST submissions (api/group_commit.py), on SQLite and PostgreSQL: submissions
arriving together share one transaction; every 201 means stored (also across a kill -9 of
``serve`` mid-burst); a failure is only its own."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from api_support import CONFIG, Platform, job_spec, make_platform
from pg import fresh_pg_url
from serve_support import ADMIN_TOKEN, start_server, wait_until

from recforge.platform.store import Store


@pytest.fixture
def plat(tmp_path: Path, store_url: str) -> Iterator[Platform]:
    p = make_platform(tmp_path, store_url)
    yield p
    p.close()


def _post_together(plat: Platform, specs: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every spec at once (one event loop, as uvicorn serves them)."""

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=plat.client.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return list(await asyncio.gather(*(
                client.post("/jobs", json=s, headers=plat.auth("alice")) for s in specs
            )))  # fmt: skip

    return asyncio.run(main())


def _commits_inserting_jobs(store: Store) -> list[int]:
    """Filled with one entry per committed transaction that inserted jobs."""
    commits: list[int] = []
    inserting: set[int] = set()

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _insert(conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO JOBS"):
            inserting.add(id(conn))

    @sa.event.listens_for(store.engine, "commit")
    def _commit(conn: Any) -> None:
        if id(conn) in inserting:
            inserting.discard(id(conn))
            commits.append(1)

    return commits


def test_submissions_arriving_together_share_one_commit(plat: Platform) -> None:
    commits = _commits_inserting_jobs(plat.store)
    answers = _post_together(plat, [job_spec(f"g{i}") for i in range(8)])
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    ids = [r.json()["id"] for r in answers]
    assert len(set(ids)) == 8
    assert 1 <= len(commits) < 8  # one commit per submission without group commit
    assert plat.client.app.state.group_commit.groups == len(commits)
    # Every 201 is in the store, as answered, seen through a connection of its own.
    other = Store(plat.store.url, create=False)
    try:
        for r in answers:
            job = other.get_job(r.json()["id"])
            assert (job.name, job.state.value, job.owner) == (r.json()["name"], "PENDING", "alice")
        assert sum(other.count_jobs().values()) == 8
    finally:
        other.close()
    # ... and queued for the scheduler once stored.
    assert all(plat.service.gate.knows(i) for i in ids)


def test_two_event_loops_serving_one_app_keep_their_own_groups(plat: Platform) -> None:
    """A test client and a server thread may serve the same app: each loop's submissions are
    grouped, committed and answered on that loop."""
    answers: dict[int, list[httpx.Response]] = {}

    def burst(k: int) -> None:
        answers[k] = _post_together(plat, [job_spec(f"t{k}-{i}") for i in range(6)])

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(answers) == [0, 1]
    for k, got in answers.items():
        assert [r.status_code for r in got] == [201] * 6, [r.text for r in got]
        assert [r.json()["name"] for r in got] == [f"t{k}-{i}" for i in range(6)]
    assert sum(plat.store.count_jobs().values()) == 12


def test_a_bad_submission_is_answered_alone_and_never_joins_the_group(plat: Platform) -> None:
    specs = [job_spec("ok-1"), job_spec("bad", queue="no-such-queue"), job_spec("ok-2")]
    answers = _post_together(plat, specs)
    assert [r.status_code for r in answers] == [201, 422, 201]
    assert "no-such-queue" in answers[1].json()["detail"]
    assert sorted(j.name for j in plat.store.iter_jobs(["PENDING"])) == ["ok-1", "ok-2"]


def test_a_failed_group_transaction_stores_each_submission_alone_once(
    plat: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = plat.store.create_jobs

    def create_jobs(jobs: Any) -> Any:
        if any(j.name == "boom" for j in jobs):
            raise RuntimeError("store failure while storing boom")
        return real(jobs)

    monkeypatch.setattr(plat.store, "create_jobs", create_jobs)
    # The group [a, boom, b] fails (boom raises): nothing of it may stay stored; stored again
    # one by one, a and b succeed once each and boom fails alone with a 500.
    answers = _post_together(plat, [job_spec("a"), job_spec("boom"), job_spec("b")])
    assert [r.status_code for r in answers] == [201, 500, 201]
    stored = sorted(j.name for j in plat.store.iter_jobs(["PENDING"]))
    assert stored == ["a", "b"]  # the rolled-back group left no row, nobody is doubled
    assert {r.json()["id"] for r in (answers[0], answers[2])} == {
        j.id for j in plat.store.iter_jobs(["PENDING"])
    }


@pytest.mark.parametrize(
    "backend_db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill9_during_a_burst_of_submissions_loses_and_doubles_nothing(
    tmp_path: Path, backend_db: str, request: pytest.FixtureRequest
) -> None:
    """``serve`` killed with SIGKILL while clients submit concurrently (groups being committed):
    every job answered 201 is stored, as answered, once; nothing is stored twice; after the
    restart every stored job runs to its end."""
    if backend_db == "sqlite":
        url = f"sqlite:///{tmp_path / 'kill9.db'}"
    else:
        url = fresh_pg_url(request.getfixturevalue("pg_server"))
    config = {**CONFIG, "jobs": {"tick_interval": 0.2}}
    server = start_server(tmp_path / "serve", config, store_url=url)
    answered: dict[int, str] = {}
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]),
                                          timeout=60)  # fmt: skip
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        for i in range(400):
            if stop.is_set():
                return
            name = f"burst-{k}-{i}"
            body = json.dumps(job_spec(name, cpu=0.25, command=["/bin/true"]))
            try:
                conn.request("POST", "/jobs", body=body, headers=headers)
                r = conn.getresponse()
                text = r.read()
            except (OSError, http.client.HTTPException):
                return  # the server is gone: this submission's fate is unknown
            with lock:
                if r.status != 201:
                    refused.append(f"{name}: {r.status} {text[:200]!r}")
                    return
                answered[json.loads(text)["id"]] = name

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(answered) >= 60 or refused, 120, "60 answered submissions",
                   lambda: f"{len(answered)} answered\n{server.text()[-4000:]}")
        assert not refused, refused
        server.kill9()  # mid-burst: groups in flight, no clean-up at all
        stop.set()
        for t in threads:
            t.join(timeout=60)
        with lock:
            got = dict(answered)
        store = Store(url, create=False)
        try:
            stored = {j.id: j for s in store.count_jobs() for j in store.iter_jobs([s])}
            names = [j.name for j in stored.values()]
            assert len(names) == len(set(names)), "a submission was stored twice"
            for job_id, name in got.items():
                assert job_id in stored and stored[job_id].name == name
            for job_id in stored:
                created = [e for e in store.events(job_id) if e.from_state is None]
                assert len(created) == 1
        finally:
            store.close()
        server.restart()
        admin = server.client()

        def unfinished() -> str:
            jobs = {i: admin.get_job(i) for i in stored}
            left = {i: (j["state"], j.get("reason")) for i, j in jobs.items()
                    if j["state"] != "SUCCEEDED"}  # fmt: skip
            return f"{len(left)} of {len(jobs)} not SUCCEEDED: {left}\n{server.text()[-4000:]}"

        wait_until(lambda: all(admin.get_job(i)["state"] == "SUCCEEDED" for i in stored), 300,
                   "every stored job to succeed after the restart", unfinished)  # fmt: skip
        admin.close()
    finally:
        stop.set()
        code = server.stop()
    assert code == 0, server.text()
