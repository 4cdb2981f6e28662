"""``kill -9`` of ``recforge platform serve`` mid-schedule and mid-DAG, on SQLite and PostgreSQL:
no scheduled run is lost or doubled (marker files written by the DAG's node jobs).

A schedule fires a two-node DAG every 3 seconds (``queue``: runs one after another, a catch-up
bound that covers the downtime). The server is killed while a DAG run is going, stays down for
a few instants, and is started again; the schedule is then suspended through the CLI and its
backlog drained. Every cron instant from the first to the last recorded one must have been run
exactly once: one record, one DAG run, one marker line per node.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_support import CONFIG
from pg import fresh_pg_url
from serve_support import JOB_PYTHON, remove, shared_dir, start_server, wait_until
from typer.testing import CliRunner

from recforge.platform.cli import app

#: appends "<scheduled at> <node> <attempt>" to argv[1], then sleeps argv[2] seconds
STEP = (
    "import os, sys, time\n"
    "e = os.environ\n"
    "with open(sys.argv[1], 'a') as f:\n"
    "    f.write(f\"{e['RECFORGE_SCHEDULED_AT']} {e['RECFORGE_DAG_NODE']} "
    "{e['RECFORGE_ATTEMPT']}\\n\")\n"
    "time.sleep(float(sys.argv[2]))\n"
)
PERIOD = 3.0
CONF = {**CONFIG, "backends": {"local": {"heartbeat_interval": 0.3, "term_grace": 1.0}},
        "jobs": {"tick_interval": 0.05, "heartbeat_timeout": 10.0}}  # fmt: skip


def node(name: str, marker: Path, sleep: float) -> dict[str, Any]:
    return {"name": name, "job": {
        "command": [JOB_PYTHON, "-c", STEP, str(marker), str(sleep)],
        "replica_specs": [{"role": "master", "resources": {"cpu": 0.5, "memory": "64Mi"}}],
    }}  # fmt: skip


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill9_mid_schedule_and_mid_dag_loses_and_doubles_nothing(
    tmp_path: Path, db: str, request: pytest.FixtureRequest
) -> None:
    url = fresh_pg_url(request.getfixturevalue("pg_server")) if db == "postgres" else None
    shared = shared_dir()
    m = shared / "marks"
    server = start_server(tmp_path / "serve", CONF, store_url=url)
    runner = CliRunner()
    try:
        admin = server.client()
        token = admin.create_token("alice", group="ml")["token"]
        env = {"RECFORGE_PLATFORM_URL": server.url, "RECFORGE_TOKEN": token}

        def cli(*args: str) -> Any:
            r = runner.invoke(app, [*args, "--json"], env=env)
            assert r.exit_code == 0, (args, r.output)
            return json.loads(r.stdout)

        spec = {"name": "every3s", "cron": "*/3 * * * * *", "concurrency": "queue",
                "catch_up": 100, "dag": {"name": "pipe", "queue": "ml-q", "nodes": [
                    node("a", m, 1.0), node("b", m, 0.1)], "edges": [["a", "b"]]}}  # fmt: skip
        path = tmp_path / "schedule.yaml"
        path.write_text(json.dumps(spec))
        sched = cli("schedule", "create", str(path))
        sid = sched["id"]

        def recorded(state: str | None = None) -> list[dict[str, Any]]:
            items = cli("schedule", "instants", str(sid), "--limit", "1000")
            return [i for i in items if state is None or i["state"] == state]

        wait_until(lambda: len(recorded("DONE")) >= 2, 120, "two scheduled runs")
        # Kill while a DAG run of the schedule is going (its first node submitted).
        wait_until(lambda: any(n["state"] == "SUBMITTED" for r in cli("dag", "list", "--state",
                                                                      "RUNNING")["items"]
                               for n in cli("dag", "show", str(r["id"]))["nodes"]),
                   120, "a DAG run mid-way")  # fmt: skip
        server.kill9()
        down = time.time()
        wait_until(lambda: time.time() > down + 2.5 * PERIOD, 60, "instants to pass while down")
        server.restart()
        restarted = time.time()
        wait_until(lambda: sum(i["instant"] > restarted for i in recorded("DONE")) >= 2, 180,
                   "two runs after the restart")  # fmt: skip
        cli("schedule", "suspend", str(sid))
        wait_until(lambda: not [i for i in recorded() if i["state"] in ("QUEUED", "STARTED")],
                   300, "the backlog to drain")  # fmt: skip
        final = recorded()
        runs = cli("dag", "list", "--schedule", str(sid), "--limit", "1000")["items"]
        text_before_stop = server.text()
    finally:
        code = server.stop()
        lines = m.read_text().splitlines() if m.exists() else []
        remove(shared)
    assert code == 0, server.text()
    instants = sorted(i["instant"] for i in final)
    # Nothing lost: the recorded instants are every cron instant from the first to the last,
    # including those that came while the server was down, and the first came right after the
    # schedule was created.
    assert instants[0] - sched["created_at"] <= PERIOD
    assert [b - a for a, b in itertools.pairwise(instants)] == [PERIOD] * (len(instants) - 1)
    assert any(down < t < restarted for t in instants)
    assert all(i["state"] == "DONE" and i["outcome"] == "SUCCEEDED" for i in final), final
    # Nothing doubled: one DAG run per instant, one marker line per node and instant, attempt 1.
    assert sorted(r["scheduled_at"] for r in runs) == instants
    assert all(r["state"] == "SUCCEEDED" for r in runs)
    want = sorted(f"{datetime.fromtimestamp(t, UTC).isoformat()} {n} 1" for t in instants
                  for n in ("a", "b"))  # fmt: skip
    assert sorted(lines) == want
    assert '"msg": "recovered"' in text_before_stop
