"""``recforge platform`` commands (typer CliRunner) against a live server.

The server is ``recforge platform serve`` in a subprocess on 127.0.0.1 (a free port) with a
temporary SQLite store and the scheduling loop running; it is stopped by its pid. Every job a
test starts is cancelled or finished before the server stops.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import CONFIG, job_spec
from serve_support import ADMIN_TOKEN, JOB_PYTHON, start_server, wait_until
from typer.testing import CliRunner

from recforge.platform.cli import app

runner = CliRunner()


@dataclass
class Server:
    url: str
    store: str
    pid: int
    tmp: Path
    tokens: dict[str, str]

    def run(self, *args: str, who: str | None = "alice", check: int | None = 0) -> Any:
        env = {"RECFORGE_PLATFORM_URL": self.url, "RECFORGE_TOKEN": None}
        if who is not None:
            env["RECFORGE_TOKEN"] = self.tokens[who]
        result = runner.invoke(app, list(args), env=env)
        if check is not None:
            assert result.exit_code == check, (args, result.output)
        return result

    def json(self, *args: str, who: str = "alice") -> Any:
        return json.loads(self.run(*args, "--json", who=who).stdout)

    def wait_state(self, job_id: int, states: set[str], timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.json("status", str(job_id))
            if job["state"] in states:
                return job  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"job {job_id} stuck in {job['state']}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("platform-cli")
    store = f"sqlite:///{tmp / 'serve' / 'state' / 'platform.db'}"
    tokens = {"admin": ADMIN_TOKEN}
    # Bootstrap path: tokens written straight into the store, before any server exists.
    for user, group in (("alice", "ml"), ("carol", "cv")):
        r = runner.invoke(app, ["token", "create", "--user", user, "--group", group,
                                "--store", store, "--json"])
        assert r.exit_code == 0, r.output
        tokens[user] = json.loads(r.stdout)["token"]
    config = {**CONFIG, "jobs": {"tick_interval": 0.1, "heartbeat_timeout": None}}
    proc = start_server(tmp / "serve", config, store_url=store)
    srv = Server(proc.url, store, proc.proc.pid, tmp, tokens)
    try:
        yield srv
        # Leave nothing running: cancel whatever is still active, wait until it has ended.
        active = ["PENDING", "ADMITTED", "STARTING", "RUNNING", "BACKOFF"]
        page = srv.json("list", *[a for s in active for a in ("--state", s)], who="admin")
        for job in page["items"]:
            srv.run("cancel", str(job["id"]), who="admin", check=None)
        for job in page["items"]:
            srv.wait_state(job["id"], {"CANCELLED", "SUCCEEDED", "FAILED"})
    finally:
        code = proc.stop()
    assert code == 0, f"serve did not shut down cleanly on SIGTERM (exit {code}):\n{proc.text()}"


def _spec_file(tmp: Path, name: str, **kw: Any) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job_spec(name, **kw)))
    return path


def test_whoami_and_tokens(server: Server) -> None:
    assert server.json("whoami") == {"user": "alice", "group": "ml", "admin": False}
    out = server.json("token", "create", "--user", "dave", "--group", "cv", who="admin")
    assert out["user"] == "dave" and out["group"] == "cv"
    server.tokens["dave"] = out["token"]
    assert server.json("whoami", who="dave")["user"] == "dave"
    r = server.run("token", "create", "--user", "eve", "--group", "ml", check=1)
    assert "not an admin" in r.stderr
    # Users may hold several tokens of their own, list them and revoke them.
    extra = server.json("token", "create", "--user", "alice", "--ttl", "2h", "--label", "ci")
    assert extra["expires_at"] == pytest.approx(time.time() + 7200, abs=120)
    server.tokens["alice-ci"] = extra["token"]
    mine = server.json("token", "list")
    assert {t["label"] for t in mine} == {"", "ci"} and all("token" not in t for t in mine)
    assert server.json("whoami", who="alice-ci")["user"] == "alice"
    assert f"token {extra['token_id']} of alice revoked" in server.run(
        "token", "revoke", extra["token_id"]).stdout
    assert "unknown, revoked or expired" in server.run("whoami", who="alice-ci", check=1).stderr
    r = server.run("token", "revoke", server.json("token", "list", who="dave")[0]["token_id"],
                   check=1)  # another user's token looks missing
    assert "no token" in r.stderr
    assert "--ttl 'soon'" in server.run("token", "create", "--user", "x", "--ttl", "soon",
                                        check=2).stderr
    audit = server.json("audit", who="admin")["items"]
    assert ("admin", "issue-token", "dave") in {(e["actor"], e["action"], e["target"])
                                                for e in audit}  # fmt: skip
    assert "not an admin" in server.run("audit", check=1).stderr
    r = server.run("whoami", who=None, check=1)
    assert "authentication required" in r.stderr


def test_submit_run_logs_and_cancel(server: Server) -> None:
    script = "print('hi from the cli job', flush=True)"
    f = _spec_file(server.tmp, "hello", command=[JOB_PYTHON, "-c", script])
    job = server.json("submit", str(f))
    assert job["name"] == "hello" and job["owner"] == "alice"
    done = server.wait_state(job["id"], {"SUCCEEDED", "FAILED"})
    assert done["state"] == "SUCCEEDED", done
    assert server.run("logs", str(job["id"])).stdout == "hi from the cli job\n"
    evs = server.json("events", str(job["id"]))
    assert [e["to_state"] for e in evs][-1] == "SUCCEEDED"

    f = _spec_file(server.tmp, "sleeper", cpu=2,
                   command=[JOB_PYTHON, "-c", "import time; time.sleep(60)"])
    sleeper = server.json("submit", str(f))
    server.wait_state(sleeper["id"], {"RUNNING"})
    f = _spec_file(server.tmp, "blocked", cpu=2)
    blocked = server.json("submit", str(f))
    why = wait_until(lambda: (w := server.json("why", str(blocked["id"])))["blocking"] and w,
                     120, "the scheduler to find no room for it")  # fmt: skip
    assert why["state"] == "PENDING" and why["queue_position"] == 1
    assert any(b["resource"] == "cpu" for b in why["blocking"])
    text = server.run("why", str(blocked["id"])).stdout
    assert "blocked on local: cpu needs 2" in text and "queue position: 1" in text

    page = server.json("list", "--state", "RUNNING")
    assert [j["id"] for j in page["items"]] == [sleeper["id"]]
    table = server.run("list").stdout
    assert "sleeper" in table and "blocked" in table
    assert "cancel requested" in server.run("cancel", str(sleeper["id"])).stdout
    assert server.wait_state(sleeper["id"], {"CANCELLED"})["state"] == "CANCELLED"
    # The freed quota goes to the job that waited.
    server.wait_state(blocked["id"], {"STARTING", "RUNNING", "SUCCEEDED"})
    server.wait_state(blocked["id"], {"SUCCEEDED"})
    # Carol (group cv) cannot see any of it.
    r = server.run("status", str(sleeper["id"]), who="carol", check=1)
    assert f"no job with id {sleeper['id']}" in r.stderr
    assert server.json("list", who="carol")["items"] == []


def test_templates_queues_quotas(server: Server) -> None:
    tpl = server.tmp / "tpl.yaml"
    tpl.write_text(yaml.safe_dump({
        "name": "echo",
        "owner": "ml",
        "parameters": [{"name": "msg", "type": "str"},
                       {"name": "n", "type": "int", "default": 1},
                       {"name": "tags", "type": "list", "default": []}],
        "body": job_spec("echo-${msg}", cpu=0.5,
                         command=[JOB_PYTHON, "-c", "print('${msg}' * ${n})"],
                         labels={"msg": "${msg}"}),
    }))
    r = server.run("templates", "--put", str(tpl), check=1)
    assert "not an admin" in r.stderr
    assert "template echo stored" in server.run("templates", "--put", str(tpl),
                                                who="admin").stdout
    assert [t["name"] for t in server.json("templates")] == ["echo"]
    assert "echo" in server.run("templates").stdout
    job = server.json("submit", "--template", "echo", "--set", "msg=007", "--set", "n=2",
                      "--set", "tags=[1, 2]")
    assert job["name"] == "echo-007"  # a str parameter keeps its leading zeros
    assert job["spec"]["command"][-1] == "print('007' * 2)"
    server.wait_state(job["id"], {"SUCCEEDED"})
    r = server.run("submit", "--template", "echo", "--set", "msg=a", "--set", "tags=[1,", check=2)
    assert "looks like JSON but is not valid" in r.stderr
    job = server.json("submit", "--template", "echo", "--set", "msg=ab", "--set", "n=3")
    assert job["name"] == "echo-ab"
    assert job["spec"]["command"][-1] == "print('ab' * 3)"
    assert server.wait_state(job["id"], {"SUCCEEDED", "FAILED"})["state"] == "SUCCEEDED"
    assert server.run("logs", str(job["id"])).stdout == "ababab\n"
    r = server.run("submit", "--template", "echo", "--set", "n=x", check=1)
    assert "missing required parameter(s) ['msg']" in r.stderr
    server.run("templates", "--delete", "echo", who="admin")
    assert server.json("templates") == []

    queues = server.json("queues")
    assert {(q["name"], q["group"]) for q in queues} == {("ml-q", "ml"), ("cv-q", "cv")}
    groups = server.json("quotas")
    ml = next(g for g in groups if g["name"] == "ml")
    assert ml["quotas"][0]["nominal"]["cpu"] == 2
    table = server.run("quotas").stdout
    assert "ml" in table and "cpu=2" in table
    assert server.json("clusters")[0]["capacity"]["cpu"] == 4


def test_errors_are_clear_and_exit_non_zero(server: Server) -> None:
    bad = server.tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump({**job_spec("bad"), "replica_specs": [
        {"role": "master", "resources": {"memory": "lots"}}]}))
    r = server.run("submit", str(bad), check=1)
    assert "replica_specs.0.resources.memory" in r.stderr
    r = server.run("submit", str(_spec_file(server.tmp, "q", queue="nope")), check=1)
    assert "unknown queue 'nope'" in r.stderr
    r = server.run("submit", str(_spec_file(server.tmp, "big", cpu=3)), check=1)
    assert "can never be admitted" in r.stderr
    not_yaml = server.tmp / "list.yaml"
    not_yaml.write_text("- 1\n- 2\n")
    assert "must be a mapping" in server.run("submit", str(not_yaml), check=2).stderr
    assert "not both" in server.run("submit", check=2).stderr
    r = server.run("submit", "--template", "x", "--set", "novalue", check=2)
    assert "key=value" in r.stderr
    assert "no job with id 99999" in server.run("status", "99999", check=1).stderr
    r = runner.invoke(app, ["list", "--url", "http://127.0.0.1:9", "--token", "t"])
    assert r.exit_code == 2 and "cannot reach the platform" in r.stderr
