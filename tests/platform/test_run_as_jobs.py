"""Service and Spark jobs through ``recforge platform serve`` running as root: their processes
run as the group's ``run_as`` user (``rfjob-ml``), never as root.

The venv's interpreter lives under /root here, which ``rfjob-ml`` cannot execute, so the
deployment names Debian's python3 for the job side (``backends.local.job_python`` for the
service's supervisor, ``backends.spark.python`` for PySpark's driver and workers), as a
deployment whose service interpreter is private must. The Spark scenario runs inside a
loopback-only network namespace (``unshare -n``), as the other Spark tests do.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import (
    JOB_PYTHON,
    Server,
    remove,
    shared_dir,
    spark_scenario,
    start_server,
    wait_until,
)

PY = sys.executable
USER = "rfjob-ml"


def _config(**backends: Any) -> dict[str, Any]:
    clusters = [{"name": "box", "type": "local", "capacity": {"cpu": 4, "memory": "8Gi"}}]
    if "spark" in backends:
        clusters.append({"name": "spark1", "type": "spark",
                         "capacity": {"cpu": 4, "memory": "16Gi"}})  # fmt: skip
    return {
        "clusters": clusters,
        "groups": [{"name": "ml", "run_as": USER, "quotas": [
            {"cluster": c["name"], "nominal": c["capacity"]} for c in clusters]}],
        "queues": [{"name": "ml-q", "group": "ml"}],
        "backends": {"local": {"heartbeat_interval": 0.5, "job_python": JOB_PYTHON},
                     **backends},
        "jobs": {"tick_interval": 0.1, "heartbeat_timeout": 120},
    }  # fmt: skip


@pytest.fixture
def as_root(request: pytest.FixtureRequest) -> None:
    """The test switches users: it needs root (CI runs the suite as root)."""
    if os.geteuid() != 0:  # `id -u` != 0: this environment cannot switch users
        pytest.skip(f"serve runs replicas as {USER} only as root; this process is uid "
                    f"{os.geteuid()} and cannot switch users")  # fmt: skip
    request.getfixturevalue("job_users")  # creates rfjob-ml / rfjob-cv when missing


def _owner(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return pwd.getpwuid(int(line.split()[1])).pw_name
    raise AssertionError(f"no Uid line for pid {pid}")


WHOAMI = """
import http.server, os, pwd
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = pwd.getpwuid(os.getuid()).pw_name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


@pytest.fixture
def server(as_root: None, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "serve", _config())
    try:
        srv.tokens["alice"] = srv.client().create_token("alice", group="ml")["token"]
        yield srv
    finally:
        srv.stop()


def test_a_service_job_runs_as_the_groups_user_and_restarts_as_it(server: Server) -> None:
    with server.client("alice") as alice:
        job = alice.submit({
            "name": "whoami", "kind": "service", "queue": "ml-q",
            "command": [JOB_PYTHON, "-c", WHOAMI],
            "service": {"replicas": 1, "max_replicas": 1, "readiness": {"http_path": "/"},
                        "restart": {"backoff_seconds": 0.2},
                        "resources": {"cpu": 0.5, "memory": "256Mi"}},
        })["id"]  # fmt: skip

        def ready() -> Any:
            s = alice.service(job)
            ok = s["job_state"] == "RUNNING" and s["ready"] == 1 and s["replicas"][0]["ready"]
            return s if ok else None

        first = wait_until(ready, 300, "the service's replica to be ready")
        address = first["address"]
        with urllib.request.urlopen(f"http://{address}/", timeout=30) as r:
            assert r.read().decode() == USER  # the server answers as the group's user
        pid = first["replicas"][0]["pid"]
        assert _owner(pid) == USER
        # The supervisor (the job's one platform replica) runs as that user too, not root.
        sup = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert _owner(sup) == USER
        os.kill(pid, signal.SIGKILL)
        back = wait_until(lambda: (s := ready()) and s["replicas"][0]["restarts"] == 1 and s,
                          300, "the killed replica to be restarted")  # fmt: skip
        assert back["address"] == address and _owner(back["replicas"][0]["pid"]) == USER
        with urllib.request.urlopen(f"http://{address}/", timeout=30) as r:
            assert r.read().decode() == USER
        alice.cancel(job)
        wait_until(lambda: alice.get_job(job)["state"] == "CANCELLED", 120, "the stop")
        log = alice.logs(job)["text"]
        assert "restart 1 in 0.2s" in log, log


SPARK_APP = """
import os, pwd, sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("DRIVER", pwd.getpwuid(os.getuid()).pw_name, flush=True)
names = sc.parallelize(range(4), 2).map(lambda _: pwd.getpwuid(os.getuid()).pw_name).collect()
print("WORKERS", sorted(set(names)), flush=True)
print("SUM", sc.parallelize(range(100), 4).sum(), flush=True)
spark.stop()
"""


def test_a_spark_job_runs_as_the_groups_user(as_root: None, tmp_path: Path) -> None:
    out = spark_scenario(__file__, "spark", tmp_path)
    assert out["state"] == "SUCCEEDED", out
    log = out["log"]
    assert f"DRIVER {USER}" in log and f"WORKERS ['{USER}']" in log and "SUM 4950" in log, log


def scenario_spark(tmp: Path) -> dict[str, Any]:
    """Inside the namespace: serve as root, one Spark job of alice's group, its end and log."""
    shared = shared_dir("rf-spark-")  # the app must be readable by rfjob-ml
    try:
        app = shared / "app.py"
        app.write_text(SPARK_APP)
        os.chmod(app, 0o644)
        srv = start_server(tmp / "serve", _config(spark={
            "master": "local", "python": JOB_PYTHON, "heartbeat_interval": 0.5,
            "term_grace": 30}))  # fmt: skip
        try:
            with srv.client() as admin:
                token = admin.create_token("alice", group="ml")["token"]
            from recforge.platform.client import PlatformClient

            with PlatformClient(srv.url, token) as alice:
                job = alice.submit({"name": "who", "queue": "ml-q", "kind": "spark", "spark": {
                    "application": str(app),
                    "driver": {"cpu": 1, "memory": "512Mi"},
                    "executors": {"instances": 1, "cpu": 1, "memory": "512Mi"}}})["id"]
                done = wait_until(lambda: (j := alice.get_job(job))["state"] in
                                  ("SUCCEEDED", "FAILED", "CANCELLED") and j, 600,
                                  "the Spark job to end")  # fmt: skip
                return {"state": done["state"], "reason": done.get("reason"),
                        "log": alice.logs(job, tail=1000)["text"]}
        finally:
            srv.stop()
    finally:
        remove(shared)


if __name__ == "__main__":
    scenario = globals()[f"scenario_{sys.argv[1]}"]
    print(json.dumps(scenario(Path(sys.argv[2]))))
