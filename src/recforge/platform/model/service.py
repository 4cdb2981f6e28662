"""Online services as jobs (``kind: service``): long-lived replicas behind one stable address.

A service job runs ``command`` (a server that listens on ``127.0.0.1:$PORT``) as ``replicas``
copies under one supervisor (:mod:`recforge.platform.backends.supervisor`), which owns the
service's address (``127.0.0.1:<port>``, fixed by ``port`` or picked once per attempt), sends
each connection to a ready replica, checks readiness (an HTTP path answering 2xx/3xx, or a command
exiting 0), restarts a replica that exits with exponential backoff, scales between 1 and
``max_replicas`` when asked through the API, and stops gracefully (SIGTERM to every replica, then
SIGKILL after ``grace_seconds``)::

    kind: service
    command: [python, serve_model.py, --model, /models/ease]
    service:
      replicas: 2
      max_replicas: 4
      resources: {cpu: 0.5, memory: 512Mi}      # per replica
      readiness: {http_path: /healthz}

Quota: the job is one replica (the supervisor) admitted with ``max_replicas`` times the
per-replica resources, so scaling within ``max_replicas`` never waits for quota and never takes
more than was admitted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recforge.platform.model.resources import Resources

__all__ = ["Readiness", "RestartPolicy", "ServiceSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Readiness(_Strict):
    """When a replica may take traffic: ``http_path`` answers 2xx/3xx, or ``command`` exits 0
    (it gets the replica's ``PORT``); checked every ``period_seconds``."""

    http_path: str | None = Field(default=None, pattern=r"^/[^\s]*$")
    command: list[str] | None = None
    period_seconds: float = Field(default=1.0, gt=0, le=300, allow_inf_nan=False)
    timeout_seconds: float = Field(default=2.0, gt=0, le=300, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> Readiness:
        if (self.http_path is None) == (self.command is None):
            raise ValueError("give exactly one of http_path or command")
        if self.command is not None and not self.command:
            raise ValueError("command: must be a non-empty argv list")
        return self


class RestartPolicy(_Strict):
    """A replica's ``n``-th consecutive failure waits ``min(max_backoff, backoff_seconds *
    backoff_factor ** (n - 1))`` before its restart (the jobs' retry formula); becoming ready
    resets ``n``."""

    backoff_seconds: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    backoff_factor: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    max_backoff: float = Field(default=60.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> RestartPolicy:
        self._retry()  # same bounds as a job's retry policy
        return self

    def _retry(self) -> Any:
        from recforge.platform.model.specs import RetryPolicy

        return RetryPolicy(
            backoff_seconds=self.backoff_seconds,
            backoff_factor=self.backoff_factor,
            max_backoff=self.max_backoff,
        )

    def delay(self, failures: int) -> float:
        """Seconds before the restart after ``failures`` consecutive failures (1-based)."""
        return float(self._retry().delay(failures))


class ServiceSpec(_Strict):
    """One online service (see the module docstring)."""

    replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int | None = Field(default=None, ge=1, le=1000)
    resources: Resources = Field(default_factory=lambda: Resources(), description="per replica")
    readiness: Readiness = Field(default_factory=lambda: Readiness(http_path="/"))
    restart: RestartPolicy = Field(default_factory=lambda: RestartPolicy())
    port: int | None = Field(default=None, ge=1024, le=65535,
                             description="the service's port on 127.0.0.1 (default: picked)")
    grace_seconds: float = Field(default=10.0, ge=0, le=600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> ServiceSpec:
        if self.resources.pods:
            raise ValueError("resources: pods are counted by the platform; do not set them")
        if self.max_replicas is None:
            object.__setattr__(self, "max_replicas", self.replicas)
        elif self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas: {self.max_replicas} is below replicas "
                             f"({self.replicas})")  # fmt: skip
        return self

    @property
    def limit(self) -> int:
        assert self.max_replicas is not None  # set by the validator
        return self.max_replicas

    def replica_specs(self) -> list[dict[str, Any]]:
        """The job's one replica: the supervisor, sized for ``max_replicas`` replicas."""
        return [{"role": "master", "resources": self.resources.scale(self.limit)}]
