"""The backend interface (one proxy per cluster type), after Dagster's run launcher.

A backend launches a job's replicas, cancels them, polls their health and returns their logs. It
never changes job state: the service reads :class:`BackendStatus` and decides (through
:meth:`recforge.platform.store.Store.transition`). Handles are plain JSON-able dicts so they can be
stored with the job and used again by a restarted service (:meth:`Backend.reattach`).

Adding a backend: a module in this package with a :class:`Backend` subclass (``cluster_type``,
the five abstract methods, optionally :meth:`~Backend.recover_handle`, :meth:`~Backend.
set_notifier` and :meth:`~Backend.close`), its settings in
:class:`recforge.platform.model.deployment.BackendsConfig`, and one factory in
:data:`recforge.platform.runtime.bootstrap.BACKEND_FACTORIES`. Replicas get the environment
:class:`~recforge.platform.backends.env.EnvPolicy` builds (never the service's) and run as the
:class:`~recforge.platform.backends.users.RunAs` user the service passes.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from recforge.platform.backends.users import RunAs
from recforge.platform.model.specs import JobSpec

__all__ = [
    "Backend",
    "BackendError",
    "BackendStatus",
    "Launch",
    "LaunchError",
    "ReplicaPhase",
    "ReplicaPlan",
    "ReplicaStatus",
    "admitted_count",
    "replica_command",
    "replica_plan",
]

Handle = dict[str, Any]


class BackendError(RuntimeError):
    """A backend operation failed (cluster unreachable, bad handle)."""


class LaunchError(BackendError):
    """The backend refused or failed to launch a job; nothing of it is left running."""


class ReplicaPhase(StrEnum):
    """Health of one replica as a backend sees it."""

    PENDING = "pending"  # accepted by the backend, not started (e.g. waiting for placement)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_FOUND = "not_found"  # the backend has no trace of it (process gone, no exit code)
    UNKNOWN = "unknown"  # the backend could not tell (cluster unreachable)


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica's phase plus its exit code when known."""

    index: int
    phase: ReplicaPhase
    exit_code: int | None = None
    detail: str = ""
    heartbeat_at: float | None = None  # the sidecar's last heartbeat, where the backend sees it


@dataclass(frozen=True)
class BackendStatus:
    """Per-replica view of a launched job."""

    replicas: list[ReplicaStatus]
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def phases(self) -> set[ReplicaPhase]:
        return {r.phase for r in self.replicas}

    @property
    def all_running(self) -> bool:
        """Every replica has started (running, or already finished successfully)."""
        return bool(self.replicas) and self.phases() <= {
            ReplicaPhase.RUNNING,
            ReplicaPhase.SUCCEEDED,
        }

    @property
    def all_succeeded(self) -> bool:
        return bool(self.replicas) and self.phases() == {ReplicaPhase.SUCCEEDED}

    @property
    def failed(self) -> list[ReplicaStatus]:
        """Replicas that failed or vanished."""
        bad = {ReplicaPhase.FAILED, ReplicaPhase.NOT_FOUND}
        return [r for r in self.replicas if r.phase in bad]


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica to launch: global index (master first), role and its resources/command."""

    index: int
    role: str
    role_index: int
    cpu: float
    memory_mib: int
    gpu: int
    extended: dict[str, float]
    command: list[str]


def admitted_count(admission: Any) -> int | None:
    """How many replicas an admission covers (its ``replicas`` sequence); None: the gang."""
    replicas = getattr(admission, "replicas", None)
    return None if replicas is None else len(replicas)


def replica_command(spec: JobSpec, override: list[str] | None, python: str) -> list[str]:
    """The argv one replica runs: its override, the job's command, or the python entrypoint.

    For ``kind: spark`` it is ``spark-submit``'s arguments after the cluster's own
    (:meth:`~recforge.platform.model.spark.SparkApp.submit_args`), which the Spark backend
    completes for the driver; executors run no command of ours (the cluster manager starts them).
    For ``kind: service`` it is the supervisor (:mod:`recforge.platform.backends.supervisor`).
    """
    if spec.kind == "spark":
        assert spec.spark is not None  # validated by JobSpec
        return spec.spark.submit_args()
    if spec.kind == "service":  # the supervisor, which runs the server's replicas
        from recforge.platform.backends import supervisor

        assert spec.service is not None and spec.command  # validated by JobSpec
        plan = {"command": list(spec.command), **spec.service.model_dump(mode="json",
                exclude={"resources"}), "max_replicas": spec.service.limit,
                "restart_delays": supervisor.restart_delays(spec.service.restart)}  # fmt: skip
        # Run as a file: the job's interpreter need not be able to import recforge.
        return [python, str(Path(supervisor.__file__)), supervisor.encode_plan(plan)]
    if override:
        return list(override)
    if spec.kind == "python":
        assert spec.entrypoint is not None  # validated by JobSpec
        module, func = spec.entrypoint.split(":")
        code = f"import importlib; importlib.import_module({module!r}).{func}()"
        return [python, "-c", code]
    assert spec.command  # validated by JobSpec
    return list(spec.command)


def replica_plan(
    spec: JobSpec, count: int | None = None, python: str = sys.executable
) -> list[ReplicaPlan]:
    """The first ``count`` replicas of the job (default: the gang), master first."""
    n = spec.gang_size if count is None else count
    # Same order as JobSpec.replica_list (master first, then groups as listed), kept per group
    # so each group's command override applies to its own replicas.
    groups = sorted(spec.replica_specs, key=lambda rs: rs.role != "master")
    out: list[ReplicaPlan] = []
    per_role: dict[str, int] = {}
    for rs in groups:
        for _ in range(rs.replicas):
            if len(out) == n:
                return out
            role_index = per_role.get(rs.role, 0)
            per_role[rs.role] = role_index + 1
            res = rs.resources
            out.append(
                ReplicaPlan(
                    index=len(out),
                    role=rs.role,
                    role_index=role_index,
                    cpu=res.cpu,
                    memory_mib=res.memory,
                    gpu=res.gpu,
                    extended=dict(res.extended),
                    command=replica_command(spec, rs.command, python),
                )
            )
    return out


@dataclass(frozen=True)
class Launch:
    """One job to launch: what :meth:`Backend.launch` takes."""

    job_id: int
    spec: JobSpec
    admission: Any
    attempt: int = 1
    run_as: RunAs | None = None


class Backend(ABC):
    """Launch/cancel/poll/logs/reattach for one cluster type; never touches job state."""

    #: cluster type this backend serves ("local", "ray", ...).
    cluster_type: str = ""
    #: whether replicas' sidecars send heartbeats the service can check (the heartbeat timeout
    #: applies only then; otherwise the backend's own health checks speak for the replicas).
    heartbeats: bool = False
    #: whether :meth:`recover_handle`'s None is certain (nothing of the attempt started, nor
    #: will): recovery then launches that attempt again instead of counting it as lost.
    recovers_launches: bool = False

    @abstractmethod
    def launch(
        self,
        job_id: int,
        spec: JobSpec,
        admission: Any,
        *,
        attempt: int = 1,
        run_as: RunAs | None = None,
    ) -> Handle:
        """Start the job's gang (as ``run_as``, None: as the service's own user); return a
        JSON-able handle. Raise :class:`LaunchError`."""

    def launch_many(self, launches: list[Launch]) -> list[Handle | Exception]:
        """Launch several jobs (one tick's admissions); per job its handle or the error. The
        default launches one after the other; a backend may overlap the work."""
        out: list[Handle | Exception] = []
        for la in launches:
            try:
                out.append(self.launch(la.job_id, la.spec, la.admission, attempt=la.attempt,
                                       run_as=la.run_as))  # fmt: skip
            except Exception as exc:  # reported per job; the others still launch
                out.append(exc)
        return out

    @abstractmethod
    def cancel(self, handle: Handle) -> None:
        """Stop every replica of the handle (idempotent; finished replicas are left alone)."""

    @abstractmethod
    def poll(self, handle: Handle) -> BackendStatus:
        """Current per-replica status."""

    @abstractmethod
    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        """The last ``tail`` lines of one replica's output."""

    @abstractmethod
    def reattach(self, handle: Handle) -> bool:
        """After a service restart: True if the handle's replicas can still be tracked."""

    def samples(self, handle: Handle, replica: int, since: float | None = None
                ) -> list[dict[str, Any]]:  # fmt: skip
        """One replica's resource samples from its sidecar, oldest first (those after
        ``since``; format: :mod:`recforge.platform.backends.sampling`); [] where the backend
        keeps none (Ray)."""
        return []

    def recover_handle(self, job_id: int, attempt: int) -> Handle | None:
        """The handle of an attempt whose launch a crash interrupted, or None if nothing of it
        was started (the default: the backend cannot tell, so the attempt counts as lost; see
        :attr:`recovers_launches`). May raise :class:`BackendError` when it cannot tell."""
        return None

    def set_notifier(self, notify: Callable[[int], None]) -> None:  # noqa: B027 - optional hook
        """Call ``notify(job_id)`` when something about a job changes (a replica exited), so the
        service polls it at once; backends without notifications are polled every tick."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release helpers (connections, helper processes); replicas keep running."""
