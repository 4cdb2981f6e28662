"""DAG runs through ``recforge platform dag ...`` / ``artifacts`` against a live ``serve``.

The server is a real subprocess (127.0.0.1, free port, private state directory, the loop
running); run as root it runs node jobs as an unprivileged user, so the run directory's
ownership and the careful artefact reading are exercised as deployed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import CONFIG
from serve_support import ADMIN_TOKEN, JOB_PYTHON, Server, start_server, wait_until
from typer.testing import CliRunner

from recforge.platform.cli import app

runner = CliRunner()

#: writes "<node>:<upstream values>" into each output's value.txt
STEP = (
    "import os, pathlib\n"
    "e = os.environ\n"
    "got = ''.join(pathlib.Path(v, 'value.txt').read_text() for k, v in sorted(e.items())"
    " if k.startswith('RECFORGE_INPUT_'))\n"
    "for k, v in e.items():\n"
    "    if k.startswith('RECFORGE_OUTPUT_'):\n"
    "        pathlib.Path(v, 'value.txt').write_text(got + e['RECFORGE_DAG_NODE'] + ';')\n"
    "        os.makedirs(os.path.join(v, 'sub'), exist_ok=True)\n"
    "        pathlib.Path(v, 'sub', 'more.txt').write_text('x' * 1000)\n"
    "        os.symlink('/etc/passwd', os.path.join(v, 'leak'))\n"
)


def node(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "job": {
        "command": [JOB_PYTHON, "-c", STEP],
        "replica_specs": [{"role": "master", "resources": {"cpu": 0.5, "memory": "64Mi"}}],
    }, **kw}  # fmt: skip


class Cli:
    def __init__(self, server: Server, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def run(self, *args: str, who: str = "alice", check: int | None = 0) -> Any:
        env = {"RECFORGE_PLATFORM_URL": self.server.url, "RECFORGE_TOKEN": self.tokens[who]}
        result = runner.invoke(app, list(args), env=env)
        if check is not None:
            assert result.exit_code == check, (args, result.output)
        return result

    def json(self, *args: str, who: str = "alice") -> Any:
        return json.loads(self.run(*args, "--json", who=who).stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    tmp = tmp_path_factory.mktemp("dag-cli")
    config = {**CONFIG, "jobs": {"tick_interval": 0.1, "heartbeat_timeout": None}}
    server = start_server(tmp / "serve", config)
    tokens = {"admin": ADMIN_TOKEN}
    try:
        c = Cli(server, tokens)
        for user, group in (("alice", "ml"), ("carol", "cv")):
            out = c.json("token", "create", "--user", user, "--group", group, who="admin")
            tokens[user] = out["token"]
        yield c
    finally:
        code = server.stop()
    assert code == 0, f"serve did not stop cleanly (exit {code}):\n{server.text()}"


def test_a_dag_runs_and_its_artefacts_come_back(cli: Cli, tmp_path: Path) -> None:
    spec = {"name": "pipe", "queue": "ml-q", "nodes": [
        node("read", outputs=["table"]),
        node("train", inputs={"data": "read.table"}, outputs=["model"]),
    ]}  # fmt: skip
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = cli.json("dag", "submit", str(path))
    assert run["state"] == "PENDING" and [n["name"] for n in run["nodes"]] == ["read", "train"]
    done = wait_until(lambda: (r := cli.json("dag", "show", str(run["id"])))["state"]
                      not in ("PENDING", "RUNNING") and r, 120, "the DAG run to end")  # fmt: skip
    assert done["state"] == "SUCCEEDED", done
    assert all(n["state"] == "SUCCEEDED" and n["job_state"] == "SUCCEEDED" for n in done["nodes"])
    shown = cli.run("dag", "show", str(run["id"])).stdout
    assert "SUCCEEDED" in shown and "train" in shown
    events = cli.json("dag", "events", str(run["id"]))
    assert [e["to_state"] for e in events if e["node"] is None] == ["PENDING", "RUNNING",
                                                                    "SUCCEEDED"]  # fmt: skip
    assert {e["node"] for e in events} == {None, "read", "train"}
    listing = cli.json("artifacts", str(run["id"]))
    model = next(a for a in listing if a["node"] == "train")
    assert sorted(f["path"] for f in model["files"]) == ["sub/more.txt", "value.txt"]
    assert model["skipped"] == [{"path": "leak", "why": "a symbolic link"}]
    out = tmp_path / "out"
    r = cli.run("artifacts", str(run["id"]), "--out", str(out))
    assert "left out train/model/leak: a symbolic link" in r.stderr
    assert (out / "train" / "model" / "value.txt").read_text() == "read;train;"
    assert (out / "read" / "table" / "sub" / "more.txt").read_text() == "x" * 1000
    assert not (out / "train" / "model" / "leak").exists()
    # Another group's run is invisible; the owner's group-mates see it.
    r = cli.run("dag", "show", str(run["id"]), who="carol", check=1)
    assert f"no DAG run with id {run['id']}" in r.stderr
    assert cli.run("artifacts", str(run["id"]), who="carol", check=1).exit_code == 1
    assert cli.json("dag", "list", who="carol")["items"] == []
    assert [r["id"] for r in cli.json("dag", "list")["items"]] == [run["id"]]


def test_bad_dags_are_refused_naming_the_offenders(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "queue": "ml-q", "nodes": [
        node("a"), node("b"), node("c")], "edges": [["a", "b"], ["b", "c"], ["c", "b"]]}))
    r = cli.run("dag", "submit", str(path), check=1)
    assert "cycle" in r.stderr and "b -> c -> b" in r.stderr.replace("c -> b -> c", "b -> c -> b")
    path.write_text(yaml.safe_dump({"name": "bad", "queue": "ml-q",
                                    "nodes": [node("a"), node("a")]}))  # fmt: skip
    assert "duplicate node name(s) ['a']" in cli.run("dag", "submit", str(path), check=1).stderr
    path.write_text(yaml.safe_dump({"name": "bad", "queue": "cv-q", "nodes": [node("a")]}))
    assert "may not submit to queue 'cv-q'" in cli.run("dag", "submit", str(path),
                                                       check=1).stderr  # fmt: skip


def test_cancel_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    spec = {"name": "slow", "queue": "ml-q", "nodes": [
        {**node("wait"), "job": {**node("wait")["job"],
                                 "command": [JOB_PYTHON, "-c", "import time; time.sleep(300)"]}},
        node("after")], "edges": [["wait", "after"]]}  # fmt: skip
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = cli.json("dag", "submit", str(path))
    wait_until(lambda: cli.json("dag", "show", str(run["id"]))["nodes"][0]["job_state"]
               == "RUNNING", 120, "the first node to run")  # fmt: skip
    assert "no DAG run" in cli.run("dag", "cancel", str(run["id"]), who="carol", check=1).stderr
    assert "cancelling DAG run" in cli.run("dag", "cancel", str(run["id"])).stdout
    done = wait_until(lambda: (r := cli.json("dag", "show", str(run["id"])))["state"]
                      == "CANCELLED" and r, 120, "the run to be cancelled")  # fmt: skip
    assert [n["state"] for n in done["nodes"]] == ["CANCELLED", "CANCELLED"]
    r = cli.run("dag", "cancel", str(run["id"]), check=1)
    assert "already finished" in r.stderr


def test_schedule_commands_backfill_a_dag(cli: Cli, tmp_path: Path) -> None:
    spec = {"name": "nightly", "cron": "0 3 * * *", "timezone": "Europe/Paris",
            "dag": {"name": "nightly", "queue": "ml-q", "nodes": [node("only", outputs=["o"])]}}
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = cli.run("schedule", "create", str(path)).stdout
    assert "DAG cron '0 3 * * *' in Europe/Paris, concurrency forbid" in out
    sid = cli.json("schedule", "list")[0]["id"]
    r = cli.run("schedule", "backfill", str(sid), "--start", "2026-01-01T00:00:00",
                "--end", "2026-01-02T23:59:59")  # fmt: skip
    assert "queued 2 instant(s); 0 recorded before" in r.stdout
    done = wait_until(lambda: (i := cli.json("schedule", "instants", str(sid)))
                      and all(x["state"] == "DONE" for x in i) and i, 120, "the backfill")
    # 03:00 in Paris in winter is 02:00 UTC.
    assert sorted(x["instant"] for x in done) == [1767232800.0, 1767319200.0]
    assert {x["outcome"] for x in done} == {"SUCCEEDED"}
    runs = cli.json("dag", "list", "--schedule", str(sid))["items"]
    assert sorted(r["scheduled_at"] for r in runs) == [1767232800.0, 1767319200.0]
    assert "backfill" in cli.run("schedule", "events", str(sid)).stdout
    assert "queued 0 instant(s); 2 recorded before" in cli.run(
        "schedule", "backfill", str(sid), "--start", "2026-01-01T00:00:00",
        "--end", "2026-01-02T23:59:59").stdout  # fmt: skip
    assert "no schedule" in cli.run("schedule", "show", str(sid), who="carol", check=1).stderr
    assert "schedule" in cli.run("schedule", "show", str(sid)).stdout
    cli.run("schedule", "delete", str(sid))
    assert cli.json("schedule", "list") == []
