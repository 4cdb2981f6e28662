"""Store behaviour, run identically on SQLite and PostgreSQL (see the ``store`` fixture)."""

from __future__ import annotations

import threading

import pytest

from recforge.platform.model.states import InvalidTransition, JobState
from recforge.platform.store import ConcurrentTransition, JobNotFound, NewJob, Store

S = JobState
SPEC = {"name": "j", "queue": "q", "replicas": [{"role": "worker", "count": 2}]}


def _job(store: Store, name: str = "j", owner: str = "alice", queue: str = "q") -> int:
    return store.create_job(name=name, owner=owner, group="ml", queue=queue, spec=SPEC).id


def test_create_and_read_back(store: Store) -> None:
    job = store.create_job(name="train", owner="alice", group="ml", queue="q", spec=SPEC)
    got = store.get_job(job.id)
    assert (got.state, got.version, got.attempts, got.spec) == (S.PENDING, 0, 0, SPEC)
    assert (got.owner, got.group, got.queue, got.name) == ("alice", "ml", "q", "train")
    [ev] = store.events(job.id)
    assert (ev.from_state, ev.to_state, ev.reason) == (None, S.PENDING, "submitted")
    with pytest.raises(JobNotFound, match="no job with id 9999"):
        store.get_job(9999)


def test_create_jobs_stores_many_in_one_transaction_in_order(store: Store) -> None:
    first = _job(store, "before")
    new = [NewJob(f"n{i}", "alice" if i % 2 else "bob", "ml", "q", {**SPEC, "name": f"n{i}"},
                  f"why {i}") for i in range(5)]  # fmt: skip
    jobs = store.create_jobs(new)
    # The ids come back in the order given, after every earlier job, each row as returned.
    assert [j.id for j in jobs] == sorted(j.id for j in jobs) and jobs[0].id > first
    for job, asked in zip(jobs, new, strict=True):
        got = store.get_job(job.id)
        assert (got.name, got.owner, got.spec, got.reason) == (asked.name, asked.owner,
                                                               asked.spec, asked.reason)
        assert got == job
        [ev] = store.events(job.id)
        assert (ev.from_state, ev.to_state, ev.reason) == (None, S.PENDING, asked.reason)
    assert store.create_jobs([]) == []
    # Inside a batch they commit (or roll back) with the rest of it.
    with pytest.raises(RuntimeError, match="abort"), store.batch():
        store.create_jobs(new[:2])
        raise RuntimeError("abort")
    assert sum(store.count_jobs().values()) == 6


def test_transition_applies_fields_and_appends_events(store: Store) -> None:
    jid = _job(store)
    store.transition(
        jid,
        S.ADMITTED,
        "admitted on local",
        expected_from=S.PENDING,
        cluster="local",
        admission={"cluster": "local", "cpu": 2},
        admitted_at=5.0,
    )
    ev = store.transition(jid, "STARTING", "launched", handle={"pids": [1, 2]}, attempts=1)
    assert (ev.from_state, ev.to_state, ev.version) == (S.ADMITTED, S.STARTING, 2)
    job = store.get_job(jid)
    assert job.state is S.STARTING and job.version == 2 and job.attempts == 1
    assert job.cluster == "local" and job.admission == {"cluster": "local", "cpu": 2}
    assert job.handle == {"pids": [1, 2]} and job.admitted_at == 5.0
    assert job.reason == "launched"
    assert [e.to_state for e in store.events(jid)] == [S.PENDING, S.ADMITTED, S.STARTING]


def test_illegal_and_conditional_transitions_change_nothing(store: Store) -> None:
    jid = _job(store)
    with pytest.raises(InvalidTransition):
        store.transition(jid, S.RUNNING, "skip ahead")
    with pytest.raises(ConcurrentTransition, match="is PENDING, expected RUNNING"):
        store.transition(jid, S.CANCELLED, "x", expected_from=S.RUNNING)
    with pytest.raises(ConcurrentTransition, match="version 0, expected 3"):
        store.transition(jid, S.CANCELLED, "x", expected_version=3)
    with pytest.raises(ValueError, match="unknown job fields"):
        store.transition(jid, S.ADMITTED, "x", colour="red")
    job = store.get_job(jid)
    assert job.state is S.PENDING and job.version == 0 and len(store.events(jid)) == 1
    store.transition(jid, S.CANCELLED, "user asked", expected_from=[S.PENDING, S.BACKOFF])
    with pytest.raises(InvalidTransition, match="CANCELLED -> RUNNING"):
        store.transition(jid, S.RUNNING, "zombie")
    assert store.get_job(jid).state is S.CANCELLED


def test_concurrent_writers_apply_a_move_exactly_once(store: Store) -> None:
    """Eight threads race PENDING -> ADMITTED on each of five jobs: one winner per job."""
    jobs = [_job(store) for _ in range(5)]
    wins: list[int] = []
    losses: list[str] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        barrier.wait()
        for jid in jobs:
            try:
                store.transition(jid, S.ADMITTED, "admit", expected_from=S.PENDING)
                wins.append(jid)
            except (ConcurrentTransition, InvalidTransition) as exc:
                losses.append(type(exc).__name__)

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(jobs)
    assert len(losses) == 7 * len(jobs)
    for jid in jobs:
        assert [e.to_state for e in store.events(jid)] == [S.PENDING, S.ADMITTED]
        assert store.get_job(jid).version == 1


def test_keyset_pagination_and_filters(store: Store) -> None:
    ids = [_job(store, name=f"j{i}", owner="bob" if i % 3 == 0 else "alice") for i in range(23)]
    store.transition(ids[4], S.CANCELLED, "x")
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_jobs(limit=5, cursor=cursor)
        seen += [j.id for j in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True) and pages == 5
    bob = store.list_jobs(limit=100, owner="bob", newest_first=False)
    assert [j.id for j in bob.items] == ids[::3] and bob.next_cursor is None
    pending = list(store.iter_jobs([S.PENDING], batch=4))
    assert [j.id for j in pending] == [i for i in ids if i != ids[4]]
    assert store.count_jobs() == {"PENDING": 22, "CANCELLED": 1}
    with pytest.raises(ValueError, match="invalid page cursor 'abc'"):
        store.list_jobs(cursor="abc")
    with pytest.raises(ValueError, match=r"limit must be in 1\.\.1000"):
        store.list_jobs(limit=0)


def test_events_since_feeds_a_cursor(store: Store) -> None:
    a, b = _job(store), _job(store)
    start = store.last_event_id()
    store.transition(a, S.ADMITTED, "x")
    store.transition(b, S.CANCELLED, "y")
    evs = store.events_since(start)
    assert [(e.job_id, e.to_state) for e in evs] == [(a, S.ADMITTED), (b, S.CANCELLED)]
    assert store.events_since(evs[-1].id) == []


def test_replicas_heartbeat_per_attempt(store: Store) -> None:
    jid = _job(store)
    store.reset_replicas(jid, 1, [(0, "master"), (1, "worker")])
    assert store.heartbeat(jid, 1, attempt=1, pid=42, at=10.0)
    assert not store.heartbeat(jid, 1, attempt=0, at=11.0)  # stale attempt is ignored
    assert not store.heartbeat(jid, 7, at=11.0)
    store.heartbeat(jid, 0, attempt=1, state="exited", exit_code=3, at=12.0)
    r0, r1 = store.replicas(jid)
    assert (r0.role, r0.state, r0.exit_code, r0.last_heartbeat) == ("master", "exited", 3, 12.0)
    assert (r1.role, r1.pid, r1.last_heartbeat, r1.state) == ("worker", 42, 10.0, "running")
    store.set_replica_handles(jid, {0: {"pid": 99, "log": "/x"}})
    assert store.replicas(jid)[0].handle == {"pid": 99, "log": "/x"}
    store.reset_replicas(jid, 2, [(0, "worker")])
    [r] = store.replicas(jid)
    assert (r.attempt, r.last_heartbeat, r.exit_code) == (2, None, None)


def test_record_launches_stores_every_handle_and_replica_pid(store: Store) -> None:
    a, b, c = _job(store), _job(store), _job(store)
    for jid in (a, b, c):
        store.reset_replicas(jid, 1, [(0, "master"), (1, "worker")])
    ha = {"backend": "local", "replicas": [{"index": 0, "pid": 7}, {"index": 1, "pid": 7}]}
    hb = {"backend": "local", "replicas": [{"index": 1, "pid": 8}, {"index": 0}]}
    store.record_launches({a: ha, b: hb})
    assert (store.get_job(a).handle, store.get_job(b).handle, store.get_job(c).handle) == (
        ha, hb, None)  # fmt: skip
    assert [(r.index, r.pid) for r in store.replicas(a)] == [(0, 7), (1, 7)]
    assert [(r.index, r.pid) for r in store.replicas(b)] == [(0, None), (1, 8)]
    assert store.replicas(b)[1].handle == {"index": 1, "pid": 8}
    assert [r.pid for r in store.replicas(c)] == [None, None]
    store.record_launches({})  # nothing to do


def test_cancel_flag_and_update_job(store: Store) -> None:
    jid = _job(store)
    assert store.request_cancel(jid).cancel_requested
    store.update_job(jid, handle={"a": 1})
    with pytest.raises(ConcurrentTransition):
        store.update_job(jid, expected_version=5, handle={"a": 2})
    with pytest.raises(JobNotFound):
        store.request_cancel(12345)
    assert store.get_job(jid).handle == {"a": 1}


def test_templates_users_tokens_config(store: Store) -> None:
    store.put_template("bert", "alice", {"replicas": [{"role": "w"}]})
    store.put_template("bert", "alice", {"replicas": [{"role": "w2"}]})
    assert store.get_template("bert") == {
        "name": "bert",
        "owner": "alice",
        "body": {"replicas": [{"role": "w2"}]},
    }
    assert [t["name"] for t in store.list_templates()] == ["bert"]
    assert store.delete_template("bert") and store.get_template("bert") is None

    store.add_user("alice", "ml")
    store.add_user("root", "ops", is_admin=True)
    with pytest.raises(ValueError, match="already exists"):
        store.add_user("alice", "x")
    token, info = store.issue_token_info("alice", label="laptop")
    user = store.authenticate(token)
    assert user is not None and (user.name, user.group, user.is_admin) == ("alice", "ml", False)
    assert store.authenticate("wrong") is None
    assert info.expires_at is not None and info.expires_at > store.clock() + 29 * 86400
    listed = store.list_tokens("alice")
    assert [(t.token_id, t.label) for t in listed] == [(info.token_id, "laptop")]
    assert token not in repr(listed)  # records never carry the secret
    assert store.revoke_token(info.token_id) and store.authenticate(token) is None
    assert not store.revoke_token(info.token_id)
    with pytest.raises(ValueError, match="unknown user 'nobody'"):
        store.issue_token("nobody")
    with pytest.raises(ValueError, match="lifetime must be > 0"):
        store.issue_token("alice", ttl_seconds=0)

    store.audit("root", "put-queues", "queues", {"names": ["q1"]})
    store.audit("root", "issue-token", "alice")
    entries, nxt = store.audit_log(limit=1)
    assert [(e.actor, e.action, e.target) for e in entries] == [("root", "issue-token", "alice")]
    older, last = store.audit_log(limit=1, cursor=nxt)
    assert [e.detail for e in older] == [{"names": ["q1"]}] and last is None

    store.put_config("queue", "q1", {"group": "ml", "weight": 2})
    store.put_config("queue", "q1", {"group": "ml", "weight": 3})
    store.put_config("cluster", "local", {"type": "local", "capacity": {"cpu": 2}})
    assert store.get_config("queue") == {"q1": {"group": "ml", "weight": 3}}
    assert store.delete_config("queue", "q1") and store.get_config("queue") == {}
    with pytest.raises(ValueError, match="unknown configuration kind 'node'"):
        store.put_config("node", "n", {})


def test_unsupported_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported store URL 'mysql://x/y'"):
        Store("mysql://x/y")


def test_tokens_expire(store_url: str) -> None:
    now = [1000.0]
    store = Store(store_url, clock=lambda: now[0])
    try:
        store.add_user("alice", "ml")
        token = store.issue_token("alice", ttl_seconds=60)
        assert store.authenticate(token) is not None
        now[0] += 59.9
        assert store.authenticate(token) is not None
        now[0] += 0.2
        assert store.authenticate(token) is None  # expired: refused like an unknown token
    finally:
        store.close()


def test_an_older_store_gains_the_new_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the tokens table as an earlier version created it
        conn.exec_driver_sql(
            "CREATE TABLE tokens (token_hash VARCHAR(64) PRIMARY KEY, user_name VARCHAR(200) "
            "NOT NULL, label VARCHAR(200) NOT NULL, created_at FLOAT NOT NULL)"
        )
        conn.exec_driver_sql("INSERT INTO tokens VALUES ('h', 'alice', 'old', 1.0)")
    engine.dispose()
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns("tokens")}
            kept = conn.exec_driver_sql("SELECT label FROM tokens").scalar_one()
        assert {"token_id", "expires_at"} <= cols and kept == "old"  # nothing stored is lost
    finally:
        store.close()
