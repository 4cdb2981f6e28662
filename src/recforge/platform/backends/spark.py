"""Spark backend: a ``kind: spark`` job is one ``spark-submit`` in client mode, under a sidecar.

After the scheduler admitted the gang (driver plus minimum executors, :mod:`recforge.platform.
model.spark`), the backend starts the driver as a local replica (the local backend's process,
sidecar, heartbeats, logs, memory limit and cancel) running::

    spark-submit --master <cluster master> --deploy-mode client --name recforge-<job>-a<attempt>
        --conf spark.driver.host=<driver_host> --conf spark.driver.bindAddress=<driver_host>
        [executor counts] <cluster conf> <the job's resources and conf> <application> <args>

The master comes from the deployment (``backends.spark.master``):

* ``local`` or ``local[N]``: executors are threads of the driver JVM (tests, one machine).
  ``local`` means ``local[K]`` with K the admitted executors' cores; the driver process's memory
  limit and cores are then the whole gang's.
* ``yarn`` (client mode: set ``HADOOP_CONF_DIR`` in ``backends.spark.env``), ``spark://host:port``
  (standalone) or ``k8s://https://host:port`` (Kubernetes; image and namespace in
  ``backends.spark.conf``): the cluster manager starts the executors. The backend asks for the
  admitted number (``spark.executor.instances``); a job with ``executors.max`` gets dynamic
  allocation between its minimum and the admitted count, never more than was admitted.

Only local masters were run here (pyspark local mode, inside a loopback-only network namespace in
the tests); YARN, standalone and Kubernetes masters are passed to spark-submit as Spark documents
them but were not run against a real cluster.

Replica 0 is the driver; executors (1..n) have no process of ours: they report the driver's
phase (they live and end with the application) and their logs are the driver's (executor logs
stay with the cluster manager). The exit status is spark-submit's: a Python application's own
exit code, 1 for an uncaught exception.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends.base import (
    Backend,
    BackendStatus,
    Handle,
    Launch,
    LaunchError,
    ReplicaPhase,
    ReplicaStatus,
    admitted_count,
    replica_plan,
)
from recforge.platform.backends.env import EnvPolicy
from recforge.platform.backends.local import LocalBackend
from recforge.platform.model.resources import Resources
from recforge.platform.model.specs import JobSpec, ReplicaSpec

__all__ = ["SparkBackend", "default_spark_submit", "driver_command"]

_LOCAL_RE = re.compile(r"^local(\[(\d+|\*)(,\d+)?\])?$")
_HANDLE_FILE = "spark-handle.json"


def default_spark_submit(python: str = sys.executable) -> str:
    """The ``spark-submit`` installed with pyspark next to ``python``."""
    return str(Path(python).with_name("spark-submit"))


def _spark_home(spark_submit: str) -> dict[str, str]:
    """``SPARK_HOME`` of pyspark's own spark-submit (its wrapper would otherwise ask the driver's
    interpreter, which may be one that cannot import pyspark: a run-as user's); {} otherwise."""
    import importlib.util

    found = importlib.util.find_spec("pyspark")
    if found is None or found.origin is None or Path(spark_submit) != Path(
            default_spark_submit()):  # fmt: skip
        return {}
    return {"SPARK_HOME": str(Path(found.origin).parent)}


def _is_local(master: str) -> bool:
    return _LOCAL_RE.match(master) is not None


def driver_command(
    spec: JobSpec,
    executors: int,
    *,
    spark_submit: str,
    master: str,
    app_name: str,
    driver_host: str = "127.0.0.1",
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    """The driver's argv for ``spec`` with ``executors`` admitted executors (module docstring)."""
    assert spec.spark is not None
    app = spec.spark
    if master == "local":
        master = f"local[{max(1, executors * app.executors.cpu)}]"
    argv = [
        spark_submit, "--master", master, "--deploy-mode", "client", "--name", app_name,
        "--conf", f"spark.driver.host={driver_host}",
        "--conf", f"spark.driver.bindAddress={driver_host}",
    ]  # fmt: skip
    if not _is_local(master):
        minimum = app.executors.instances
        argv += ["--conf", f"spark.executor.instances={minimum}"]
        if executors > minimum:  # admitted extras: dynamic allocation within what was admitted
            argv += [
                "--conf", "spark.dynamicAllocation.enabled=true",
                "--conf", "spark.dynamicAllocation.shuffleTracking.enabled=true",
                "--conf", f"spark.dynamicAllocation.minExecutors={minimum}",
                "--conf", f"spark.dynamicAllocation.maxExecutors={executors}",
            ]  # fmt: skip
    for key, value in sorted((conf or {}).items()):
        if key not in app.conf:  # the job's own conf wins over the cluster's defaults
            argv += ["--conf", f"{key}={value}"]
    return [*argv, *app.submit_args()]


class SparkBackend(Backend):
    """Run Spark applications against one master (see the module docstring).

    ``conf`` are the cluster's Spark defaults (a job's ``spark.conf`` overrides them), ``env``
    extra variables of the driver (``HADOOP_CONF_DIR``, ``JAVA_HOME``); ``python`` is the
    interpreter of PySpark's driver and workers (``PYSPARK_PYTHON``).
    """

    cluster_type = "spark"
    heartbeats = True
    recovers_launches = True

    def __init__(
        self,
        runtime_dir: str | Path,
        *,
        master: str = "local",
        spark_submit: str | None = None,
        driver_host: str = "127.0.0.1",
        conf: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        heartbeat_interval: float = 5.0,
        term_grace: float = 10.0,
        env_policy: EnvPolicy | None = None,
        work_dir: str | Path | None = None,
    ) -> None:
        self.master = master
        # spark-submit comes with the service's pyspark, whatever interpreter runs the driver
        self.spark_submit = spark_submit or default_spark_submit()
        self.driver_host = driver_host
        self.conf = dict(conf or {})
        self.env = dict(env or {})
        self.python = python
        self.local = LocalBackend(
            Path(runtime_dir) / "spark", heartbeat_interval=heartbeat_interval,
            job_python=python, term_grace=term_grace, env=env_policy, work_dir=work_dir,
        )  # fmt: skip

    # -- launch -------------------------------------------------------------------------------
    def _driver_spec(self, job_id: int, spec: JobSpec, admission: Any, attempt: int
                     ) -> tuple[JobSpec, int]:  # fmt: skip
        if spec.kind != "spark" or spec.spark is None:
            raise LaunchError(f"job {job_id}: the Spark backend runs kind 'spark', not "
                              f"{spec.kind!r}")  # fmt: skip
        plans = replica_plan(spec, admitted_count(admission), self.python)
        executors = len(plans) - 1
        command = driver_command(
            spec, executors, spark_submit=self.spark_submit, master=self.master,
            app_name=f"recforge-{job_id}-a{attempt}", driver_host=self.driver_host,
            conf=self.conf,
        )  # fmt: skip
        # In local mode the executors are threads of the driver JVM: its limits are the gang's.
        counted = plans if _is_local(self.master) else plans[:1]
        resources = Resources(
            cpu=sum(p.cpu for p in counted), memory=sum(p.memory_mib for p in counted)
        )
        env = {
            **_spark_home(self.spark_submit), **self.env, **spec.env,
            "SPARK_LOCAL_IP": self.driver_host,
            "PYSPARK_PYTHON": self.python, "PYSPARK_DRIVER_PYTHON": self.python,
        }  # fmt: skip
        driver = JobSpec(
            name=spec.name, kind="command", command=command, env=env, workdir=spec.workdir,
            replica_specs=[ReplicaSpec(role="master", resources=resources)], queue=spec.queue,
        )  # fmt: skip
        return driver, len(plans)

    #: one launch through :meth:`launch_many` (the local backend's wrapper, same contract).
    launch = LocalBackend.launch

    def launch_many(self, launches: list[Launch]) -> list[Handle | Exception]:
        out: list[Handle | Exception] = []
        local: list[Launch] = []
        slots: list[int] = []  # where each local launch's result goes in ``out``
        for la in launches:
            try:
                driver, count = self._driver_spec(la.job_id, la.spec, la.admission, la.attempt)
            except Exception as exc:
                out.append(exc if isinstance(exc, LaunchError) else LaunchError(str(exc)))
                continue
            job_dir = self.local.runtime_dir / f"job-{la.job_id}" / f"attempt-{la.attempt}"
            job_dir.mkdir(parents=True, exist_ok=True)
            wrapper: Handle = {
                "backend": "spark", "job_id": la.job_id, "attempt": la.attempt,
                "master": self.master, "app_name": f"recforge-{la.job_id}-a{la.attempt}",
                "replicas": [{"index": i, "role": "master" if i == 0 else "worker"}
                             for i in range(count)],
                "command": driver.command,
            }  # fmt: skip
            (job_dir / _HANDLE_FILE).write_text(dumps(wrapper, indent=None))  # for recover_handle
            local.append(Launch(la.job_id, driver, None, la.attempt, la.run_as))
            slots.append(len(out))
            out.append(wrapper)
        for slot, result in zip(slots, self.local.launch_many(local), strict=True):
            if isinstance(result, Exception):
                out[slot] = result
            else:
                done = out[slot]
                assert isinstance(done, dict)
                done["driver"] = result
        return out

    def recover_handle(self, job_id: int, attempt: int) -> Handle | None:
        driver = self.local.recover_handle(job_id, attempt)
        if driver is None:
            return None
        path = self.local.runtime_dir / f"job-{job_id}" / f"attempt-{attempt}" / _HANDLE_FILE
        wrapper: Handle | None = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            wrapper = json.loads(path.read_text())
        if wrapper is None:
            return None
        wrapper["driver"] = driver
        return wrapper

    # -- status -------------------------------------------------------------------------------
    def poll(self, handle: Handle) -> BackendStatus:
        indices = [int(r["index"]) for r in handle.get("replicas", [])]
        drivers = self.local.poll(handle.get("driver") or {}).replicas
        if not drivers:
            return BackendStatus([ReplicaStatus(i, ReplicaPhase.NOT_FOUND, None,
                                                "the driver was never started")
                                  for i in indices])  # fmt: skip
        d = drivers[0]
        out = [ReplicaStatus(0, d.phase, d.exit_code, d.detail, d.heartbeat_at)]
        for i in indices[1:]:
            if d.phase in (ReplicaPhase.FAILED, ReplicaPhase.NOT_FOUND):
                out.append(ReplicaStatus(i, ReplicaPhase.FAILED, None,
                                         "executor of a Spark application that ended"))  # fmt: skip
            else:
                code = 0 if d.phase is ReplicaPhase.SUCCEEDED else None
                out.append(ReplicaStatus(i, d.phase, code, "executor (follows the driver)",
                                         d.heartbeat_at))  # fmt: skip
        return BackendStatus(out, detail=f"Spark application {handle.get('app_name', '')} on "
                                         f"{handle.get('master', '')}")  # fmt: skip

    def reattach(self, handle: Handle) -> bool:
        return self.local.reattach(handle.get("driver") or {})

    def cancel(self, handle: Handle) -> None:
        """SIGTERM the driver's process group (spark-submit's shutdown hook stops the
        application and its executors), SIGKILL after the grace period."""
        self.local.cancel(handle.get("driver") or {})

    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        if not any(int(r["index"]) == replica for r in handle.get("replicas", [])):
            raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")
        driver = handle.get("driver")
        return self.local.logs(driver, 0, tail) if driver else ""

    def samples(self, handle: Handle, replica: int, since: float | None = None
                ) -> list[dict[str, Any]]:  # fmt: skip
        """The driver's samples (replica 0); executors have no process of ours: []."""
        if not any(int(r["index"]) == replica for r in handle.get("replicas", [])):
            raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")
        driver = handle.get("driver")
        return self.local.samples(driver, 0, since) if driver and replica == 0 else []

    def set_notifier(self, notify: Callable[[int], None]) -> None:
        self.local.set_notifier(notify)

    def close(self) -> None:
        self.local.close()
