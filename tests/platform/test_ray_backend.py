"""RayBackend and the service on a real local Ray cluster.

Ray binds every address it finds, so the head runs inside a private, loopback-only network
namespace (``unshare -n``, then ``ip link set lo up``), started once per test session with
``ray start --head --block`` and stopped by its pid (never ``ray stop``). The dashboard (needed
by the job submission API) is only reachable inside that namespace, so each test runs a scenario
of this file as a script in it (``nsenter -t <pid> -n``) and asserts on the JSON it prints.
Missing tools (unshare/nsenter/ip, Ray) make the tests FAIL with a clear message, not skip.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# tests/ holds the shared namespace helper; this file also runs as a scenario script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ray_netns import DASHBOARD, PY, RayHead
from ray_netns import in_namespace as _in_ns

# The session fixture ``ray_head`` (tests/conftest.py, from tests/ray_netns.py) is the Ray head
# in its loopback-only namespace: 8 logical CPUs and 1 GPU, as the example deployment declares,
# and the dashboard.


def run_scenario(head: RayHead, name: str, tmp_path: Path, timeout: float = 600) -> dict[str, Any]:
    res = _in_ns(head, [PY, __file__, name, str(tmp_path)], timeout=timeout)
    assert res.returncode == 0, (
        f"scenario {name} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    )
    result: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.ray
def test_gang_runs_as_a_placement_group_and_cancel_removes_it(
    ray_head: RayHead, tmp_path: Path
) -> None:
    out = run_scenario(ray_head, "gang_and_cancel", tmp_path)
    assert out["phases"] == [["succeeded", 0], ["failed", 3]]
    assert out["saw_running"]
    assert out["log1"].splitlines() == ["hello worker 1 of 2 job 11"]
    assert out["bundles"] == [{"CPU": 0.5, "memory": 64.0 * 2**20}, {"CPU": 1.0}]
    assert out["long_phase_before_cancel"] == "running"
    assert out["pg_states"]["cancelled"] == "REMOVED" and out["pg_states"]["gang"] == "REMOVED"
    assert out["after_cancel"] == "STOPPED" and out["reattach"] is True
    assert out["unknown_job"] == "not_found"
    assert out["recovered_handle_matches"] is True and out["recover_missing"] is None
    assert out["command_killed"] is True  # cancel reaches the user's process, not just Ray's


@pytest.mark.ray
def test_service_evicts_an_unplaceable_gang_then_fails_it_and_runs_a_feasible_one(
    ray_head: RayHead, tmp_path: Path
) -> None:
    out = run_scenario(ray_head, "service_pending_deadline", tmp_path)
    big = out["big"]
    assert big["state"] == "FAILED" and big["attempts"] == 2, big
    assert "pending deadline 1.5s exceeded" in big["reason"]
    assert big["transitions"] == [
        "PENDING", "ADMITTED", "STARTING", "BACKOFF", "PENDING", "ADMITTED", "STARTING", "FAILED"
    ]  # fmt: skip
    assert big["ray_jobs"] == ["STOPPED", "STOPPED"]  # each attempt's Ray job was stopped
    small = out["small"]
    assert small["state"] == "SUCCEEDED" and small["attempts"] == 1, small
    # A one-second job can finish between two polls, so RUNNING may never be observed;
    # what must hold is that it was admitted once, started once and succeeded.
    assert small["transitions"] in (
        ["PENDING", "ADMITTED", "STARTING", "RUNNING", "SUCCEEDED"],
        ["PENDING", "ADMITTED", "STARTING", "SUCCEEDED"],
    ), small["transitions"]


@pytest.mark.ray
def test_the_example_deployment_runs_gangs_on_both_clusters(
    ray_head: RayHead, tmp_path: Path
) -> None:
    """``serve --config examples/platform/platform.yaml`` as written, with its Ray cluster: ten
    submissions of the example gang all succeed, on both clusters; Ray logs come back through
    the API; a queue added through the API takes submissions at once."""
    out = run_scenario(ray_head, "example_config", tmp_path, timeout=900)
    assert out["states"] == ["SUCCEEDED"] * 10, out["reasons"]
    assert set(out["clusters"]) == {"box", "ray1"}
    assert out["ray_log"] == ["worker 1 of 4"] and out["box_log"] == ["master 0 of 4"]
    assert out["urgent"] == ["SUCCEEDED", ["urgent"]]
    assert out["serve_exit"] == 0


# -- scenarios: run as `python test_ray_backend.py <name> <tmpdir>` inside the namespace -------
def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def scenario_gang_and_cancel(tmp: Path) -> dict[str, Any]:
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_placement_groups

    from recforge.platform.backends import RayBackend
    from recforge.platform.model.specs import parse_job_spec
    from recforge.platform.store import Store

    url = f"sqlite:///{tmp / 'ray.db'}"
    store = Store(url)
    jid = store.create_job(name="g", owner="a", group="g", queue="q", spec={}).id
    assert jid == 1
    store.reset_replicas(jid, 1, [(0, "master"), (1, "worker")])
    backend = RayBackend(DASHBOARD, strategy="STRICT_PACK", heartbeat_interval=0.3,
                         id_prefix="gang")  # fmt: skip
    go = tmp / "go"  # the replicas wait for it: the gang is seen running however fast it is
    code = (
        f"import os, sys, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "e = os.environ; print('hello', e['RECFORGE_ROLE'],"
        " e['RECFORGE_REPLICA_INDEX'], 'of', e['RECFORGE_WORLD_SIZE'], 'job', e['MARK']);"
        " sys.exit(3 * int(e['RECFORGE_REPLICA_INDEX']))"
    )
    spec = parse_job_spec(
        {
            "name": "gang",
            "command": [PY, "-c", code],
            "env": {"MARK": "11"},
            "replica_specs": [
                {"role": "master", "resources": {"cpu": 0.5, "memory": "64Mi"}},
                {"role": "worker", "resources": {"cpu": 1}},
            ],
        }
    )
    handle = backend.launch(jid, spec, None, attempt=1)
    # Ray starts drivers slowly under load: generous deadlines.
    saw_running = _wait(lambda: backend.poll(handle).all_running, 150, "the gang to run")
    go.touch()

    def finished() -> Any:
        st = backend.poll(handle)
        done = all(r.phase.value in ("succeeded", "failed") for r in st.replicas)
        return st if done else None

    st = _wait(finished, 150, "gang to finish")
    pid_file = tmp / "long.pid"
    long_code = (
        f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    )
    long_spec = parse_job_spec(
        {"name": "long", "command": [PY, "-c", long_code],
         "replica_specs": [{"role": "master", "resources": {"cpu": 1}}]}
    )  # fmt: skip
    long_handle = backend.launch(2, long_spec, None, attempt=1)
    _wait(lambda: backend.poll(long_handle).all_running, 150, "long job to run")
    _wait(lambda: pid_file.exists() and pid_file.read_text().strip().isdigit(), 60, "long pid")
    long_phase = backend.poll(long_handle).replicas[0].phase.value
    backend.cancel(long_handle)
    long_pid = int(pid_file.read_text())

    def command_gone() -> bool:
        try:
            raw = Path(f"/proc/{long_pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return raw[raw.rindex(")") + 2] in "ZX"

    deadline = time.monotonic() + 60
    while not command_gone() and time.monotonic() < deadline:
        time.sleep(0.1)
    client = JobSubmissionClient(DASHBOARD)
    pgs = {p.name: p.state for p in list_placement_groups(address=DASHBOARD, limit=1000)}
    ghost = dict(handle, submission_id="recforge-does-not-exist")
    return {
        "phases": [[r.phase.value, r.exit_code] for r in st.replicas],
        "saw_running": saw_running,
        "log1": backend.logs(handle, 1),
        "bundles": [r["bundle"] for r in handle["replicas"]],
        "long_phase_before_cancel": long_phase,
        "pg_states": {
            "gang": pgs.get(handle["placement_group"]),
            "cancelled": pgs.get(long_handle["placement_group"]),
        },
        "after_cancel": str(client.get_job_status(long_handle["submission_id"]).value),
        "reattach": backend.reattach(handle),
        "unknown_job": backend.poll(ghost).replicas[0].phase.value,
        "recovered_handle_matches": backend.recover_handle(jid, 1) == handle,
        "recover_missing": backend.recover_handle(jid, 7),
        "command_killed": command_gone(),
    }


def scenario_service_pending_deadline(tmp: Path) -> dict[str, Any]:
    from ray.job_submission import JobSubmissionClient

    from recforge.platform.backends import RayBackend
    from recforge.platform.model.config import parse_platform_config
    from recforge.platform.runtime.reconciler import LoopSettings as ServiceSettings
    from recforge.platform.runtime.service import PlatformService, save_config
    from recforge.platform.store import Store, User

    url = f"sqlite:///{tmp / 'svc.db'}"
    store = Store(url)
    # The platform believes the Ray cluster has 32 CPUs; the node really has 8. A 12-CPU gang is
    # admitted by quota but its placement group can never be placed: Ray keeps it pending.
    save_config(
        store,
        parse_platform_config(
            {
                "clusters": [{"name": "ray1", "type": "ray", "capacity": {"cpu": 32}}],
                "groups": [{"name": "ml", "quotas": [{"cluster": "ray1", "nominal": {"cpu": 32}}]}],
                "queues": [{"name": "q", "group": "ml"}],
            }
        ),
    )
    backend = RayBackend(DASHBOARD, heartbeat_interval=0.3, id_prefix="svc")
    svc = PlatformService(
        store,
        {"ray": backend},
        settings=ServiceSettings(tick_interval=0.1, heartbeat_timeout=10),
    )
    user = User("alice", "ml", False)
    big = svc.submit(
        user,
        {
            "name": "big",
            "queue": "q",
            "command": [PY, "-c", "print('never')"],
            "replica_specs": [{"role": "master", "resources": {"cpu": 12}}],
            "pending_deadline_seconds": 1.5,
            "retry": {"max_attempts": 2, "backoff_seconds": 0.3},
        },
    )
    small = svc.submit(
        user,
        {
            "name": "small",
            "queue": "q",
            "command": [PY, "-c", "import time; time.sleep(1)"],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1}}],
        },
    )
    handles: list[str] = []

    def done() -> bool:
        svc.tick()
        h = store.get_job(big).handle
        if h and h["submission_id"] not in handles:
            handles.append(h["submission_id"])
        return all(store.get_job(j).state.value in ("FAILED", "SUCCEEDED") for j in (big, small))

    _wait(done, 240, "both jobs to finish")
    client = JobSubmissionClient(DASHBOARD)
    # Stopping a Ray job takes Ray a moment (more on a loaded machine): wait for it, generously.
    _wait(lambda: all(client.get_job_status(s).is_terminal() for s in handles), 60,
          "Ray to stop every attempt's job")  # fmt: skip

    def view(jid: int) -> dict[str, Any]:
        rec = store.get_job(jid)
        return {
            "state": rec.state.value,
            "attempts": rec.attempts,
            "reason": rec.reason,
            "transitions": [e.to_state.value for e in store.events(jid)],
        }

    return {
        "big": {**view(big), "ray_jobs": [str(client.get_job_status(s).value) for s in handles]},
        "small": view(small),
    }


def scenario_example_config(tmp: Path) -> dict[str, Any]:
    import yaml
    from serve_support import start_server

    examples = Path(__file__).parents[2] / "examples" / "platform"
    server = start_server(tmp / "serve", examples / "platform.yaml")
    try:
        admin = server.client()
        for user, group in (("ana", "risk"), ("rui", "recsys")):
            server.tokens[user] = admin.create_token(user, group=group)["token"]
        gang = yaml.safe_load((examples / "gang-job.yaml").read_text())
        ana = server.client("ana")
        ids = [ana.submit(gang)["id"] for _ in range(10)]
        _wait(lambda: all(ana.get_job(i)["state"] in ("SUCCEEDED", "FAILED") for i in ids), 480,
              "the ten gangs")  # fmt: skip
        jobs = [ana.get_job(i) for i in ids]
        on_ray = next(j for j in jobs if j["cluster"] == "ray1")
        on_box = next(j for j in jobs if j["cluster"] == "box")
        ray_log = ana.logs(on_ray["id"], replica=1)["text"].splitlines()
        box_log = ana.logs(on_box["id"], replica=0)["text"].splitlines()
        # A queue added through the API takes jobs right away (the loop uses the new config).
        queues = admin.get_config("queues")
        admin.put_config("queues", [*queues, {"name": "urgent", "group": "recsys",
                                              "priority": 5}])  # fmt: skip
        rui = server.client("rui")
        urgent = rui.submit({"name": "urgent", "queue": "urgent", "cluster_type": "local",
                             "command": ["sh", "-c", "echo urgent"],
                             "replica_specs": [{"role": "master",
                                                "resources": {"cpu": 0.5}}]})  # fmt: skip
        _wait(lambda: rui.get_job(urgent["id"])["state"] in ("SUCCEEDED", "FAILED"), 120,
              "the urgent job")  # fmt: skip
        urgent_out = (rui.get_job(urgent["id"])["state"],
                      rui.logs(urgent["id"])["text"].splitlines())  # fmt: skip
    finally:
        code = server.stop()
    return {
        "states": [j["state"] for j in jobs],
        "reasons": [j["reason"] for j in jobs],
        "clusters": sorted({j["cluster"] for j in jobs}),
        "ray_log": ray_log,
        "box_log": box_log,
        "urgent": urgent_out,
        "serve_exit": code,
    }


if __name__ == "__main__":
    scenario = globals()[f"scenario_{sys.argv[1]}"]
    print(json.dumps(scenario(Path(sys.argv[2]))))
