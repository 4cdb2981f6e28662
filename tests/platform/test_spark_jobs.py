"""Spark jobs: the spec's gang, the spark-submit command per master, and real pyspark runs.

The end-to-end test runs a scenario of this file as a script inside a private, loopback-only
network namespace (``unshare -n``, ``ip link set lo up``): Spark binds whatever it finds, so the
namespace guarantees nothing leaves 127.0.0.1. It drives a :class:`PlatformService` with the
Spark backend on ``local`` masters and real ``spark-submit`` (pyspark, Java 17). Missing tools
FAIL the test with a clear message, not skip.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from serve_support import process_running as _alive
from serve_support import spark_scenario
from serve_support import wait_until as _wait

from recforge.platform.backends.spark import driver_command
from recforge.platform.model.deployment import parse_deployment
from recforge.platform.model.spark import memory_overhead_mib
from recforge.platform.model.specs import SpecError, parse_job_spec

PY = sys.executable


def spark_spec(**spark: Any) -> dict[str, Any]:
    return {"name": "sp", "kind": "spark",
            "spark": {"application": "/jobs/app.py", **spark}}  # fmt: skip


def test_gang_is_the_driver_plus_minimum_executors_with_sparks_memory_overhead() -> None:
    spec = parse_job_spec(spark_spec(
        driver={"cpu": 2, "memory": "4Gi"},
        executors={"instances": 2, "max": 5, "cpu": 1, "memory": "1Gi"},
    ))  # fmt: skip
    assert spec.cluster_type == "spark" and spec.gang_size == 3 and spec.total_replicas == 6
    per, total = spec.gang_request()
    # 4 GiB heap -> 10% overhead (409 MiB); 1 GiB heap -> Spark's 384 MiB floor.
    assert [r.memory for r in per] == [4096 + 409, 1024 + 384, 1024 + 384]
    assert total.cpu == 4 and total.pods == 3
    assert memory_overhead_mib(100) == 384
    assert parse_job_spec(spec.canonical()) == spec  # the stored spec reads back unchanged
    # No executors beyond the driver: a gang of one.
    assert parse_job_spec(spark_spec(executors={"instances": 0})).gang_size == 1


@pytest.mark.parametrize(
    ("patch", "path", "message"),
    [
        ({"spark": None}, "spark", "needs the application"),
        ({"command": ["x"]}, "command", "not for kind 'spark'"),
        ({"cluster_type": "local"}, "cluster_type", "runs on 'spark' clusters, not 'local'"),
        ({"min_available": 1}, "min_available", "1 + executors.instances (2)"),
        ({"replica_specs": [{"role": "master"}]}, "replica_specs", "derived from 'spark'"),
        ({"spark": {"application": "a.jar"}}, "spark.main_class", "needs its main class"),
        ({"spark": {"application": "a.py", "conf": {"spark.executor.instances": 9}}},
         "spark.conf", "['spark.executor.instances'] are set by the platform"),
        ({"spark": {"application": "a.py", "conf": {"hive.x": "1"}}}, "spark.conf",
         "are not Spark options"),
        ({"spark": {"application": "a.py", "executors": {"instances": 3, "max": 2}}},
         "spark.executors.max", "2 is below instances (3)"),
        ({"spark": {"application": "a.py", "driver": {"cpu": 0.5}}}, "spark.driver.cpu",
         "valid integer"),
    ],
)  # fmt: skip
def test_bad_spark_specs_name_the_field(patch: dict[str, Any], path: str, message: str) -> None:
    data = {**spark_spec(executors={"instances": 1}), **patch}
    if data.get("spark") is None:
        data.pop("spark")
    with pytest.raises(SpecError) as err:
        parse_job_spec(data, source="job.yaml")
    text = str(err.value)
    assert "job.yaml" in text and f"- {path}: " in text and message in text, text


def test_spark_section_is_refused_on_other_kinds() -> None:
    with pytest.raises(SpecError, match="spark: only for kind 'spark'"):
        parse_job_spec({"name": "x", "command": ["true"], "spark": {"application": "a.py"}})


def _conf(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "--conf")


def test_driver_command_per_master() -> None:
    spec = parse_job_spec(spark_spec(
        arguments=["--n", 3], executors={"instances": 2, "max": 4, "cpu": 2, "memory": 512},
        conf={"spark.sql.shuffle.partitions": 8},
    ))  # fmt: skip
    common = {"spark_submit": "/opt/spark/bin/spark-submit", "app_name": "recforge-7-a1"}
    # `local`: executors are threads of the driver, as many as the admitted executors' cores.
    local = driver_command(spec, 2, master="local", conf={"spark.ui.enabled": "false"}, **common)
    assert local[:7] == ["/opt/spark/bin/spark-submit", "--master", "local[4]", "--deploy-mode",
                         "client", "--name", "recforge-7-a1"]  # fmt: skip
    assert local[-3:] == ["/jobs/app.py", "--n", "3"]
    conf = _conf(local)
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false" and conf["spark.sql.shuffle.partitions"] == "8"
    assert "spark.executor.instances" not in conf
    assert local[local.index("--executor-memory") + 1] == "512m"
    assert driver_command(spec, 2, master="local[3]", **common)[2] == "local[3]"  # as given
    # YARN with the gang only: the minimum executors, no dynamic allocation.
    yarn = _conf(driver_command(spec, 2, master="yarn", **common))
    assert yarn["spark.executor.instances"] == "2" and "spark.dynamicAllocation.enabled" not in yarn
    # Admitted extras: dynamic allocation between the minimum and what was admitted (3, not 4).
    grown = _conf(driver_command(spec, 3, master="spark://10.0.0.1:7077", **common))
    assert grown["spark.dynamicAllocation.enabled"] == "true"
    assert (grown["spark.dynamicAllocation.minExecutors"],
            grown["spark.dynamicAllocation.maxExecutors"]) == ("2", "3")  # fmt: skip
    # The job's conf overrides the cluster's defaults.
    over = driver_command(spec, 2, master="yarn", conf={"spark.sql.shuffle.partitions": "200"},
                          **common)  # fmt: skip
    assert _conf(over)["spark.sql.shuffle.partitions"] == "8"


def test_deployment_takes_a_spark_master_and_refuses_a_bad_one() -> None:
    cfg = parse_deployment({"backends": {"spark": {"master": "local[2]"}},
                            "clusters": [{"name": "sp1", "type": "spark",
                                          "capacity": {"cpu": 4}}]})  # fmt: skip
    assert cfg.backends.types() == ["local", "spark"]
    assert cfg.backends.spark is not None
    assert cfg.backends.spark.conf == {"spark.ui.enabled": "false"}
    with pytest.raises(SpecError, match=r"backends\.spark\.master"):
        parse_deployment({"backends": {"spark": {"master": "mesos://x:5050"}}})
    with pytest.raises(SpecError, match=r"no backend for cluster type\(s\) \['spark'\]"):
        parse_deployment({"clusters": [{"name": "sp1", "type": "spark", "capacity": {"cpu": 4}}]})


# -- end to end, real pyspark in a loopback-only network namespace ----------------------------
@pytest.mark.slow
def test_spark_jobs_run_as_gangs_with_logs_exit_status_cancel_and_a_pending_why(
    tmp_path: Path,
) -> None:
    out = spark_scenario(__file__, "service", tmp_path)
    assert out["netns_interfaces"] == ["lo"]  # nothing but loopback to bind

    long, fails, wide = out["long"], out["fails"], out["wide"]
    # The long gang (driver + 2 executors) ran; cancel stopped the driver and its Python workers.
    assert long["transitions"] == ["PENDING", "ADMITTED", "STARTING", "RUNNING", "CANCELLED"]
    assert long["replicas"] == 3 and long["processes_left"] == []
    assert "MASTER local[2]" in long["log"] and "LONG STARTED" in long["log"]
    # A failing application: spark-submit's exit code is the job's, its output the job's log.
    assert fails["state"] == "FAILED" and "replica 0 failed with exit code 3" in fails["reason"]
    assert "SUM 4950" in fails["log"] and fails["replicas"] == 1
    # The wide gang could not fit beside the long one: pending, and `why` says what blocks it.
    assert wide["pending_while_long_ran"] is True
    why = wide["why"]
    assert "spark: driver + 2 executor(s) are one gang" in why
    assert "blocked by" in why and "cpu" in why, why
    assert wide["launched_before_cancel"] is False
    # Once the long job was cancelled it ran to the end.
    assert wide["state"] == "SUCCEEDED" and wide["exit_codes"] == [0, 0, 0]
    assert "SUM 4950" in wide["log"] and wide["executor_log_is_drivers"] is True


APP = '''
import os, sys, time
from pyspark.sql import SparkSession

mode, marks = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("MASTER", sc.master, flush=True)
if mode == "sum":
    line = f"SUM {sc.parallelize(range(100), 4).sum()}"
    print(line, flush=True)
    # spark-submit relays this process's output through a daemon thread it does not wait for
    # when the process ends (PythonRunner): under load a last line was lost from the log. Wait,
    # bounded, until the line is in the file the JVM (the parent) writes to.
    log, end = os.readlink(f"/proc/{os.getppid()}/fd/1"), time.monotonic() + 120
    while time.monotonic() < end:
        with open(log, errors="replace") as f:
            if line in f.read():
                break
        time.sleep(0.05)
    spark.stop()
    sys.exit(int(sys.argv[3]))


def slow(i):
    with open(os.path.join(marks, f"task-{i}.pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(900)
    return i


with open(os.path.join(marks, "driver.pid"), "w") as f:
    f.write(f"{os.getpid()} {os.getppid()}")
print("LONG STARTED", flush=True)
sc.parallelize(range(2), 2).map(slow).collect()
'''


def scenario_service(tmp: Path) -> dict[str, Any]:
    from recforge.platform.backends.spark import SparkBackend
    from recforge.platform.model.config import parse_platform_config
    from recforge.platform.runtime.reconciler import LoopSettings
    from recforge.platform.runtime.service import PlatformService, save_config
    from recforge.platform.store import Store, User

    marks = tmp / "marks"
    marks.mkdir()
    app = tmp / "app.py"
    app.write_text(APP)
    store = Store(f"sqlite:///{tmp / 'spark.db'}")
    save_config(store, parse_platform_config({
        "clusters": [{"name": "spark1", "type": "spark",
                      "capacity": {"cpu": 4, "memory": "16Gi"}}],
        "groups": [{"name": "ml", "quotas": [{"cluster": "spark1",
                                              "nominal": {"cpu": 4, "memory": "16Gi"}}]}],
        "queues": [{"name": "q", "group": "ml"}],
    }))  # fmt: skip
    backend = SparkBackend(tmp / "runtime", master="local", heartbeat_interval=0.5,
                           term_grace=30, conf={"spark.ui.enabled": "false"},
                           work_dir=tmp / "work")  # fmt: skip
    # Generous limits: a JVM start takes a minute on a loaded machine.
    svc = PlatformService(store, {"spark": backend},
                          settings=LoopSettings(tick_interval=0.2, heartbeat_timeout=120,
                                                default_pending_deadline=600))  # fmt: skip
    user = User("alice", "ml", False)

    # The driver gets 1 GiB: with master local its JVM, the Python driver and the Python
    # workers all live in its replica, and at 512 MiB (896 MiB with Spark's overhead) their
    # summed resident memory passed the limit under load (CI: 913 MiB, killed with -9).
    def job(name: str, args: list[str], executors: int) -> dict[str, Any]:
        return {"name": name, "queue": "q", "kind": "spark",
                "spark": {"application": str(app), "arguments": args,
                          "driver": {"cpu": 1, "memory": "1Gi"},
                          "executors": {"instances": executors, "cpu": 1,
                                        "memory": "512Mi"}}}  # fmt: skip

    def state(jid: int) -> str:
        return store.get_job(jid).state.value

    def ticking(pred: Any) -> Any:
        def step() -> Any:
            svc.tick()
            return pred()
        return step

    long = svc.submit(user, job("long", ["long", str(marks)], 2))
    fails = svc.submit(user, job("fails", ["sum", str(marks), "3"], 0))
    _wait(ticking(lambda: state(long) == "RUNNING" and (marks / "task-1.pid").exists()
                  and (marks / "task-0.pid").exists() and (marks / "driver.pid").exists()),
          600, "the long gang's tasks")  # fmt: skip
    _wait(ticking(lambda: state(fails) in ("FAILED", "SUCCEEDED")), 600, "the failing app")
    wide = svc.submit(user, job("wide", ["sum", str(marks), "0"], 2))
    for _ in range(10):  # several scheduling passes: it must stay pending
        svc.tick()
    pending = state(wide) == "PENDING" and state(long) == "RUNNING"
    why = svc.why(user, wide).reason
    launched_before = store.get_job(wide).handle is not None
    pids = [int(p) for p in (marks / "driver.pid").read_text().split()]
    pids += [int((marks / f"task-{i}.pid").read_text()) for i in (0, 1)]
    long_log = svc.logs(user, long, 0, tail=1000)
    svc.cancel(user, long)
    _wait(ticking(lambda: state(long) == "CANCELLED"), 120, "the long job to be cancelled")
    _wait(lambda: not any(_alive(p) for p in pids), 60, "the long job's processes to end")
    _wait(ticking(lambda: state(wide) in ("SUCCEEDED", "FAILED")), 600, "the wide gang")
    wide_rec = store.get_job(wide)
    replicas = [r for r in store.replicas(wide) if r.attempt == wide_rec.attempts]
    with open("/proc/net/dev") as f:
        interfaces = sorted(line.split(":")[0].strip() for line in f.readlines()[2:])
    return {
        "netns_interfaces": interfaces,
        "long": {
            "transitions": [e.to_state.value for e in store.events(long)],
            "replicas": len(store.get_job(long).handle["replicas"]),
            "processes_left": [p for p in pids if _alive(p)],
            "log": long_log,
        },
        "fails": {
            "state": state(fails), "reason": store.get_job(fails).reason,
            "log": svc.logs(user, fails, 0, tail=1000),
            "replicas": len(store.get_job(fails).handle["replicas"]),
        },
        "wide": {
            "pending_while_long_ran": pending, "why": why,
            "launched_before_cancel": launched_before, "state": wide_rec.state.value,
            "exit_codes": [r.exit_code for r in sorted(replicas, key=lambda r: r.index)],
            "log": svc.logs(user, wide, 0, tail=1000),
            "executor_log_is_drivers": svc.logs(user, wide, 2, tail=1000)
            == svc.logs(user, wide, 0, tail=1000),
        },
    }


if __name__ == "__main__":
    scenario = globals()[f"scenario_{sys.argv[1]}"]
    print(json.dumps(scenario(Path(sys.argv[2]))))


def test_deployment_builds_the_spark_backend(tmp_path: Path) -> None:
    from recforge.platform.backends.spark import SparkBackend, default_spark_submit
    from recforge.platform.runtime.bootstrap import build

    cfg = parse_deployment({
        "backends": {"spark": {"master": "yarn", "env": {"HADOOP_CONF_DIR": "/etc/hadoop"},
                               "conf": {"spark.yarn.queue": "ml"}, "term_grace": 20}},
        "clusters": [{"name": "sp1", "type": "spark", "capacity": {"cpu": 8}}],
    })  # fmt: skip
    deployment = build(cfg, state_dir=tmp_path / "state")
    try:
        backend = deployment.backends["spark"]
        assert isinstance(backend, SparkBackend)
        assert (backend.master, backend.env, backend.conf) == (
            "yarn", {"HADOOP_CONF_DIR": "/etc/hadoop"}, {"spark.yarn.queue": "ml"})
        assert backend.spark_submit == default_spark_submit() and backend.local.term_grace == 20
        # The driver replicas live below the state directory's private runtime/ part.
        assert backend.local.runtime_dir == tmp_path / "state" / "runtime" / "spark"
    finally:
        for b in deployment.backends.values():
            b.close()
        deployment.store.close()
