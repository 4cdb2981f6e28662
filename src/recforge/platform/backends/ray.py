"""Ray backend: a gang becomes a placement group, the job a Ray job (job submission API).

The service only talks HTTP to the Ray dashboard (``JobSubmissionClient``); it never joins the
cluster. Each launch submits one Ray job whose entrypoint is this module's driver
(``<python> -m recforge.platform.backends.ray driver <plan>``, with the venv's interpreter). The
driver:

1. creates a placement group with one bundle per replica (``CPU``, ``memory`` in bytes, ``GPU``
   and extended resources as Ray custom resources), strategy ``STRICT_PACK`` or ``PACK``;
2. waits for it (an infeasible group stays pending forever in Ray; the platform's pending
   deadline evicts the job, which stops the Ray job);
3. prints ``RECFORGE_GANG_READY``, runs every replica as a Ray task pinned to its bundle (the task
   runs the replica under the sidecar, so heartbeats work as with the local backend), prints
   ``RECFORGE_REPLICA <i> EXIT <code>`` plus the replica's output prefixed ``[replica <i>]`` as
   each one ends, and exits non-zero if any replica failed.

The placement group belongs to the driver's job, so Ray removes it when the job ends or is
stopped. :meth:`RayBackend.poll` maps the Ray job status and those markers to replica phases.
Replica output becomes available through :meth:`RayBackend.logs` when the replica ends.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import time
from typing import Any

from recforge._json import dumps
from recforge.platform.backends.base import (
    Backend,
    BackendError,
    BackendStatus,
    Handle,
    LaunchError,
    ReplicaPhase,
    ReplicaStatus,
    admitted_count,
    replica_plan,
)
from recforge.platform.backends.env import EnvPolicy, identity_env
from recforge.platform.backends.users import RunAs
from recforge.platform.model.specs import JobSpec

__all__ = ["RayBackend", "bundle_for"]

READY_MARK = "RECFORGE_GANG_READY"
_EXIT_RE = re.compile(r"^RECFORGE_REPLICA (\d+) EXIT (-?\d+)\s*$", re.M)
_MIB = 1024 * 1024


def bundle_for(cpu: float, memory_mib: int, gpu: int, extended: dict[str, float]) -> dict:
    """One placement-group bundle in Ray's resource names (zero amounts dropped)."""
    bundle: dict[str, float] = {}
    if cpu > 0:
        bundle["CPU"] = cpu
    if memory_mib > 0:
        bundle["memory"] = float(memory_mib * _MIB)
    if gpu > 0:
        bundle["GPU"] = float(gpu)
    bundle.update({k: float(v) for k, v in extended.items() if v > 0})
    if not bundle:
        bundle["CPU"] = 0.01  # Ray rejects empty bundles; a token amount keeps the gang a gang
    return bundle


class RayBackend(Backend):
    """Submit gangs to a Ray cluster through its dashboard address (``http://host:port``).

    ``strategy`` is ``STRICT_PACK`` (all replicas on one node) or ``PACK`` (best effort).
    Replica health comes from Ray itself (a lost worker fails its task, which the driver
    reports); the sidecars get no store access on Ray. Submission ids are
    deterministic, ``<id_prefix>-<job>-a<attempt>``, so a restarted service can find an attempt
    whose handle it never stored (:meth:`recover_handle`); give each platform store sharing a
    Ray cluster its own ``id_prefix``.
    """

    cluster_type = "ray"
    recovers_launches = True  # a fixed submission id: Ray refuses a second submission

    def __init__(
        self,
        dashboard_address: str,
        *,
        strategy: str = "PACK",
        heartbeat_interval: float = 5.0,
        python: str = sys.executable,
        id_prefix: str = "recforge",
        env: EnvPolicy | None = None,
        work_dir: str = "/tmp/recforge-work",
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", id_prefix):
            raise ValueError(f"id_prefix must be 1-40 of [A-Za-z0-9_-], got {id_prefix!r}")
        self.id_prefix = id_prefix
        self.env_policy = env or EnvPolicy.from_service()
        self.work_dir = work_dir
        if strategy not in ("STRICT_PACK", "PACK"):
            raise ValueError(f"placement strategy must be STRICT_PACK or PACK, got {strategy!r}")
        self.address = dashboard_address
        self.strategy = strategy
        self.heartbeat_interval = heartbeat_interval
        self.python = python
        self._client_obj: Any = None

    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client_obj = JobSubmissionClient(self.address)
            except Exception as exc:
                raise BackendError(f"cannot reach Ray dashboard at {self.address}: {exc}") from exc
        return self._client_obj

    def launch(
        self,
        job_id: int,
        spec: JobSpec,
        admission: Any,
        *,
        attempt: int = 1,
        run_as: RunAs | None = None,
    ) -> Handle:
        plans = replica_plan(spec, admitted_count(admission), self.python)
        submission_id = f"{self.id_prefix}-{job_id}-a{attempt}"
        pg_name = f"{submission_id}-pg"
        replicas = []
        workdir = spec.workdir or f"{self.work_dir}/job-{job_id}/attempt-{attempt}"
        for rp in plans:
            identity = identity_env(
                job_id, attempt, spec.name, rp.index, rp.role, rp.role_index, len(plans)
            )
            env = self.env_policy.build(spec, identity, cpu=rp.cpu, home=workdir,
                                        user=run_as.user if run_as else None)  # fmt: skip
            sidecar = [
                self.python, "-m", "recforge.platform.backends.sidecar", "run",
                "--job", str(job_id), "--replica", str(rp.index), "--attempt", str(attempt),
                "--heartbeat-interval", str(self.heartbeat_interval),
            ]  # fmt: skip
            if rp.memory_mib:
                sidecar += ["--memory-mib", str(rp.memory_mib)]
            if run_as is not None:
                sidecar += ["--user", run_as.user]
            sidecar += ["--cwd", workdir, "--role", rp.role]
            if spec.workdir is None:  # a scratch directory of the replica's user, on its node
                sidecar.append("--workdir-owned")
            replicas.append(
                {
                    "index": rp.index,
                    "role": rp.role,
                    "bundle": bundle_for(rp.cpu, rp.memory_mib, rp.gpu, rp.extended),
                    "argv": [*sidecar, "--", *rp.command],
                    "env": env,
                    "cwd": None,
                }
            )
        plan = {"pg_name": pg_name, "strategy": self.strategy, "replicas": replicas}
        blob = base64.urlsafe_b64encode(dumps(plan, indent=None).encode()).decode()
        entrypoint = f"{self.python} -m recforge.platform.backends.ray driver {blob}"
        handle: Handle = {
            "backend": "ray",
            "address": self.address,
            "job_id": job_id,
            "attempt": attempt,
            "submission_id": submission_id,
            "placement_group": pg_name,
            "strategy": self.strategy,
            "replicas": [{"index": r["index"], "role": r["role"], "bundle": r["bundle"]}
                         for r in replicas],
        }  # fmt: skip
        try:
            # Nothing of the service's environment or store goes to Ray: replicas get exactly
            # the environment built above (inside the plan).
            self._client.submit_job(
                entrypoint=entrypoint,
                submission_id=submission_id,
                metadata={"recforge_handle": dumps(handle, indent=None)},
            )
        except Exception as exc:
            raise LaunchError(f"job {job_id}: Ray job submission failed: {exc}") from exc
        return handle

    def recover_handle(self, job_id: int, attempt: int) -> Handle | None:
        """The handle of an attempt from the Ray job's metadata; None if it was never submitted."""
        try:
            info = self._client.get_job_info(f"{self.id_prefix}-{job_id}-a{attempt}")
        except RuntimeError:
            return None
        raw = (info.metadata or {}).get("recforge_handle")
        if raw is None:
            return None
        handle: Handle = json.loads(raw)
        return handle

    def _status_and_logs(self, handle: Handle) -> tuple[Any, str] | None:
        sid = handle["submission_id"]
        try:
            info = self._client.get_job_info(sid)
        except RuntimeError as exc:  # the SDK raises RuntimeError for unknown jobs (404)
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise BackendError(f"Ray: cannot get job {sid}: {exc}") from exc
        logs = self._client.get_job_logs(sid)
        return info, logs

    def poll(self, handle: Handle) -> BackendStatus:
        indices = [int(r["index"]) for r in handle.get("replicas", [])]
        try:
            got = self._status_and_logs(handle)
        except Exception as exc:
            return BackendStatus(
                [ReplicaStatus(i, ReplicaPhase.UNKNOWN, None, str(exc)) for i in indices],
                detail=f"Ray unreachable: {exc}",
            )
        if got is None:
            return BackendStatus(
                [ReplicaStatus(i, ReplicaPhase.NOT_FOUND, None, "no such Ray job") for i in indices]
            )
        info, logs = got
        status = str(getattr(info.status, "value", info.status))
        exits = {int(i): int(c) for i, c in _EXIT_RE.findall(logs)}
        ready = READY_MARK in logs
        out = []
        for i in indices:
            if i in exits:
                code = exits[i]
                phase = ReplicaPhase.SUCCEEDED if code == 0 else ReplicaPhase.FAILED
                out.append(ReplicaStatus(i, phase, code))
            elif status in ("PENDING",) or (status == "RUNNING" and not ready):
                out.append(ReplicaStatus(i, ReplicaPhase.PENDING, None, "waiting for placement"))
            elif status == "RUNNING":
                out.append(ReplicaStatus(i, ReplicaPhase.RUNNING))
            elif status == "SUCCEEDED":
                out.append(ReplicaStatus(i, ReplicaPhase.SUCCEEDED, 0))
            else:  # FAILED / STOPPED without a replica exit code
                out.append(ReplicaStatus(i, ReplicaPhase.FAILED, None, f"Ray job {status}"))
        return BackendStatus(out, detail=f"Ray job {status}: {info.message or ''}".strip())

    def cancel(self, handle: Handle, *, wait_s: float = 5.0) -> None:
        """Stop the Ray job (Ray removes its placement group) and wait until it has ended."""
        sid = handle["submission_id"]
        try:
            self._client.stop_job(sid)
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if self._client.get_job_status(sid).is_terminal():
                    return
                time.sleep(0.1)
        except RuntimeError as exc:
            if "404" not in str(exc) and "does not exist" not in str(exc):
                raise BackendError(f"Ray: cannot stop {sid}: {exc}") from exc

    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        got = self._status_and_logs(handle)
        if got is None:
            return ""
        prefix = f"[replica {replica}] "
        lines = [ln[len(prefix) :] for ln in got[1].splitlines() if ln.startswith(prefix)]
        return "\n".join(lines[-tail:]) if tail > 0 else ""

    def reattach(self, handle: Handle) -> bool:
        try:
            return self._status_and_logs(handle) is not None
        except BackendError:
            return False


# -- driver (runs inside the Ray job) ---------------------------------------------------------
def _driver(blob: str) -> int:
    import subprocess

    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    plan = json.loads(base64.urlsafe_b64decode(blob.encode()))
    ray.init(log_to_driver=False)
    bundles = [r["bundle"] for r in plan["replicas"]]
    pg = placement_group(bundles, strategy=plan["strategy"], name=plan["pg_name"])
    print(f"RECFORGE_GANG_PENDING {plan['pg_name']} {bundles}", flush=True)
    ray.get(pg.ready())
    print(READY_MARK, flush=True)

    @ray.remote(max_retries=0)
    def run_replica(argv: list[str], env: dict[str, str], cwd: str | None) -> tuple[int, str]:
        # Exactly the environment the platform built for the replica (not the Ray worker's).
        proc = subprocess.run(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        return proc.returncode, proc.stdout.decode(errors="replace")[-65536:]

    pending = {}
    for i, r in enumerate(plan["replicas"]):
        b = r["bundle"]
        opts: dict[str, Any] = {
            "scheduling_strategy": PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=i
            ),
            "num_cpus": b.get("CPU", 0),
            "num_gpus": b.get("GPU", 0),
        }
        if "memory" in b:
            opts["memory"] = b["memory"]
        custom = {k: v for k, v in b.items() if k not in ("CPU", "GPU", "memory")}
        if custom:
            opts["resources"] = custom
        ref = run_replica.options(**opts).remote(r["argv"], r["env"], r["cwd"])
        pending[ref] = r["index"]
    worst = 0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        code, output = ray.get(done[0])
        for line in output.splitlines():
            print(f"[replica {index}] {line}")
        print(f"RECFORGE_REPLICA {index} EXIT {code}", flush=True)
        if code != 0:
            worst = 1
    return worst


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "driver":
        sys.exit(_driver(sys.argv[2]))
    print("usage: python -m recforge.platform.backends.ray driver <plan>", file=sys.stderr)
    sys.exit(2)
