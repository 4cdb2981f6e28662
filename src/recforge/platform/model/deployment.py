"""The deployment: what ``recforge platform serve --config FILE`` runs (pure, validated data).

One YAML file holds the platform configuration (``clusters``, ``groups``, ``queues``: stored and
then changeable through the API) and how this deployment runs (``store``, ``backends``,
``scheduler``, ``jobs``, ``api``; read at start). Every cluster type named by a cluster must have
a backend configured here, otherwise the file is refused before anything starts::

    store: sqlite:////var/lib/recforge/platform.db   # default: STATE_DIR/platform.db
    backends:
      local: {heartbeat_interval: 5}
      ray: {address: http://127.0.0.1:8265}
      spark: {master: "local[2]"}   # or yarn, spark://host:7077, k8s://https://host:6443
    scheduler: {max_wait_seconds: 3600, aging_seconds: 600, preemption: true}
    jobs: {default_user: nobody, pass_env: [RECFORGE_DATA_MIRROR], heartbeat_timeout: 30}
    monitoring: {interval: 5, memory_fraction: 0.9, jitter_factor: 3}
    clusters: [...]
    groups: [...]
    queues: [...]

The store URL may carry a password: prefer the file (private to the service) or the
``RECFORGE_STORE_URL`` environment variable to ``--store`` (command lines are world-readable).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recforge.platform.model.config import (
    OS_USER_PATTERN,
    Cluster,
    Group,
    PlatformConfig,
    Queue,
)
from recforge.platform.model.specs import SpecError, format_validation_error, load_mapping

__all__ = [
    "PROTECTED_ENV",
    "ApiSettings",
    "BackendsConfig",
    "DeploymentConfig",
    "JobsSettings",
    "KubernetesBackendConfig",
    "LocalBackendConfig",
    "MonitoringSettings",
    "RayBackendConfig",
    "SchedulerSettings",
    "SparkBackendConfig",
    "parse_deployment",
]

#: variables of the service's environment that never reach a job, whatever ``pass_env`` says.
PROTECTED_ENV = frozenset(
    {"RECFORGE_ADMIN_TOKEN", "RECFORGE_TOKEN", "RECFORGE_STORE_URL", "RECFORGE_STATE_DIR"}
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalBackendConfig(_Strict):
    """Replicas as processes on this machine, each under a sidecar."""

    heartbeat_interval: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    term_grace: float = Field(default=3.0, ge=0, allow_inf_nan=False,
                              description="seconds between SIGTERM and SIGKILL on cancel")
    job_python: str | None = Field(
        default=None, pattern=r"^/\S+$",
        description="interpreter (absolute path) of kind python jobs and of a service's "
        "supervisor, run as the job's user; default: the service's (which a run_as user may "
        "not be able to execute, e.g. one under /root)",
    )


class RayBackendConfig(_Strict):
    """A Ray cluster reached through its dashboard (job submission API)."""

    address: str = Field(pattern=r"^https?://[^\s/]+(:\d+)?/?$",
                         description="the dashboard URL, e.g. http://127.0.0.1:8265")
    strategy: Literal["PACK", "STRICT_PACK"] = "PACK"
    id_prefix: str = Field(default="recforge", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    work_dir: str = Field(default="/tmp/recforge-work",
                          description="where replicas get scratch directories, on each node")


class SparkBackendConfig(_Strict):
    """Spark applications through ``spark-submit`` in client mode (the driver runs here).

    ``master``: ``local``/``local[N]`` (executors inside the driver JVM), ``yarn`` (set
    ``HADOOP_CONF_DIR`` in ``env``), ``spark://host:port`` (standalone) or
    ``k8s://https://host:port`` (image, namespace etc. in ``conf``); see
    :mod:`recforge.platform.backends.spark`.
    """

    master: str = Field(
        default="local",
        pattern=r"^(local(\[(\d+|\*)(,\d+)?\])?|yarn|spark://[^\s/]+:\d+(,[^\s/]+:\d+)*"
                r"|k8s://https?://[^\s/]+(:\d+)?)$",
    )  # fmt: skip
    spark_submit: str | None = Field(
        default=None, description="spark-submit to run (default: pyspark's, next to python)"
    )
    driver_host: str = Field(default="127.0.0.1",
                             description="the driver's address (spark.driver.host/bindAddress)")
    conf: dict[str, str] = Field(
        default_factory=lambda: {"spark.ui.enabled": "false"},
        description="the cluster's Spark defaults; a job's spark.conf overrides them",
    )
    env: dict[str, str] = Field(default_factory=dict,
                                description="extra variables of the driver (HADOOP_CONF_DIR)")
    heartbeat_interval: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    term_grace: float = Field(default=10.0, ge=0, allow_inf_nan=False,
                              description="seconds the driver gets to stop the application")
    python: str | None = Field(
        default=None, pattern=r"^/\S+$",
        description="PYSPARK_PYTHON of the driver and workers (absolute path), run as the job's "
        "user; default: the service's interpreter",
    )

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [n for n in v if not _ENV_NAME.match(n)]
        if bad:
            raise ValueError(f"invalid environment variable name(s) {bad}")
        return v


class KubernetesBackendConfig(_Strict):
    """A Kubernetes cluster through its API server (:mod:`recforge.platform.backends.kubernetes`;
    run here only against the test suite's API-compatible server)."""

    host: str = Field(pattern=r"^https?://[^\s/]+(:\d+)?/?$",
                      description="the API server, e.g. https://10.0.0.1:6443")
    token_env: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="name of the service's environment variable holding the bearer token",
    )
    verify_ssl: bool = True
    image: str = Field(default="python:3.11-slim", min_length=1,
                       description="image of jobs that name none")
    sidecar_image: str = Field(default="recforge:latest", min_length=1)
    namespace_prefix: str = Field(default="recforge-", pattern=r"^[a-z0-9-]{0,40}$")
    volcano: bool = Field(default=False, description="gangs as Volcano PodGroups too")
    heartbeat_interval: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    heartbeat_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$",
        description="this platform's API as the pods reach it; given, each attempt's sidecars "
        "heartbeat to POST /jobs/{id}/heartbeat with a token of that attempt (a Secret)",
    )


class BackendsConfig(_Strict):
    """One entry per cluster type this deployment can run (``local`` is on by default)."""

    local: LocalBackendConfig | None = Field(default_factory=LocalBackendConfig)
    ray: RayBackendConfig | None = None
    spark: SparkBackendConfig | None = None
    kubernetes: KubernetesBackendConfig | None = None

    def types(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class SchedulerSettings(_Strict):
    """Defaults of the scheduler; queues may override the aging settings."""

    aging_seconds: float | None = Field(default=600.0, gt=0, allow_inf_nan=False)
    max_wait_seconds: float | None = Field(default=3600.0, gt=0, allow_inf_nan=False)
    backfill_lookahead: int = Field(default=8, ge=0)
    max_reservations: int = Field(default=16, ge=1)
    preemption: bool = True


class JobsSettings(_Strict):
    """How replicas run: as whom, with which environment, and health limits."""

    default_user: str = Field(
        default="nobody", pattern=OS_USER_PATTERN,
        description="OS user for groups without run_as when the service runs as root",
    )
    pass_env: list[str] = Field(
        default_factory=list,
        description="names of the service's environment variables jobs also get (PATH always)",
    )
    heartbeat_timeout: float | None = Field(default=30.0, gt=0, allow_inf_nan=False)
    pending_deadline: float | None = Field(default=600.0, gt=0, allow_inf_nan=False)
    tick_interval: float = Field(default=1.0, gt=0, le=60, allow_inf_nan=False)
    work_dir: str | None = Field(
        default=None, description="where per-attempt scratch directories go (STATE_DIR/work)"
    )

    @field_validator("pass_env")
    @classmethod
    def _env(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _ENV_NAME.match(n)]
        if bad:
            raise ValueError(f"invalid environment variable name(s) {bad}")
        protected = sorted(set(v) & PROTECTED_ENV)
        if protected:
            raise ValueError(f"{protected} are the platform's secrets and never reach a job")
        return v


class ApiSettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)


class MonitoringSettings(_Strict):
    """Anomaly checks of running replicas' samples (:mod:`recforge.platform.runtime.monitoring`)."""

    interval: float = Field(default=5.0, gt=0, allow_inf_nan=False,
                            description="seconds between two checks of the running jobs")
    memory_fraction: float = Field(default=0.9, gt=0, le=1, allow_inf_nan=False,
                                   description="flag memory at this share of the limit")
    jitter_factor: float = Field(default=3.0, gt=1, allow_inf_nan=False,
                                 description="flag heartbeats further apart than this x interval")


class DeploymentConfig(_Strict):
    """A whole deployment (see the module docstring)."""

    store: str | None = None
    state_dir: str | None = None
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    clusters: list[Cluster] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)
    queues: list[Queue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> DeploymentConfig:
        PlatformConfig.model_validate(self.platform_dict())  # cross references
        have = set(self.backends.types())
        missing = sorted({c.type for c in self.clusters} - have)
        if missing:
            users = [c.name for c in self.clusters if c.type in missing]
            raise ValueError(
                f"backends: no backend for cluster type(s) {missing} (clusters {users}); "
                f"configured: {sorted(have)}"
            )
        return self

    def platform_dict(self) -> dict[str, Any]:
        """The clusters, groups and queues as given (unset fields left out)."""
        return {
            "clusters": [c.model_dump(mode="json", exclude_unset=True) for c in self.clusters],
            "groups": [g.model_dump(mode="json", exclude_unset=True) for g in self.groups],
            "queues": [q.model_dump(mode="json", exclude_unset=True) for q in self.queues],
        }

    def platform(self) -> PlatformConfig:
        return PlatformConfig(clusters=self.clusters, groups=self.groups, queues=self.queues)


def parse_deployment(
    data: Mapping[str, Any] | str | bytes, source: str = "<deployment>"
) -> DeploymentConfig:
    """Validate a deployment file (YAML/JSON text or dict); :class:`SpecError` names the field."""
    mapping = load_mapping(data, "deployment config", source)
    try:
        return DeploymentConfig.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "deployment config", source)) from None
