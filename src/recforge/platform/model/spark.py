"""Spark applications as jobs (``kind: spark``): what the user states and what the gang is.

A Spark job names an application (a ``.py`` file or a jar with ``main_class``), its arguments,
the driver's and each executor's cores and memory, and how many executors it needs at least
(``executors.instances``) and may grow to (``executors.max``, Spark dynamic allocation)::

    kind: spark
    spark:
      application: /jobs/wordcount.py
      arguments: [--input, /data/x]
      driver: {cpu: 1, memory: 1Gi}
      executors: {instances: 2, max: 4, cpu: 1, memory: 2Gi}
      conf: {spark.sql.shuffle.partitions: "8"}

The gang (admitted at once against quotas, as Volcano does for Spark) is the driver plus the
minimum executors: the job's replicas are one ``master`` (the driver) and ``executors.max`` (else
``instances``) ``worker`` replicas, with ``min_available = 1 + instances``. Each replica is
admitted with its memory *plus Spark's overhead* (``max(384 MiB, 10%)``, Spark's default for
``spark.{driver,executor}.memoryOverhead``): that is what YARN or Kubernetes really allocates for
a JVM of that heap. Options the platform sets itself (master, deploy mode, driver address,
resources, executor counts) are refused in ``conf``, naming the key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recforge.platform.model.resources import Resources, parse_memory

__all__ = ["PLATFORM_CONF", "SparkApp", "SparkDriver", "SparkExecutors", "memory_overhead_mib"]

#: Spark options the platform derives from the spec or the cluster and that ``conf`` may not set.
PLATFORM_CONF = frozenset(
    {
        "spark.master", "spark.submit.deployMode", "spark.app.name",
        "spark.driver.host", "spark.driver.bindAddress",
        "spark.driver.cores", "spark.driver.memory", "spark.driver.memoryOverhead",
        "spark.executor.cores", "spark.executor.memory", "spark.executor.memoryOverhead",
        "spark.executor.instances", "spark.dynamicAllocation.enabled",
        "spark.dynamicAllocation.minExecutors", "spark.dynamicAllocation.maxExecutors",
        "spark.dynamicAllocation.initialExecutors",
    }
)  # fmt: skip

_MIN_OVERHEAD_MIB = 384  # Spark's floor for spark.*.memoryOverhead
_OVERHEAD_FACTOR = 0.10  # Spark's default spark.*.memoryOverheadFactor


def memory_overhead_mib(heap_mib: int) -> int:
    """Spark's default memory overhead of a JVM with ``heap_mib`` MiB of heap."""
    return max(_MIN_OVERHEAD_MIB, int(heap_mib * _OVERHEAD_FACTOR))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkDriver(_Strict):
    """The driver's cores (whole, Spark's ``--driver-cores``) and heap (``--driver-memory``)."""

    cpu: int = Field(default=1, ge=1, le=1024)
    memory: int = Field(default=1024, ge=32, description="heap in MiB ('1Gi' accepted)")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, v: Any) -> int:
        return parse_memory(v)


class SparkExecutors(SparkDriver):
    """Executors: the minimum count (part of the gang), an optional maximum, per-executor size."""

    instances: int = Field(default=1, ge=0, le=10_000, description="minimum executors (gang)")
    max: int | None = Field(default=None, ge=1, le=10_000,
                            description="dynamic allocation up to this many executors")  # fmt: skip

    @model_validator(mode="after")
    def _check(self) -> SparkExecutors:
        if self.max is not None and self.max < self.instances:
            raise ValueError(f"max: {self.max} is below instances ({self.instances})")
        return self


class SparkApp(_Strict):
    """One Spark application (see the module docstring)."""

    application: str = Field(min_length=1, description="a .py file, or a jar with main_class")
    main_class: str | None = Field(default=None, pattern=r"^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$")
    arguments: list[str] = Field(default_factory=list)
    driver: SparkDriver = Field(default_factory=SparkDriver)
    executors: SparkExecutors = Field(default_factory=SparkExecutors)
    conf: dict[str, str] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _arg_text(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) if isinstance(x, int | float) else x for x in v]
        return v

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (str(x).lower() if isinstance(x, bool) else str(x)) for k, x in v.items()}
        return v

    @field_validator("conf")
    @classmethod
    def _conf_keys(cls, v: dict[str, str]) -> dict[str, str]:
        owned = sorted(set(v) & PLATFORM_CONF)
        if owned:
            raise ValueError(
                f"{owned} are set by the platform from driver/executors and the cluster; "
                "remove them from conf"
            )
        bad = sorted(k for k in v if not k.startswith("spark."))
        if bad:
            raise ValueError(f"{bad} are not Spark options (they start with 'spark.')")
        return v

    @model_validator(mode="after")
    def _check(self) -> SparkApp:
        if self.application.endswith(".jar") and self.main_class is None:
            raise ValueError("main_class: a jar application needs its main class")
        if self.application.endswith(".py") and self.main_class is not None:
            raise ValueError("main_class: only for jar applications")
        return self

    @property
    def gang_size(self) -> int:
        """Driver plus the minimum executors."""
        return 1 + self.executors.instances

    def replica_specs(self) -> list[dict[str, Any]]:
        """The job's replica groups: the driver as master, executors as workers (with overhead)."""
        d, e = self.driver, self.executors
        groups: list[dict[str, Any]] = [{"role": "master", "resources": _admitted(d)}]
        count = e.max if e.max is not None else e.instances
        if count:
            groups.append({"role": "worker", "replicas": count, "resources": _admitted(e)})
        return groups

    def submit_args(self) -> list[str]:
        """``spark-submit`` options and the application, minus what the cluster decides
        (master, deploy mode, addresses, executor counts: see the Spark backend)."""
        d, e = self.driver, self.executors
        args = [
            "--driver-cores", str(d.cpu), "--driver-memory", f"{d.memory}m",
            "--executor-cores", str(e.cpu), "--executor-memory", f"{e.memory}m",
        ]  # fmt: skip
        for key, value in sorted(self.conf.items()):
            args += ["--conf", f"{key}={value}"]
        if self.main_class is not None:
            args += ["--class", self.main_class]
        return [*args, self.application, *self.arguments]


def _admitted(role: SparkDriver) -> Resources:
    return Resources(cpu=role.cpu, memory=role.memory + memory_overhead_mib(role.memory))
