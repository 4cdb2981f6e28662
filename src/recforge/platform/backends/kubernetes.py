"""Kubernetes backend (official ``kubernetes`` client): an admitted gang becomes its pods.

The platform admits the gang first (quotas, capacity); then :meth:`KubernetesBackend.launch`
creates, in the group's namespace (``<namespace_prefix><group>``, created when missing), one pod
per admitted replica, ``rf-<job>-a<attempt>-<index>``, with

* container ``main``: the replica's command, environment (the platform's allow-listed one),
  ``resources.requests`` = ``limits`` = its cpu/memory/gpu (``nvidia.com/gpu``) and extended
  resources, in the job's ``image`` (else the deployment's);
* container ``recforge-sidecar`` (``sidecar_image``): ``python -m recforge.platform.backends.
  sidecar beat``, which heartbeats for the replica until the pod stops. With ``heartbeat_url``
  (the platform's API as the pods reach it) each attempt gets a Secret
  ``rf-<job>-a<attempt>-heartbeat`` holding that URL and a random token of this attempt only;
  the sidecar container (not ``main``) reads both from it (``secretKeyRef``) and beats to
  ``POST /jobs/{id}/heartbeat``. The handle keeps the token's sha256, which the API checks; the
  platform's own credentials and store never reach a pod. The Secret is deleted with the
  attempt's pods (cancel, failure) or when every pod has ended;
* labels ``recforge.io/job``, ``recforge.io/attempt``, ``recforge.io/replica``,
  ``recforge.io/role``, ``recforge.io/managed=true``: how the backend finds them (label
  selectors) and what ties a pod to its job;
* ``restartPolicy: Never`` (the platform retries attempts, not Kubernetes).

With ``volcano: true`` a Volcano ``PodGroup`` (``minMember`` = the gang size) is created first
and the pods name it (``scheduling.k8s.io/group-name``) and use ``schedulerName: volcano``, so
the cluster also places the gang all-or-nothing. A watch on the managed pods notifies the service
of every change, which then polls: pod phases map to replica phases (Pending -> pending, Running
-> running, Succeeded -> succeeded, Failed -> failed with ``main``'s exit code, gone ->
not found). Cancel deletes the pods (and the PodGroup).

Run here only against the API-compatible test server of the test suite
(tests/platform/k8s_api_server.py): create/get/list/watch/delete/status, through this client
unchanged. Never run against a real cluster: RBAC, admission webhooks, real scheduling, image
pulls, graceful deletion and Volcano's controller were not exercised.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from recforge.platform.backends.base import (
    Backend,
    BackendStatus,
    Handle,
    LaunchError,
    ReplicaPhase,
    ReplicaStatus,
    admitted_count,
    replica_plan,
)
from recforge.platform.backends.env import EnvPolicy, identity_env
from recforge.platform.backends.sidecar import HEARTBEAT_TOKEN_ENV, HEARTBEAT_URL_ENV
from recforge.platform.backends.users import RunAs
from recforge.platform.model.specs import JobSpec
from recforge.platform.store.records import hash_token

__all__ = ["KubernetesBackend", "namespace_for"]

LABEL = "recforge.io"
_PHASES = {"Pending": ReplicaPhase.PENDING, "Running": ReplicaPhase.RUNNING,
           "Succeeded": ReplicaPhase.SUCCEEDED, "Failed": ReplicaPhase.FAILED}  # fmt: skip
_VOLCANO = ("scheduling.volcano.sh", "v1beta1", "podgroups")
_ENDED = (ReplicaPhase.SUCCEEDED, ReplicaPhase.FAILED, ReplicaPhase.NOT_FOUND)


def namespace_for(prefix: str, group: str) -> str:
    """The group's namespace: a DNS-1123 label (lowercase; ``_``/``.`` become ``-``)."""
    name = re.sub(r"[^a-z0-9-]", "-", f"{prefix}{group}".lower()).strip("-")
    return name[:63].rstrip("-")


def _quantity(memory_mib: int) -> str:
    return f"{memory_mib}Mi"


class KubernetesBackend(Backend):
    """Pods on one Kubernetes cluster through its API server (see the module docstring)."""

    cluster_type = "kubernetes"

    def __init__(
        self,
        host: str,
        *,
        token: str | None = None,
        verify_ssl: bool = True,
        image: str = "python:3.11-slim",
        sidecar_image: str = "recforge:latest",
        namespace_prefix: str = "recforge-",
        volcano: bool = False,
        heartbeat_interval: float = 5.0,
        env: EnvPolicy | None = None,
        watch: bool = True,
        heartbeat_url: str | None = None,
    ) -> None:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = host
        cfg.verify_ssl = verify_ssl
        if token:
            cfg.api_key = {"authorization": token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        self.api_client = client.ApiClient(cfg)
        # Typed Any: the client takes plain dicts (JSON bodies) as well as its models.
        self.core: Any = client.CoreV1Api(self.api_client)
        self.custom: Any = client.CustomObjectsApi(self.api_client)
        self.image = image
        self.sidecar_image = sidecar_image
        self.prefix = namespace_prefix
        self.volcano = volcano
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_url = heartbeat_url.rstrip("/") if heartbeat_url else None
        #: the service checks the sidecars' heartbeats only when they have somewhere to go
        self.heartbeats = self.heartbeat_url is not None
        self.env_policy = env or EnvPolicy.from_service()
        self._watching = watch
        self._notify: Callable[[int], None] | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- watch ----------------------------------------------------------------------------------
    def set_notifier(self, notify: Callable[[int], None]) -> None:
        self._notify = notify
        if self._watching and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="k8s-watch", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        from kubernetes import watch

        version: str | None = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                kwargs: dict[str, Any] = {"label_selector": f"{LABEL}/managed=true",
                                          "timeout_seconds": 5}  # fmt: skip
                if version:
                    kwargs["resource_version"] = version
                for event in w.stream(self.core.list_pod_for_all_namespaces, **kwargs):
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    job = (pod.metadata.labels or {}).get(f"{LABEL}/job")
                    if job is not None and self._notify is not None:
                        self._notify(int(job))
                    if self._stop.is_set():
                        break
            except Exception:  # the server went away or the watch expired: start over
                version = None
                self._stop.wait(1.0)
            finally:
                w.stop()

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        self.api_client.close()

    # -- launch ---------------------------------------------------------------------------------
    def _pod(self, name: str, labels: dict[str, str], rp: Any, env: dict[str, str], job_id: int,
             attempt: int, podgroup: str | None, image: str,
             secret: str | None = None) -> dict[str, Any]:  # fmt: skip
        amounts: dict[str, str] = {}
        if rp.cpu > 0:
            amounts["cpu"] = f"{round(rp.cpu * 1000)}m"
        if rp.memory_mib > 0:
            amounts["memory"] = _quantity(rp.memory_mib)
        if rp.gpu > 0:
            amounts["nvidia.com/gpu"] = str(rp.gpu)
        amounts.update({k: f"{v:g}" for k, v in rp.extended.items() if v > 0})
        sidecar = ["python", "-m", "recforge.platform.backends.sidecar", "beat",
                   "--job", str(job_id), "--replica", str(rp.index), "--attempt", str(attempt),
                   "--heartbeat-interval", str(self.heartbeat_interval)]  # fmt: skip
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": image, "command": rp.command,
                 "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
                 "resources": {"requests": amounts, "limits": amounts}},
                {"name": "recforge-sidecar", "image": self.sidecar_image, "command": sidecar,
                 "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                               "limits": {"cpu": "100m", "memory": "64Mi"}}},
            ],
        }  # fmt: skip
        if secret is not None:
            spec["containers"][1]["env"] = [
                {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
                for var, key in ((HEARTBEAT_URL_ENV, "url"), (HEARTBEAT_TOKEN_ENV, "token"))]
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if podgroup is not None:
            spec["schedulerName"] = "volcano"
            meta["annotations"] = {"scheduling.k8s.io/group-name": podgroup}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}

    def _ensure_namespace(self, namespace: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": namespace,
                                                     "labels": {f"{LABEL}/managed": "true"}}})
        except ApiException as exc:
            if exc.status != 409:  # already there
                raise

    def launch(
        self,
        job_id: int,
        spec: JobSpec,
        admission: Any,
        *,
        attempt: int = 1,
        run_as: RunAs | None = None,
    ) -> Handle:
        from kubernetes.client.exceptions import ApiException

        group = getattr(admission, "group", None) or spec.queue
        namespace = namespace_for(self.prefix, group)
        plans = replica_plan(spec, admitted_count(admission), "python")
        base = f"rf-{job_id}-a{attempt}"
        handle: Handle = {"backend": "kubernetes", "job_id": job_id, "attempt": attempt,
                          "namespace": namespace, "podgroup": None, "secret": None,
                          "replicas": []}  # fmt: skip
        try:
            self._ensure_namespace(namespace)
            if self.heartbeat_url is not None:
                token = secrets.token_urlsafe(32)
                handle["secret"] = f"{base}-heartbeat"
                handle["heartbeat_sha256"] = hash_token(token)
                self.core.create_namespaced_secret(namespace, {
                    "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": handle["secret"], "labels": {
                        f"{LABEL}/managed": "true", f"{LABEL}/job": str(job_id),
                        f"{LABEL}/attempt": str(attempt)}},
                    "stringData": {"url": self.heartbeat_url, "token": token},
                })  # fmt: skip
            if self.volcano:
                handle["podgroup"] = base
                self.custom.create_namespaced_custom_object(*_VOLCANO[:2], namespace,
                                                            _VOLCANO[2], {
                    "apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "PodGroup",
                    "metadata": {"name": base, "labels": {f"{LABEL}/job": str(job_id),
                                                          f"{LABEL}/attempt": str(attempt)}},
                    "spec": {"minMember": spec.gang_size},
                })  # fmt: skip
            for rp in plans:
                labels = {f"{LABEL}/managed": "true", f"{LABEL}/job": str(job_id),
                          f"{LABEL}/attempt": str(attempt), f"{LABEL}/replica": str(rp.index),
                          f"{LABEL}/role": rp.role}  # fmt: skip
                identity = identity_env(job_id, attempt, spec.name, rp.index, rp.role,
                                        rp.role_index, len(plans))  # fmt: skip
                env = self.env_policy.build(spec, identity, cpu=rp.cpu, home=None,
                                            user=run_as.user if run_as else None)  # fmt: skip
                name = f"{base}-{rp.index}"
                self.core.create_namespaced_pod(namespace, self._pod(
                    name, labels, rp, env, job_id, attempt, handle["podgroup"],
                    spec.image or self.image, handle["secret"]))  # fmt: skip
                handle["replicas"].append({"index": rp.index, "role": rp.role, "pod": name})
        except (ApiException, OSError, ValueError) as exc:
            self.cancel(handle)
            raise LaunchError(f"job {job_id}: creating its pods in namespace {namespace!r} "
                              f"failed: {exc}") from exc  # fmt: skip
        return handle

    # -- status ---------------------------------------------------------------------------------
    def _pods(self, handle: Handle) -> dict[str, Any]:
        selector = f"{LABEL}/job={handle['job_id']},{LABEL}/attempt={handle['attempt']}"
        pods = self.core.list_namespaced_pod(handle["namespace"], label_selector=selector)
        return {p.metadata.name: p for p in pods.items}

    @staticmethod
    def _status(index: int, pod: Any) -> ReplicaStatus:
        if pod is None:
            return ReplicaStatus(index, ReplicaPhase.NOT_FOUND, None, "pod not found")
        phase = _PHASES.get((pod.status.phase if pod.status else None) or "",
                            ReplicaPhase.UNKNOWN)  # fmt: skip
        code = None
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            term = cs.state.terminated if cs.state else None
            if cs.name == "main" and term is not None:
                code = int(term.exit_code)
        if phase is ReplicaPhase.SUCCEEDED:
            code = 0 if code is None else code
        detail = (pod.status.reason or pod.status.message or "") if pod.status else ""
        return ReplicaStatus(index, phase, code, detail or "")

    def poll(self, handle: Handle) -> BackendStatus:
        indices = [(int(r["index"]), r["pod"]) for r in handle.get("replicas", [])]
        try:
            pods = self._pods(handle)
        except Exception as exc:
            return BackendStatus([ReplicaStatus(i, ReplicaPhase.UNKNOWN, None, str(exc))
                                  for i, _ in indices],
                                 detail=f"Kubernetes API unreachable: {exc}")  # fmt: skip
        status = BackendStatus([self._status(i, pods.get(name)) for i, name in indices],
                               detail=f"pods in namespace {handle['namespace']}")  # fmt: skip
        if handle.get("secret") and all(r.phase in _ENDED for r in status.replicas):
            with contextlib.suppress(Exception):  # the next poll (or cancel) tries again
                self._delete_secret(handle)
        return status

    def _delete_secret(self, handle: Handle) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespaced_secret(handle["secret"], handle["namespace"])
        except ApiException as exc:
            if exc.status != 404:  # already gone
                raise

    def reattach(self, handle: Handle) -> bool:
        try:
            pods = self._pods(handle)
        except Exception:
            return False
        return all(r["pod"] in pods for r in handle.get("replicas", []))

    def cancel(self, handle: Handle) -> None:
        """Delete the attempt's pods and PodGroup (idempotent)."""
        from kubernetes.client.exceptions import ApiException

        for r in handle.get("replicas", []):
            try:
                self.core.delete_namespaced_pod(r["pod"], handle["namespace"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
        if handle.get("secret"):
            self._delete_secret(handle)
        if handle.get("podgroup"):
            with contextlib.suppress(ApiException):
                self.custom.delete_namespaced_custom_object(
                    *_VOLCANO[:2], handle["namespace"], _VOLCANO[2], handle["podgroup"])

    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        from kubernetes.client.exceptions import ApiException

        for r in handle.get("replicas", []):
            if int(r["index"]) == replica:
                if tail <= 0:
                    return ""
                try:
                    text = self.core.read_namespaced_pod_log(
                        r["pod"], handle["namespace"], container="main", tail_lines=tail)
                except ApiException as exc:
                    if exc.status == 404:
                        return ""
                    raise
                return str(text).rstrip("\n")
        raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")
