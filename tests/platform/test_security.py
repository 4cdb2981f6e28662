"""What a job can and cannot reach, through ``recforge platform serve`` running as root.

Replicas of group ``ml`` run as ``rfjob-ml``, those of ``cv`` as ``rfjob-cv`` (the groups'
``run_as``); the server's environment carries the admin token and other secrets. A job sees its
built environment only, cannot open the store, the state directory or the server's environment,
cannot read another group's scratch directory, and a replica whose children together exceed its
memory is killed with the reason in its events.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import ADMIN_TOKEN, JOB_PYTHON, Server, start_server, wait_until

from recforge.platform.client import PlatformError

SECRET = "s3cr3t-value-0123"
CONFIG: dict[str, Any] = {
    "clusters": [{"name": "box", "type": "local", "capacity": {"cpu": 4, "memory": "4Gi"}}],
    "groups": [
        {"name": g, "run_as": f"rfjob-{g}",
         "quotas": [{"cluster": "box", "nominal": {"cpu": 2, "memory": "2Gi"}}]}
        for g in ("ml", "cv")
    ],
    "queues": [{"name": "ml-q", "group": "ml"}, {"name": "cv-q", "group": "cv"}],
    "backends": {"local": {"heartbeat_interval": 0.5}},
    "jobs": {"tick_interval": 0.1, "pass_env": ["RF_VISIBLE"]},
}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, job_users: tuple[str, ...]
) -> Iterator[Server]:
    secrets = {"AWS_SECRET_ACCESS_KEY": SECRET, "RF_VISIBLE": "yes"}
    srv = start_server(tmp_path_factory.mktemp("security"), CONFIG, extra_env=secrets)
    try:
        admin = srv.client()
        for user, group in (("alice", "ml"), ("carol", "cv")):
            srv.tokens[user] = admin.create_token(user, group=group)["token"]
        admin.close()
        yield srv
    finally:
        srv.stop()


def run_job(server: Server, who: str, command: list[str], **extra: Any) -> dict[str, Any]:
    """Submit a one-replica job as ``who`` and wait for its end; the job and its log."""
    queue = {"alice": "ml-q", "carol": "cv-q"}[who]
    with server.client(who) as c:
        job = c.submit({"name": "probe", "queue": queue, "command": command,
                        "replica_specs": [{"role": "master", "resources": {"cpu": 0.5}}],
                        **extra})  # fmt: skip
        done = wait_until(lambda: (j := c.get_job(job["id"]))["state"] in
                          ("SUCCEEDED", "FAILED", "CANCELLED") and j, 120, "the job to end")
        done["log"] = c.logs(job["id"])["text"]
        done["events"] = c.events(job["id"])
    return done  # type: ignore[no-any-return]


def test_a_job_sees_its_built_environment_and_no_secret(server: Server) -> None:
    out = run_job(server, "alice", ["/usr/bin/env"])
    assert out["state"] == "SUCCEEDED", out
    env = dict(line.split("=", 1) for line in out["log"].splitlines() if "=" in line)
    assert ADMIN_TOKEN not in out["log"] and SECRET not in out["log"]
    assert not {"RECFORGE_ADMIN_TOKEN", "AWS_SECRET_ACCESS_KEY", "RECFORGE_STORE_URL",
                "RECFORGE_STATE_DIR"} & set(env)  # fmt: skip
    assert "platform.db" not in out["log"]
    assert env["RF_VISIBLE"] == "yes"  # the deployment's pass_env
    assert env["USER"] == "rfjob-ml" and env["RECFORGE_JOB_ID"] == str(out["id"])
    assert env["HOME"].startswith(str(server.state_dir / "work"))


def test_a_job_cannot_open_the_store_or_the_service_state(server: Server) -> None:
    db = server.state_dir / "platform.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((server.state_dir / "runtime").stat().st_mode) == 0o700
    probe = (
        "import os, sys\n"
        "for what, f in [('store', lambda: open(sys.argv[1], 'rb').read(1)),\n"
        "                ('state', lambda: os.listdir(sys.argv[2])),\n"
        "                ('runtime', lambda: os.listdir(sys.argv[3])),\n"
        "                ('environ', lambda: open(f'/proc/{sys.argv[4]}/environ').read())]:\n"
        "    try:\n"
        "        f(); print(what, 'OPEN')\n"
        "    except PermissionError as exc:\n"
        "        print(what, 'denied', exc.errno)\n"
    )
    out = run_job(server, "alice", [JOB_PYTHON, "-c", probe, str(db), str(server.state_dir),
                                    str(server.state_dir / "runtime"), str(server.proc.pid)])
    assert out["state"] == "SUCCEEDED", out
    lines = sorted(out["log"].splitlines())
    assert lines == ["environ denied 13", "runtime denied 13", "state denied 13",
                     "store denied 13"], out["log"]  # fmt: skip


def test_groups_run_as_their_own_users_and_cannot_read_each_other(server: Server) -> None:
    ml = run_job(server, "alice", ["/bin/sh", "-c", "id -un; pwd; echo private > mine.txt"])
    assert ml["state"] == "SUCCEEDED", ml
    user, workdir = ml["log"].splitlines()[:2]
    assert user == "rfjob-ml"
    assert stat.S_IMODE(Path(workdir).stat().st_mode) == 0o700
    cv = run_job(server, "carol", ["/bin/sh", "-c", f"id -un; cat {workdir}/mine.txt; echo rc=$?"])
    lines = cv["log"].splitlines()
    assert lines[0] == "rfjob-cv" and "Permission denied" in cv["log"] and lines[-1] == "rc=1"


def test_a_replica_whose_children_exceed_its_memory_is_killed_with_the_reason(
    server: Server,
) -> None:
    kid = "import time; b = b'x' * (60 * 2**20); time.sleep(60)"
    code = ("import subprocess, sys, time; "
            f"[subprocess.Popen([sys.executable, '-c', {kid!r}]) for _ in range(3)]; "
            "time.sleep(60)")  # fmt: skip
    out = run_job(server, "alice", [JOB_PYTHON, "-c", code],
                  replica_specs=[{"role": "master", "resources": {"cpu": 0.5,
                                                                  "memory": "100Mi"}}])
    assert out["state"] == "FAILED", out
    assert "replica 0 failed with exit code -9 (memory limit 100 MiB exceeded" in out["reason"]
    assert any("memory limit 100 MiB exceeded" in e["reason"] for e in out["events"])


def test_a_zero_resource_gang_is_bounded_by_pods(server: Server) -> None:
    with server.client("alice") as c, pytest.raises(PlatformError) as err:
        c.submit({"name": "swarm", "queue": "ml-q", "command": ["/bin/true"],
                  "replica_specs": [{"role": "worker", "replicas": 10_000,
                                     "resources": {"cpu": 0, "memory": 0}}]})  # fmt: skip
    assert err.value.status == 409 and "pods 10000 > 110" in err.value.detail
    with server.client() as admin:
        assert all(j["name"] != "swarm" for j in admin.list_jobs()["items"])  # nothing stored


def test_serve_refuses_a_run_as_user_that_does_not_exist(
    tmp_path: Path, job_users: tuple[str, ...]
) -> None:
    bad = json.loads(json.dumps(CONFIG))
    bad["groups"][0]["run_as"] = "no-such-user-rf"
    with pytest.raises(RuntimeError, match="OS user 'no-such-user-rf' does not exist"):
        start_server(tmp_path / "bad", bad)
