"""Kubernetes jobs through the official client against the API-compatible test server.

No real API server can run here (see docs/PLATFORM.md): tests/platform/k8s_api_server.py
speaks the API's JSON on 127.0.0.1, and the tests play the kubelet (pod phases through the status
subresource, logs). What is checked: the pods the backend creates (namespace per group, labels,
the sidecar container, resources, Volcano PodGroup), the gang rule through the scheduler (a gang
that does not fit creates no pod at all), the watch waking the service, pod failure, cancel.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_api_server import K8sTestServer, matches
from serve_support import wait_until as _wait

from recforge.platform.backends.kubernetes import KubernetesBackend, namespace_for
from recforge.platform.model.specs import SpecError, parse_job_spec


@pytest.fixture
def k8s() -> Iterator[K8sTestServer]:
    server = K8sTestServer().start()
    yield server
    server.stop()


def _client(server: K8sTestServer) -> Any:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = server.url
    return client.CoreV1Api(client.ApiClient(cfg))


def _kubelet(server: K8sTestServer, ns: str, pod: str, phase: str, exit_code: int | None = None
             ) -> None:  # fmt: skip
    """What a kubelet reports: the pod's phase (and main's exit code) via the status API."""
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{
            "name": "main", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": "Error"}},
        }]  # fmt: skip
    _client(server).patch_namespaced_pod_status(pod, ns, {"status": status})


def test_label_selectors_of_the_test_server_follow_kubernetes() -> None:
    labels = {"app": "x", "tier": "web"}
    assert matches("app=x,tier in (web, db)", labels)
    assert matches("app==x,!missing,tier", labels)
    assert not matches("app!=x", labels) and not matches("tier notin (web)", labels)
    assert not matches("missing", labels) and not matches("app in (y)", labels)


def test_namespace_names_are_dns_labels() -> None:
    assert namespace_for("recforge-", "ML_team.v2") == "recforge-ml-team-v2"
    assert len(namespace_for("recforge-", "g" * 80)) == 63


def test_image_only_for_kubernetes_jobs() -> None:
    spec = parse_job_spec({"name": "j", "command": ["true"], "cluster_type": "kubernetes",
                           "image": "ghcr.io/x/y:1"})  # fmt: skip
    assert spec.image == "ghcr.io/x/y:1"
    with pytest.raises(SpecError, match=r"image: only for jobs with cluster_type 'kubernetes'"):
        parse_job_spec({"name": "j", "command": ["true"], "image": "x"})


def test_backend_creates_labelled_pods_with_a_sidecar_watches_and_cancels(
    k8s: K8sTestServer,
) -> None:
    from recforge.platform.model.admission import Admission, ReplicaSlot
    from recforge.platform.model.resources import Resources

    backend = KubernetesBackend(k8s.url, volcano=True, heartbeat_interval=2)
    woke: list[int] = []
    backend.set_notifier(woke.append)
    try:
        spec = parse_job_spec({
            "name": "train", "cluster_type": "kubernetes", "image": "ghcr.io/acme/train:3",
            "command": ["python", "train.py"], "env": {"EPOCHS": 3},
            "replica_specs": [
                {"role": "master", "resources": {"cpu": 0.5, "memory": "256Mi"}},
                {"role": "worker", "replicas": 2, "resources": {"cpu": 1, "gpu": 1}},
            ],
        })  # fmt: skip
        slots = tuple(ReplicaSlot(r, i, res) for r, i, res in spec.replica_list())
        admission = Admission("7", "k1", "kubernetes", "q", "ml_team", slots, 3,
                              Resources.total([s.resources for s in slots]), 0.0)  # fmt: skip
        handle = backend.launch(7, spec, admission, attempt=2)
        ns = "recforge-ml-team"
        assert handle["namespace"] == ns and handle["podgroup"] == "rf-7-a2"
        core = _client(k8s)
        pods = core.list_namespaced_pod(ns, label_selector="recforge.io/job=7").items
        assert sorted(p.metadata.name for p in pods) == ["rf-7-a2-0", "rf-7-a2-1", "rf-7-a2-2"]
        master = core.read_namespaced_pod("rf-7-a2-0", ns)
        assert master.metadata.labels == {
            "recforge.io/managed": "true", "recforge.io/job": "7", "recforge.io/attempt": "2",
            "recforge.io/replica": "0", "recforge.io/role": "master"}  # fmt: skip
        main, sidecar = master.spec.containers
        assert (main.name, main.image, main.command) == ("main", "ghcr.io/acme/train:3",
                                                         ["python", "train.py"])  # fmt: skip
        env = {e.name: e.value for e in main.env}
        assert env["EPOCHS"] == "3" and env["RECFORGE_ROLE"] == "master"
        assert env["RECFORGE_WORLD_SIZE"] == "3" and env["RECFORGE_ATTEMPT"] == "2"
        assert main.resources.requests == main.resources.limits == {"cpu": "500m",
                                                                     "memory": "256Mi"}
        worker = core.read_namespaced_pod("rf-7-a2-1", ns)
        assert worker.spec.containers[0].resources.limits == {"cpu": "1000m", "nvidia.com/gpu": "1"}
        assert sidecar.name == "recforge-sidecar" and sidecar.command[:4] == [
            "python", "-m", "recforge.platform.backends.sidecar", "beat"]
        assert master.spec.restart_policy == "Never" and master.spec.scheduler_name == "volcano"
        assert master.metadata.annotations == {"scheduling.k8s.io/group-name": "rf-7-a2"}
        group = backend.custom.get_namespaced_custom_object(
            "scheduling.volcano.sh", "v1beta1", ns, "podgroups", "rf-7-a2")
        assert group["spec"] == {"minMember": 3}

        assert {r.phase.value for r in backend.poll(handle).replicas} == {"pending"}
        woke.clear()
        for i in range(3):
            _kubelet(k8s, ns, f"rf-7-a2-{i}", "Running")
        _wait(lambda: woke.count(7) >= 3, 30, "the watch to report the three pod changes")
        assert backend.poll(handle).all_running
        k8s.set_log(ns, "rf-7-a2-1", "epoch 1\nepoch 2\nepoch 3")
        assert backend.logs(handle, 1, tail=2) == "epoch 2\nepoch 3"
        _kubelet(k8s, ns, "rf-7-a2-2", "Failed", exit_code=3)
        failed = backend.poll(handle).failed
        assert [(r.index, r.phase.value, r.exit_code) for r in failed] == [(2, "failed", 3)]
        assert backend.reattach(handle)
        backend.cancel(handle)
        assert core.list_namespaced_pod(ns, label_selector="recforge.io/job=7").items == []
        assert not backend.reattach(handle)
        assert {r.phase.value for r in backend.poll(handle).replicas} == {"not_found"}
        with pytest.raises(Exception, match="Not Found"):
            backend.custom.get_namespaced_custom_object(
                "scheduling.volcano.sh", "v1beta1", ns, "podgroups", "rf-7-a2")
        backend.cancel(handle)  # idempotent
    finally:
        backend.close()


def test_service_admits_gangs_whole_creates_pods_and_fails_a_job_whose_pod_failed(
    k8s: K8sTestServer, tmp_path: Path
) -> None:
    from recforge.platform.model.config import parse_platform_config
    from recforge.platform.runtime.reconciler import LoopSettings
    from recforge.platform.runtime.service import PlatformService, save_config
    from recforge.platform.store import Store, User

    store = Store(f"sqlite:///{tmp_path / 'k8s.db'}")
    save_config(store, parse_platform_config({
        "clusters": [{"name": "k1", "type": "kubernetes", "capacity": {"cpu": 4}}],
        "groups": [{"name": "ml", "quotas": [{"cluster": "k1", "nominal": {"cpu": 4}}]}],
        "queues": [{"name": "q", "group": "ml"}],
    }))  # fmt: skip
    backend = KubernetesBackend(k8s.url)
    svc = PlatformService(store, {"kubernetes": backend},
                          settings=LoopSettings(tick_interval=0.1, heartbeat_timeout=None))
    stop = threading.Event()
    loop = threading.Thread(target=svc.run_forever, args=(stop,), daemon=True)
    loop.start()
    user = User("alice", "ml", False)
    core = _client(k8s)

    def gang(name: str) -> dict[str, Any]:
        return {"name": name, "queue": "q", "cluster_type": "kubernetes",
                "command": [sys.executable, "-c", "pass"],
                "replica_specs": [{"role": "master", "resources": {"cpu": 1}},
                                  {"role": "worker", "replicas": 2,
                                   "resources": {"cpu": 1}}]}  # fmt: skip

    def pods_of(job: int) -> list[str]:
        items = core.list_namespaced_pod("recforge-ml", label_selector=f"recforge.io/job={job}")
        return sorted(p.metadata.name for p in items.items)

    def state(job: int) -> str:
        return store.get_job(job).state.value

    try:
        first = svc.submit(user, gang("first"))
        _wait(lambda: len(pods_of(first)) == 3, 60, "the first gang's three pods")
        second = svc.submit(user, gang("second"))  # 3 more cpu: does not fit beside the first
        for _ in range(20):
            svc.tick()
        assert state(second) == "PENDING" and pods_of(second) == []  # no partial gang
        why = svc.why(user, second).reason
        assert "gang of 3 replica(s)" in why and "blocked by" in why and "cpu" in why, why
        for name in pods_of(first):
            _kubelet(k8s, "recforge-ml", name, "Running")
        _wait(lambda: state(first) == "RUNNING", 60, "the first job to run")
        k8s.set_log("recforge-ml", f"rf-{first}-a1-0", "loading data")
        assert svc.logs(user, first, 0) == "loading data"
        _kubelet(k8s, "recforge-ml", f"rf-{first}-a1-1", "Failed", exit_code=137)
        _wait(lambda: state(first) == "FAILED", 60, "the pod failure to fail the job")
        assert "replica 1 failed with exit code 137" in store.get_job(first).reason
        # Its pods are deleted, the quota freed: the second gang gets all three of its pods.
        _wait(lambda: pods_of(first) == [], 60, "the failed job's pods to be deleted")
        _wait(lambda: len(pods_of(second)) == 3, 60, "the second gang's pods")
        for name in pods_of(second):
            _kubelet(k8s, "recforge-ml", name, "Succeeded", exit_code=0)
        _wait(lambda: state(second) == "SUCCEEDED", 60, "the second job to succeed")
        transitions = [e.to_state.value for e in store.events(second)]
        assert transitions[0] == "PENDING" and transitions[-1] == "SUCCEEDED"
    finally:
        stop.set()
        svc.reconciler.wake.set()
        loop.join(timeout=30)
        backend.close()
        store.close()


def test_sidecar_beat_heartbeats_until_sigterm(tmp_path: Path) -> None:
    """The pods' second container: beats (here to a file) until stopped, then exits 0."""
    import os
    import signal
    import subprocess

    hb = tmp_path / "replica-0.hb"
    proc = subprocess.Popen([sys.executable, "-m", "recforge.platform.backends.sidecar", "beat",
                             "--job", "7", "--replica", "0", "--heartbeat-file", str(hb),
                             "--heartbeat-interval", "0.1"])  # fmt: skip
    try:
        _wait(hb.exists, 60, "the first beat")
        first = hb.stat().st_mtime_ns
        _wait(lambda: hb.stat().st_mtime_ns > first, 60, "a later beat")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_deployment_builds_the_kubernetes_backend(tmp_path: Path, monkeypatch: Any) -> None:
    from recforge.platform.model.deployment import parse_deployment
    from recforge.platform.runtime.bootstrap import build

    monkeypatch.setenv("K8S_TOKEN", "secret-token")
    cfg = parse_deployment({
        "backends": {"kubernetes": {"host": "http://127.0.0.1:1", "token_env": "K8S_TOKEN",
                                    "volcano": True, "namespace_prefix": "rf-",
                                    "heartbeat_url": "https://rf.example:8443/"}},
        "clusters": [{"name": "k1", "type": "kubernetes", "capacity": {"cpu": 4}}],
    })  # fmt: skip
    deployment = build(cfg, state_dir=tmp_path / "state")
    try:
        backend = deployment.backends["kubernetes"]
        assert isinstance(backend, KubernetesBackend)
        assert backend.volcano and backend.prefix == "rf-"
        assert backend.heartbeat_url == "https://rf.example:8443" and backend.heartbeats
        assert backend.api_client.configuration.api_key == {"authorization": "secret-token"}
    finally:
        for b in deployment.backends.values():
            b.close()
        deployment.store.close()
    with pytest.raises(SpecError, match=r"backends\.kubernetes\.host"):
        parse_deployment({"backends": {"kubernetes": {"host": "127.0.0.1:6443"}}})
    with pytest.raises(SpecError, match=r"backends\.kubernetes\.heartbeat_url"):
        parse_deployment({"backends": {"kubernetes": {"host": "http://h:1",
                                                      "heartbeat_url": "rf.example"}}})


def _k8s_service(store_path: Path, backend: KubernetesBackend,
                 heartbeat_timeout: float | None = None) -> Any:  # fmt: skip
    from recforge.platform.model.config import parse_platform_config
    from recforge.platform.runtime.reconciler import LoopSettings
    from recforge.platform.runtime.service import PlatformService, save_config
    from recforge.platform.store import Store

    store = Store(f"sqlite:///{store_path}")
    save_config(store, parse_platform_config({
        "clusters": [{"name": "k1", "type": "kubernetes", "capacity": {"cpu": 4}}],
        "groups": [{"name": "ml", "quotas": [{"cluster": "k1", "nominal": {"cpu": 4}}]}],
        "queues": [{"name": "q", "group": "ml"}],
    }))  # fmt: skip
    return PlatformService(store, {"kubernetes": backend},
                           settings=LoopSettings(tick_interval=0.1,
                                                 heartbeat_timeout=heartbeat_timeout))


def test_each_attempt_gets_a_heartbeat_secret_for_its_sidecars_only(k8s: K8sTestServer) -> None:
    """With heartbeat_url, a Secret per attempt holds the API's URL and a random token; only
    the sidecar container references it, the handle keeps the token's sha256, and the Secret
    goes when the attempt's pods have ended or are cancelled."""
    import base64
    import json

    from recforge.platform.model.admission import Admission, ReplicaSlot
    from recforge.platform.model.resources import Resources
    from recforge.platform.store.records import hash_token

    backend = KubernetesBackend(k8s.url, heartbeat_url="https://platform.example:8080/",
                                watch=False)  # fmt: skip
    plain = KubernetesBackend(k8s.url, watch=False)
    core = _client(k8s)
    ns = "recforge-ml"
    spec = parse_job_spec({"name": "t", "cluster_type": "kubernetes", "command": ["true"],
                           "replica_specs": [{"role": "master"}, {"role": "worker"}]})  # fmt: skip
    slots = tuple(ReplicaSlot(r, i, res) for r, i, res in spec.replica_list())
    admission = Admission("5", "k1", "kubernetes", "q", "ml", slots, 2,
                          Resources.total([s.resources for s in slots]), 0.0)  # fmt: skip
    try:
        assert backend.heartbeats and not plain.heartbeats
        handle = backend.launch(5, spec, admission, attempt=1)
        assert handle["secret"] == "rf-5-a1-heartbeat"
        secret = core.read_namespaced_secret("rf-5-a1-heartbeat", ns)
        assert secret.metadata.labels == {"recforge.io/managed": "true", "recforge.io/job": "5",
                                          "recforge.io/attempt": "1"}  # fmt: skip
        data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
        assert data["url"] == "https://platform.example:8080" and len(data["token"]) >= 40
        assert handle["heartbeat_sha256"] == hash_token(data["token"])
        assert data["token"] not in json.dumps(handle)  # the store keeps no usable token
        for i in (0, 1):
            main, sidecar = core.read_namespaced_pod(f"rf-5-a1-{i}", ns).spec.containers
            refs = {e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
                    for e in sidecar.env}  # fmt: skip
            assert refs == {"RECFORGE_HEARTBEAT_URL": ("rf-5-a1-heartbeat", "url"),
                            "RECFORGE_HEARTBEAT_TOKEN": ("rf-5-a1-heartbeat", "token")}
            assert not any(e.name.startswith("RECFORGE_HEARTBEAT") or e.value_from
                           for e in main.env)  # fmt: skip
        _kubelet(k8s, ns, "rf-5-a1-0", "Succeeded", exit_code=0)
        backend.poll(handle)  # one pod still runs: the Secret stays
        assert core.read_namespaced_secret("rf-5-a1-heartbeat", ns).data == secret.data
        _kubelet(k8s, ns, "rf-5-a1-1", "Succeeded", exit_code=0)
        assert backend.poll(handle).all_succeeded
        assert core.list_namespaced_secret(ns, label_selector="recforge.io/job=5").items == []
        # A second attempt gets its own token; cancelling it deletes its Secret with its pods.
        again = backend.launch(5, spec, admission, attempt=2)
        assert again["heartbeat_sha256"] != handle["heartbeat_sha256"]
        assert [s.metadata.name for s in core.list_namespaced_secret(ns).items] == [
            "rf-5-a2-heartbeat"]
        backend.cancel(again)
        assert core.list_namespaced_secret(ns).items == []
        backend.cancel(again)  # idempotent
        # Without heartbeat_url there is nothing to send beats to: no Secret, no env.
        bare = plain.launch(6, spec, admission, attempt=1)
        assert bare["secret"] is None and core.list_namespaced_secret(ns).items == []
        assert core.read_namespaced_pod("rf-6-a1-0", ns).spec.containers[1].env is None
        plain.cancel(bare)
    finally:
        backend.close()
        plain.close()


def test_pod_sidecars_heartbeat_to_the_api_with_their_attempts_token(
    k8s: K8sTestServer, tmp_path: Path
) -> None:
    """End to end: the real `sidecar beat`, given what the Secret holds (as the kubelet injects
    it), refreshes its replica's heartbeat through POST /jobs/{id}/heartbeat; a user's token,
    another attempt's and a finished job's are refused; the Secret goes with the job."""
    import base64
    import os
    import signal
    import subprocess

    import httpx
    from api_support import serving
    from serve_support import free_port

    from recforge.platform.api import create_app
    from recforge.platform.store import User

    port = free_port()
    backend = KubernetesBackend(k8s.url, heartbeat_url=f"http://127.0.0.1:{port}",
                                heartbeat_interval=0.2)  # fmt: skip
    svc = _k8s_service(tmp_path / "k8s.db", backend)
    store = svc.store
    store.add_user("alice", "ml")
    user_token = store.issue_token("alice", label="test")
    stop = threading.Event()
    loop = threading.Thread(target=svc.run_forever, args=(stop,), daemon=True)
    loop.start()
    core = _client(k8s)
    beat: subprocess.Popen[bytes] | None = None
    try:
        with serving(create_app(svc, admin_token="k8s-admin-token-0123456789"), port) as url:
            job = svc.submit(User("alice", "ml", False), {
                "name": "hb", "queue": "q", "cluster_type": "kubernetes", "command": ["true"],
                "replica_specs": [{"role": "master", "resources": {"cpu": 1}},
                                  {"role": "worker", "resources": {"cpu": 1}}]})  # fmt: skip
            secret_name = f"rf-{job}-a1-heartbeat"
            _wait(lambda: len(core.list_namespaced_pod("recforge-ml").items) == 2, 60,
                  "the job's two pods")  # fmt: skip
            for i in (0, 1):
                _kubelet(k8s, "recforge-ml", f"rf-{job}-a1-{i}", "Running")
            _wait(lambda: store.get_job(job).state.value == "RUNNING", 60, "the job to run")
            secret = core.read_namespaced_secret(secret_name, "recforge-ml")
            data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
            assert data["url"] == url
            pod = core.read_namespaced_pod(f"rf-{job}-a1-1", "recforge-ml")
            command = pod.spec.containers[1].command
            assert command[:4] == ["python", "-m", "recforge.platform.backends.sidecar", "beat"]
            beat = subprocess.Popen([sys.executable, *command[1:]], env={
                "PATH": os.environ["PATH"], "RECFORGE_HEARTBEAT_URL": data["url"],
                "RECFORGE_HEARTBEAT_TOKEN": data["token"]})  # fmt: skip

            def last_beat() -> float | None:
                return next(r.last_heartbeat for r in store.replicas(job) if r.index == 1)

            _wait(lambda: last_beat() is not None, 60, "the sidecar's first heartbeat")
            first = last_beat()
            _wait(lambda: (last_beat() or 0) > (first or 0), 60, "a later heartbeat")

            def post(token: str | None, attempt: int = 1) -> int:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return httpx.post(f"{url}/jobs/{job}/heartbeat", headers=headers, timeout=30,
                                  json={"attempt": attempt, "replica": 0}).status_code

            assert post(data["token"]) == 204
            assert post(None) == 401
            assert post(user_token) == 403  # a user's token is not the attempt's
            assert post(data["token"], attempt=2) == 403
            assert httpx.post(f"{url}/jobs/{job + 1}/heartbeat", timeout=30,
                              headers={"Authorization": f"Bearer {data['token']}"},
                              json={"attempt": 1, "replica": 0}).status_code == 403
            for i in (0, 1):
                _kubelet(k8s, "recforge-ml", f"rf-{job}-a1-{i}", "Succeeded", exit_code=0)
            _wait(lambda: store.get_job(job).state.value == "SUCCEEDED", 60, "the job to end")
            _wait(lambda: core.list_namespaced_secret("recforge-ml").items == [], 60,
                  "the Secret to be deleted with the job")  # fmt: skip
            assert post(data["token"]) == 403  # the job has ended
    finally:
        if beat is not None:
            os.kill(beat.pid, signal.SIGTERM)
            assert beat.wait(timeout=60) == 0
        stop.set()
        svc.reconciler.wake.set()
        loop.join(timeout=30)
        backend.close()
        store.close()


def test_a_running_pod_whose_sidecar_never_beats_is_lost(k8s: K8sTestServer,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """With heartbeat_url the service checks the beats: a Running pod without any is lost after
    the heartbeat timeout, the job fails, and its pods and Secret are deleted."""
    from recforge.platform.store import User

    backend = KubernetesBackend(k8s.url, heartbeat_url="http://127.0.0.1:9")
    svc = _k8s_service(tmp_path / "k8s.db", backend, heartbeat_timeout=2.0)
    stop = threading.Event()
    loop = threading.Thread(target=svc.run_forever, args=(stop,), daemon=True)
    loop.start()
    core = _client(k8s)
    try:
        job = svc.submit(User("alice", "ml", False), {
            "name": "mute", "queue": "q", "cluster_type": "kubernetes", "command": ["true"],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1}}]})  # fmt: skip
        _wait(lambda: len(core.list_namespaced_pod("recforge-ml").items) == 1, 60, "the pod")
        assert len(core.list_namespaced_secret("recforge-ml").items) == 1
        _kubelet(k8s, "recforge-ml", f"rf-{job}-a1-0", "Running")
        _wait(lambda: svc.store.get_job(job).state.value == "FAILED", 120,
              "the mute replica to be lost")  # fmt: skip
        assert "replica 0 lost: no heartbeat" in svc.store.get_job(job).reason
        _wait(lambda: core.list_namespaced_pod("recforge-ml").items == [], 60, "pods deleted")
        assert core.list_namespaced_secret("recforge-ml").items == []
    finally:
        stop.set()
        svc.reconciler.wake.set()
        loop.join(timeout=30)
        backend.close()
        svc.store.close()
