"""The composition root: one place wires store, scheduler, backends, service, loop and API.

:func:`build` turns a :class:`~recforge.platform.model.deployment.DeploymentConfig` into a
running :class:`Deployment`; ``recforge platform serve --config FILE`` is a thin shell around
it. It refuses to start (``ValueError`` naming what) when a cluster type has no backend, when a
group's ``run_as`` user cannot be used, or when the stored configuration is inconsistent.

Extension points:

* a backend: its settings in :class:`~recforge.platform.model.deployment.BackendsConfig` and a
  factory in :data:`BACKEND_FACTORIES` (see :mod:`recforge.platform.backends.base`);
* a router: :data:`recforge.platform.api.ROUTERS`;
* a job kind: :data:`recforge.platform.model.specs.SUPPORTED_KINDS` plus what its backend
  launches (:func:`recforge.platform.backends.base.replica_command`).

The state directory holds the SQLite store, replicas' logs and exit files (``runtime/``, 0700)
and per-attempt scratch directories (``work/``), and DAG runs' directories with their artefacts
(``runs/``, see :mod:`.artifacts`): the directory itself is not listable by others
(0711) and everything secret in it is private to the service.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recforge.platform.backends.base import Backend
from recforge.platform.backends.env import EnvPolicy
from recforge.platform.backends.users import UserPolicy, check_users
from recforge.platform.model.config import PlatformConfig
from recforge.platform.model.deployment import DeploymentConfig
from recforge.platform.runtime.reconciler import LoopSettings
from recforge.platform.runtime.service import PlatformService, load_config, save_config
from recforge.platform.scheduling import AgingPolicy, Scheduler
from recforge.platform.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["BACKEND_FACTORIES", "BackendContext", "Deployment", "build", "prepare_state_dir"]

log = logging.getLogger("recforge.platform.service")


@dataclass(frozen=True)
class BackendContext:
    """What every backend factory gets besides the deployment config."""

    runtime_dir: Path
    work_dir: Path
    env: EnvPolicy


def _local(config: DeploymentConfig, ctx: BackendContext) -> Backend:
    from recforge.platform.backends.local import LocalBackend

    local = config.backends.local
    assert local is not None
    return LocalBackend(
        ctx.runtime_dir,
        work_dir=ctx.work_dir,
        heartbeat_interval=local.heartbeat_interval,
        term_grace=local.term_grace,
        env=ctx.env,
        job_python=local.job_python,
    )


def _ray(config: DeploymentConfig, ctx: BackendContext) -> Backend:
    from recforge.platform.backends.ray import RayBackend

    ray = config.backends.ray
    assert ray is not None
    return RayBackend(ray.address, strategy=ray.strategy, id_prefix=ray.id_prefix, env=ctx.env,
                      work_dir=ray.work_dir)


def _spark(config: DeploymentConfig, ctx: BackendContext) -> Backend:
    from recforge.platform.backends.spark import SparkBackend

    spark = config.backends.spark
    assert spark is not None
    return SparkBackend(
        ctx.runtime_dir, master=spark.master, spark_submit=spark.spark_submit,
        driver_host=spark.driver_host, conf=spark.conf, env=spark.env,
        heartbeat_interval=spark.heartbeat_interval, term_grace=spark.term_grace,
        env_policy=ctx.env, work_dir=ctx.work_dir, python=spark.python or sys.executable,
    )  # fmt: skip


def _kubernetes(config: DeploymentConfig, ctx: BackendContext) -> Backend:
    from recforge.platform.backends.kubernetes import KubernetesBackend

    k8s = config.backends.kubernetes
    assert k8s is not None
    token = os.environ.get(k8s.token_env) if k8s.token_env else None
    return KubernetesBackend(
        k8s.host, token=token, verify_ssl=k8s.verify_ssl, image=k8s.image,
        sidecar_image=k8s.sidecar_image, namespace_prefix=k8s.namespace_prefix,
        volcano=k8s.volcano, heartbeat_interval=k8s.heartbeat_interval, env=ctx.env,
        heartbeat_url=k8s.heartbeat_url,
    )  # fmt: skip


#: cluster type -> how to build its backend from the deployment.
BACKEND_FACTORIES: dict[str, Callable[[DeploymentConfig, BackendContext], Backend]] = {
    "local": _local,
    "ray": _ray,
    "spark": _spark,
    "kubernetes": _kubernetes,
}


def prepare_state_dir(path: Path) -> tuple[Path, Path]:
    """Create the state directory (0711) with ``runtime/`` (0700) and ``work/`` (0711) and
    tighten them if they exist; returns ``(runtime_dir, work_dir)``."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o711)
    runtime, work = path / "runtime", path / "work"
    runtime.mkdir(exist_ok=True)
    os.chmod(runtime, 0o700)
    work.mkdir(exist_ok=True)
    os.chmod(work, 0o711)
    return runtime, work


@dataclass
class Deployment:
    """A wired platform: the service (with its loop) and what it was built from."""

    config: DeploymentConfig
    store: Store
    service: PlatformService
    state_dir: Path
    backends: Mapping[str, Backend]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def app(self, admin_token: str | None = None) -> FastAPI:
        from recforge.platform.api import create_app

        return create_app(self.service, admin_token=admin_token,
                          max_body_bytes=self.config.api.max_body_bytes)  # fmt: skip

    def start(self) -> None:
        """Recover from the store, then run the loop in a background thread."""
        self.service.recover()
        self._thread = threading.Thread(
            target=self.service.run_forever, args=(self._stop,), name="platform-loop",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop between ticks, close backends' helpers and the store (replicas keep
        running; a restart re-attaches them)."""
        self._stop.set()
        self.service.reconciler.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        for backend in self.backends.values():
            backend.close()
        self.store.close()


def _scheduler_factory(config: DeploymentConfig) -> Callable[[PlatformConfig], Scheduler]:
    s = config.scheduler
    aging = AgingPolicy(aging_seconds=s.aging_seconds, max_wait_seconds=s.max_wait_seconds)

    def make(platform: PlatformConfig) -> Scheduler:
        return Scheduler(platform, aging=aging, backfill_lookahead=s.backfill_lookahead,
                         max_reservations=s.max_reservations,
                         preemption=s.preemption)  # fmt: skip

    return make


def build(
    config: DeploymentConfig,
    *,
    state_dir: Path,
    store_url: str | None = None,
    users: UserPolicy | None = None,
    clock: Callable[[], float] = time.time,
) -> Deployment:
    """Wire the deployment (see the module docstring); nothing runs until :meth:`Deployment.
    start`. ``store_url`` overrides the file's ``store``; ``users`` the replica-user policy
    (default: switch users when running as root)."""
    runtime_dir, work_dir = prepare_state_dir(state_dir)
    if config.jobs.work_dir:
        work_dir = Path(config.jobs.work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
    url = store_url or config.store or f"sqlite:///{state_dir / 'platform.db'}"
    if url.startswith("sqlite:///"):
        db = Path(url.removeprefix("sqlite:///")).expanduser().resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{db}"
    store = Store(url, clock=clock)
    try:
        if url.startswith("sqlite:///"):
            os.chmod(url.removeprefix("sqlite:///"), 0o600)
        save_config(store, config.platform())
        stored = load_config(store)  # the file's items plus what the API added earlier
        have = set(config.backends.types())
        missing = sorted({c.type for c in stored.clusters} - have)
        if missing:
            raise ValueError(
                f"no backend for cluster type(s) {missing} (stored clusters "
                f"{[c.name for c in stored.clusters if c.type in missing]}); configured "
                f"backends: {sorted(have)}"
            )
        policy = users or UserPolicy(default_user=config.jobs.default_user)
        check_users(policy, [g.run_as for g in stored.groups])
        ctx = BackendContext(runtime_dir, work_dir, EnvPolicy.from_service(config.jobs.pass_env))
        backends = {t: BACKEND_FACTORIES[t](config, ctx) for t in config.backends.types()}
        settings = LoopSettings(
            tick_interval=config.jobs.tick_interval,
            heartbeat_timeout=config.jobs.heartbeat_timeout,
            default_pending_deadline=config.jobs.pending_deadline,
        )
        service = PlatformService(store, backends, config=stored,
                                  scheduler_factory=_scheduler_factory(config),
                                  settings=settings, users=policy, clock=clock,
                                  runs_dir=state_dir / "runs",
                                  monitoring=config.monitoring)  # fmt: skip
    except Exception:
        store.close()
        raise
    return Deployment(config, store, service, state_dir, backends)
