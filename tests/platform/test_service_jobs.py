"""Online-service jobs: a recforge model served over HTTP through the REST API.

examples/platform/service-job.yaml (its paths pointed at this test's model) runs on the local
backend: the supervisor keeps two replicas of examples/platform/serve_model.py ready behind one
address; a replica killed with SIGKILL is restarted with the address unchanged; the service
scales up and down within max_replicas; cancel stops every replica gracefully and frees the
address. Everything binds 127.0.0.1; every wait is a condition with a generous deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_support import Platform, job_spec, running_platform
from serve_support import process_running as _alive
from serve_support import wait_until as _wait

from recforge.platform.model.specs import SpecError, parse_job_spec

EXAMPLES = Path(__file__).parents[2] / "examples" / "platform"
SERVER = EXAMPLES / "serve_model.py"


def test_service_spec_is_one_supervisor_sized_for_max_replicas() -> None:
    spec = parse_job_spec((EXAMPLES / "service-job.yaml").read_text(), source="service-job.yaml")
    assert spec.kind == "service" and spec.cluster_type == "local" and spec.gang_size == 1
    assert spec.service is not None and spec.service.limit == 3
    (_, total) = spec.gang_request()
    assert (total.cpu, total.memory, total.pods) == (0.75, 1536, 1)  # 3 x (0.25 cpu, 512Mi)
    assert spec.service.restart.delay(1) == 0.5 and spec.service.restart.delay(3) == 2.0
    assert spec.service.restart.delay(50) == 30.0
    assert parse_job_spec(spec.canonical()) == spec


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"command": None}, "command", "needs the server's argv"),
        ({"service": {"replicas": 3, "max_replicas": 2}}, "service.max_replicas",
         "2 is below replicas (3)"),
        ({"service": {"readiness": {}}}, "service.readiness",
         "exactly one of http_path or command"),
        ({"service": {"readiness": {"http_path": "healthz"}}}, "service.readiness.http_path",
         "pattern"),
        ({"service": {"restart": {"backoff_seconds": 5, "max_backoff": 1}}},
         "service.restart.max_backoff", "1 must be >= backoff_seconds (5)"),
        ({"cluster_type": "ray"}, "cluster_type", "services run on 'local' clusters"),
        ({"min_available": 2}, "min_available", "not for kind 'service'"),
        ({"service": {"port": 80}}, "service.port", "greater than or equal to 1024"),
    ],
)  # fmt: skip
def test_bad_service_specs_name_the_field(patch: dict[str, Any], path: str, message: str) -> None:
    data = {"name": "svc", "kind": "service", "command": ["srv"], **patch}
    if data["command"] is None:
        data.pop("command")
    with pytest.raises(SpecError) as err:
        parse_job_spec(data, source="svc.yaml")
    assert f"- {path}: " in str(err.value) and message in str(err.value), str(err.value)
    with pytest.raises(SpecError, match="service: only for kind 'service'"):
        parse_job_spec({"name": "x", "command": ["true"], "service": {}})


# -- end to end ---------------------------------------------------------------------------------
@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path) as p:
        yield p


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "ease-demo"
    subprocess.run([sys.executable, str(SERVER), "train", "--out", str(out)], check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    return out


def _get(address: str, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_service_serves_a_model_survives_a_killed_replica_scales_and_stops(
    plat: Platform, model_dir: Path
) -> None:
    from recforge.data.io import read_csv
    from recforge.models import load_model

    spec = yaml.safe_load((EXAMPLES / "service-job.yaml").read_text())
    spec["command"] = [sys.executable, str(SERVER), "serve", "--model", str(model_dir)]
    spec["queue"] = "ml-q"
    job = plat.submit("alice", spec)["id"]
    alice = plat.auth("alice")

    def status() -> dict[str, Any]:
        r = plat.client.get(f"/jobs/{job}/service", headers=alice)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def ready(n: int) -> Any:
        s = status()
        ok = (s["job_state"] == "RUNNING" and s["ready"] == n and len(s["replicas"]) == n
              and all(r["ready"] for r in s["replicas"]))  # fmt: skip
        return s if ok else None

    first = _wait(lambda: ready(2), 300, "two ready replicas")
    address = first["address"]
    host, port = address.split(":")
    assert host == "127.0.0.1" and int(port) > 0

    # It serves the model: the answers are the saved model's own recommendations.
    data = read_csv(SERVER.parents[1] / "my_interactions.csv", "user_id", "item_id", "rating",
                    "ts", id_type="str", implicit=True)  # fmt: skip
    expected = [i for i, _ in load_model(model_dir, data=data).recommend(["user001"], k=5)
                .lists()["user001"]]  # fmt: skip
    seen = set()
    for _ in range(6):
        code, body = _get(address, "/recommend?user=user001&k=5")
        assert code == 200 and body["items"] == expected
        seen.add(body["replica"])
    assert seen == {"0", "1"}  # connections go to both replicas
    assert _get(address, "/recommend?user=ghost") == (404, {"error": "unknown user 'ghost'"})

    # A replica killed with SIGKILL is restarted (backoff), the job keeps running, same address.
    victim = first["replicas"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    after = _wait(lambda: (s := ready(2)) and s["replicas"][0]["restarts"] == 1 and s, 300,
                  "the killed replica to be back")  # fmt: skip
    assert after["address"] == address and after["replicas"][0]["pid"] != victim
    assert after["replicas"][0]["last_exit"] == -signal.SIGKILL
    assert _get(address, "/recommend?user=user001&k=5")[1]["items"] == expected
    log = plat.client.get(f"/jobs/{job}/logs", params={"tail": 1000}, headers=alice).json()["text"]
    assert f"replica 0 exited with code {-signal.SIGKILL}; restart 1 in 0.5s" in log

    # Scale up to max_replicas and down again; beyond it is refused, as is a group-mate.
    r = plat.client.post(f"/jobs/{job}/scale", json={"replicas": 4}, headers=alice)
    assert r.status_code == 422 and "outside 0..3" in r.text
    r = plat.client.post(f"/jobs/{job}/scale", json={"replicas": 1}, headers=plat.auth("bob"))
    assert r.status_code == 403
    r = plat.client.post(f"/jobs/{job}/scale", json={"replicas": 3}, headers=alice)
    assert r.status_code == 200 and r.json()["desired"] == 3
    three = _wait(lambda: ready(3), 300, "three ready replicas")
    assert three["address"] == address
    pids = [rep["pid"] for rep in three["replicas"]]
    assert plat.client.post(f"/jobs/{job}/scale", json={"replicas": 1},
                            headers=alice).status_code == 200  # fmt: skip
    one = _wait(lambda: ready(1), 300, "one replica left")
    assert one["replicas"][0]["pid"] == pids[0]
    _wait(lambda: not any(_alive(p) for p in pids[1:]), 60, "scaled-down replicas to exit")
    assert _get(address, "/recommend?user=user001&k=5")[1]["replica"] == "0"

    # Graceful stop: every replica gets SIGTERM and exits 0; the address is closed.
    assert plat.client.post(f"/jobs/{job}/cancel", headers=alice).status_code == 200
    _wait(lambda: status()["job_state"] == "CANCELLED", 120, "the service to stop")
    _wait(lambda: not _alive(pids[0]), 60, "the last replica to exit")
    log = plat.client.get(f"/jobs/{job}/logs", params={"tail": 1000}, headers=alice).json()["text"]
    assert "[replica 0] stopped" in log  # the server's own graceful-shutdown line
    assert status()["address"] is None
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=5):
        pass


def test_service_routes_refuse_what_they_cannot_do(plat: Platform) -> None:
    alice = plat.auth("alice")
    batch = plat.submit("alice", job_spec(command=[sys.executable, "-c", "pass"]))["id"]
    r = plat.client.get(f"/jobs/{batch}/service", headers=alice)
    assert r.status_code == 422 and "not a service" in r.text
    assert plat.client.get("/jobs/999999/service", headers=alice).status_code == 404
    # Admission counts max_replicas: 3 x 1 cpu is more than the group's 2 ever.
    too_big = {"name": "big", "kind": "service", "queue": "ml-q",
               "command": [sys.executable, "-c", "pass"],
               "service": {"replicas": 1, "max_replicas": 3, "resources": {"cpu": 1}}}
    r = plat.client.post("/jobs", json=too_big, headers=alice)
    assert r.status_code == 409 and "cpu 3 > 2" in r.text
    # A service waiting behind a job that holds the quota has no address and cannot scale.
    hold = plat.submit("alice", job_spec(cpu=2, command=[sys.executable, "-c",
                                                         "import time; time.sleep(600)"]))
    _wait(lambda: plat.store.get_job(hold["id"]).state.value in ("STARTING", "RUNNING"), 120,
          "the holding job to be admitted")  # fmt: skip
    waiting = plat.submit("alice", {**too_big, "service": {"resources": {"cpu": 1}}})["id"]
    view = plat.client.get(f"/jobs/{waiting}/service", headers=alice).json()
    assert view["state"] == "not started" and view["address"] is None
    assert view["job_state"] == "PENDING"
    r = plat.client.post(f"/jobs/{waiting}/scale", json={"replicas": 1}, headers=alice)
    assert r.status_code == 409 and "only a launched service can scale" in r.text
    for jid in (waiting, hold["id"]):
        with contextlib.suppress(Exception):
            plat.client.post(f"/jobs/{jid}/cancel", headers=alice)


def test_cli_shows_a_service_and_relays_a_refused_scale(tmp_path: Path) -> None:
    from api_support import CONFIG
    from serve_support import start_server
    from typer.testing import CliRunner

    from recforge.platform.cli import app

    server = start_server(tmp_path / "serve", {**CONFIG, "jobs": {"heartbeat_timeout": None}})
    try:
        token = server.client().create_token("alice", group="ml")["token"]
        server.tokens["alice"] = token
        alice = server.client("alice")
        hold = alice.submit(job_spec(cpu=2, command=["sleep", "600"]))["id"]
        _wait(lambda: alice.get_job(hold)["state"] in ("STARTING", "RUNNING"), 120, "hold job")
        svc = alice.submit({"name": "api", "kind": "service", "queue": "ml-q",
                            "command": ["sleep", "600"],
                            "service": {"resources": {"cpu": 1}}})["id"]  # fmt: skip
        env = {"RECFORGE_PLATFORM_URL": server.url, "RECFORGE_TOKEN": token}
        runner = CliRunner()
        shown = runner.invoke(app, ["service", str(svc)], env=env)
        assert shown.exit_code == 0, shown.output
        assert f"job {svc} (PENDING): service not started at -, 0 of 1 replica(s) ready" in (
            shown.stdout
        )
        refused = runner.invoke(app, ["scale", str(svc), "2"], env=env)
        assert refused.exit_code == 1 and "outside 0..1" in refused.output
        as_json = runner.invoke(app, ["service", str(svc), "--json"], env=env)
        assert json.loads(as_json.stdout)["max_replicas"] == 1
        # Monitoring through the CLI: the running job's latest sample per replica.
        _wait(lambda: alice.metrics(hold)["replicas"].get("0"), 120, "samples of the hold job")
        shown = runner.invoke(app, ["metrics", str(hold)], env=env)
        assert shown.exit_code == 0, shown.output
        assert f"job {hold} attempt 1" in shown.stdout and "  replica 0: cpu " in shown.stdout
        assert "sample(s)" in shown.stdout and "anomaly" not in shown.stdout
        pending = runner.invoke(app, ["metrics", str(svc)], env=env)
        assert pending.exit_code == 0 and pending.stdout == f"job {svc} attempt 0\n"
        for jid in (svc, hold):
            alice.cancel(jid)
    finally:
        server.stop()
