"""Monitoring: sidecar samples with every heartbeat, the series through the API, anomalies.

A real replica on the local backend burns a known amount of CPU, allocates memory close to its
limit, then goes silent; its sidecar is stopped (SIGSTOP) for a while to starve its heartbeats.
Each condition must be flagged once, with the series showing what happened. Waits are
conditions with generous deadlines; the thresholds are far from what load can fake.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import Platform, running_platform
from serve_support import wait_until as _wait

from recforge.platform.model.deployment import MonitoringSettings, parse_deployment
from recforge.platform.model.specs import SpecError
from recforge.platform.runtime.monitoring import Monitor, detect

SETTINGS = MonitoringSettings(interval=0.2, memory_fraction=0.5, jitter_factor=5)


def _samples(n: int, *, dt: float = 1.0, rss: float = 10.0, limit: int | None = 100,
             output: list[int] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    return [{"t": 1000.0 + i * dt, "interval": 1.0, "cpu_seconds": 0.1 * i, "cpu_percent": 10.0,
             "rss_mib": rss, "limit_mib": limit, "processes": 1,
             "output_bytes": (output or [5] * n)[i]} for i in range(n)]  # fmt: skip


def test_detect_flags_each_condition_at_its_threshold_and_not_below() -> None:
    quiet = _samples(5, output=[1, 2, 3, 4, 5])
    assert detect(quiet, now=1004.5, settings=SETTINGS, no_output_seconds=3) == {}
    # Memory: at half the limit (the settings' fraction), not just under it.
    assert "memory" in detect(_samples(3, rss=50.0), 1002.5, SETTINGS)
    assert "memory" not in detect(_samples(3, rss=49.9), 1002.5, SETTINGS)
    assert "memory" not in detect(_samples(3, rss=99.0, limit=None), 1002.5, SETTINGS)
    value, message = detect(_samples(3, rss=80.0), 1002.5, SETTINGS)["memory"]
    assert value == pytest.approx(0.8) and message == (
        "resident memory 80 MiB is 80% of the 100 MiB limit")
    # Jitter: a gap between two beats, or since the last one, beyond 5 x the 1 s interval.
    gappy = _samples(4)
    gappy[3]["t"] += 5.5
    assert detect(gappy, 1009.0, SETTINGS)["heartbeat_jitter"][0] == pytest.approx(6.5)
    assert "heartbeat_jitter" in detect(_samples(3), now=1002.0 + 5.1, settings=SETTINGS)
    assert "heartbeat_jitter" not in detect(_samples(3), now=1002.0 + 4.9, settings=SETTINGS)
    # No output: unchanged log size for no_output_seconds (counted from the last change).
    silent = _samples(6, output=[1, 2, 3, 3, 3, 3])
    assert detect(silent, 1005.0, SETTINGS, no_output_seconds=3)["no_output"][0] == 3.0
    assert "no_output" not in detect(silent, 1005.0, SETTINGS, no_output_seconds=3.5)
    assert "no_output" not in detect(silent, 1005.0, SETTINGS)  # not configured: never
    assert detect([], 1000.0, SETTINGS) == {}


def test_monitoring_settings_are_validated_in_the_deployment() -> None:
    cfg = parse_deployment({"monitoring": {"interval": 2, "memory_fraction": 0.8}})
    assert cfg.monitoring.interval == 2 and cfg.monitoring.jitter_factor == 3
    with pytest.raises(SpecError, match=r"monitoring\.memory_fraction"):
        parse_deployment({"monitoring": {"memory_fraction": 1.5}})
    with pytest.raises(SpecError, match=r"monitoring\.jitter_factor"):
        parse_deployment({"monitoring": {"jitter_factor": 1}})


# -- end to end -----------------------------------------------------------------------------
@pytest.fixture
def plat(tmp_path: Path) -> Iterator[Platform]:
    with running_platform(tmp_path) as p:
        for backend in p.service.backends.values():
            backend.heartbeat_interval = 0.3  # type: ignore[attr-defined]
        # Tighter thresholds than the default's, checked every 0.2 s.
        p.service.reconciler.phases.remove(p.service.monitor.tick)
        p.service.monitor = Monitor(p.store, p.service.transitions.backend_of, SETTINGS)
        p.service.reconciler.phases.append(p.service.monitor.tick)
        yield p


JOB = """
import sys, time
while time.process_time() < 1.0:   # one CPU-second, however loaded the machine is
    pass
block = bytearray(200 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1                    # touch every page: resident
print("allocated", flush=True)
time.sleep(600)                     # then silence
"""


def test_samples_series_and_anomalies_of_a_running_replica(plat: Platform, tmp_path: Path
                                                           ) -> None:  # fmt: skip
    alice = plat.auth("alice")
    spec = {"name": "hog", "queue": "ml-q", "command": [sys.executable, "-c", JOB],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1, "memory": "300Mi"}}],
            "no_output_seconds": 3}  # fmt: skip
    job = plat.submit("alice", spec)["id"]

    def metrics() -> dict[str, Any]:
        r = plat.client.get(f"/jobs/{job}/metrics", headers=alice)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def kinds() -> list[str]:
        return [a["kind"] for a in metrics()["anomalies"]]

    _wait(lambda: {"memory", "no_output"} <= set(kinds()), 300, "memory and no_output anomalies")
    # Both can be flagged while the block is still being touched (past half the limit, no
    # output yet): wait for a sample of the whole block after the job said so.
    def allocated() -> bool:
        last = (metrics()["replicas"].get("0") or [{}])[-1]
        return last.get("rss_mib", 0) >= 190 and (last.get("output_bytes") or 0) > 0

    _wait(allocated, 300, "a sample of the 200 MiB block after the job's output")
    series = metrics()["replicas"]["0"]
    assert len(series) >= 3 and all(s["limit_mib"] == 300 for s in series)
    cpu = [s["cpu_seconds"] for s in series]
    assert max(cpu) >= 0.9  # the busy loop's CPU-second is in the series
    assert max(s["rss_mib"] for s in series) >= 190  # the 200 MiB block
    assert series[-1]["processes"] >= 1 and series[-1]["output_bytes"] > 0
    since = series[-2]["t"]
    newer = plat.client.get(f"/jobs/{job}/metrics", params={"since": since}, headers=alice).json()
    assert all(s["t"] > since for s in newer["replicas"]["0"])

    # Starve the heartbeats: stop the sidecar (its replica keeps running), wait for the flag.
    handle = plat.store.get_job(job).handle
    assert handle is not None
    sidecar = int(handle["replicas"][0]["pid"])
    os.kill(sidecar, signal.SIGSTOP)
    try:
        _wait(lambda: "heartbeat_jitter" in kinds(), 120, "a heartbeat_jitter anomaly")
    finally:
        os.kill(sidecar, signal.SIGCONT)
    found = metrics()["anomalies"]
    # One episode each: memory stays high, the sidecar was stopped once. Silence may have been
    # flagged before "allocated" too (the busy second can take long under load), then again.
    got = [a["kind"] for a in found]
    assert got.count("memory") == 1 and got.count("heartbeat_jitter") == 1, got
    assert set(got) == {"memory", "heartbeat_jitter", "no_output"}, got
    assert all(a["value"] >= 3 for a in found if a["kind"] == "no_output")
    memory = next(a for a in found if a["kind"] == "memory")
    assert memory["replica"] == 0 and memory["attempt"] == 1 and memory["value"] >= 0.5
    assert "of the 300 MiB limit" in memory["message"]
    jitter = next(a for a in found if a["kind"] == "heartbeat_jitter")
    assert jitter["value"] > 5 * 0.3 and "for a 0.3s interval" in jitter["message"]
    assert plat.store.get_job(job).state.value == "RUNNING"  # flagged, not stopped
    plat.client.post(f"/jobs/{job}/cancel", headers=alice)
    _wait(lambda: plat.store.get_job(job).state.value == "CANCELLED", 60, "the cancel")


def test_metrics_of_a_pending_job_are_empty_and_other_groups_jobs_look_missing(
    plat: Platform,
) -> None:
    from api_support import job_spec

    alice = plat.auth("alice")
    hold = plat.submit("alice", job_spec(cpu=2, command=["sleep", "600"]))["id"]
    _wait(lambda: plat.store.get_job(hold).state.value == "RUNNING", 120, "the holding job")
    pending = plat.submit("alice", job_spec(cpu=2))["id"]
    view = plat.client.get(f"/jobs/{pending}/metrics", headers=alice).json()
    assert view == {"job_id": pending, "attempt": 0, "replicas": {}, "anomalies": []}
    assert plat.client.get(f"/jobs/{hold}/metrics", headers=plat.auth("carol")).status_code == 404
    running = _wait(lambda: (m := plat.client.get(f"/jobs/{hold}/metrics", headers=alice).json())
                    ["replicas"]["0"] and m, 60, "samples of the holding job")  # fmt: skip
    assert running["anomalies"] == []  # within limits, beating, no output check configured
    for jid in (pending, hold):
        plat.client.post(f"/jobs/{jid}/cancel", headers=alice)


def test_anomalies_are_stored_per_job_oldest_first(store: Any) -> None:
    """On SQLite and on PostgreSQL (the ``store`` fixture runs both)."""
    job = store.create_job(name="a", owner="u", group="g", queue="q", spec={}).id
    other = store.create_job(name="b", owner="u", group="g", queue="q", spec={}).id
    store.add_anomaly(job, 1, 0, "memory", "replica 0: resident memory high", 0.93)
    store.add_anomaly(other, 1, 0, "no_output", "replica 0: silent", 12.0)
    store.add_anomaly(job, 2, 1, "no_output", "replica 1: silent")
    got = store.anomalies(job)
    assert [(a.attempt, a.replica, a.kind, a.value) for a in got] == [
        (1, 0, "memory", 0.93), (2, 1, "no_output", None)]
    assert got[0].message == "replica 0: resident memory high" and got[0].at > 0
    assert [a.kind for a in store.anomalies(job, limit=1)] == ["no_output"]  # the newest
    assert [a.job_id for a in store.anomalies(other)] == [other]
