"""Monitoring: the sidecars' resource samples, checked for anomalies on every running job.

Each heartbeat of a local (or Spark, or service) replica's sidecar records a sample of its
process tree (:mod:`recforge.platform.backends.sampling`: CPU, resident memory, its limit, the
size of its output). A loop phase checks every running job each ``interval`` and flags, once per
episode (again only after the condition cleared), an anomaly stored with the job
(``GET /jobs/{id}/metrics`` serves them with the series):

* ``memory``: the tree's resident memory reached ``memory_fraction`` of the replica's limit
  (the sidecar kills the replica at the limit: this is the warning before);
* ``heartbeat_jitter``: two heartbeats (or the last one and now) further apart than
  ``jitter_factor`` times the heartbeat interval: a stalled or starved replica, seen before the
  heartbeat timeout gives up on it;
* ``no_output``: the replica printed nothing for the job's ``no_output_seconds`` (a hung job
  that still heartbeats).

Episodes live in memory: after a service restart a condition still present is flagged again.
Samples carry wall-clock times, so they are compared with ``time.time()``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from recforge.platform.backends.base import Backend
from recforge.platform.model.deployment import MonitoringSettings as MonitorSettings
from recforge.platform.model.specs import JobSpec
from recforge.platform.model.states import JobState as S
from recforge.platform.store import JobRecord, Store

__all__ = ["KINDS", "Monitor", "MonitorSettings", "detect"]

log = logging.getLogger("recforge.platform.monitoring")

KINDS = ("memory", "heartbeat_jitter", "no_output")
_WINDOW = 20  # recent samples looked at for jitter


def detect(samples: list[dict[str, Any]], now: float, settings: MonitorSettings,
           no_output_seconds: float | None = None) -> dict[str, tuple[float, str]]:  # fmt: skip
    """Which anomalies the samples (oldest first) show at wall time ``now``: kind -> (value,
    message). Pure: the thresholds are the settings' and the job's."""
    out: dict[str, tuple[float, str]] = {}
    if not samples:
        return out
    last = samples[-1]
    limit, rss = last.get("limit_mib"), float(last.get("rss_mib") or 0.0)
    if limit and rss >= settings.memory_fraction * float(limit):
        share = rss / float(limit)
        out["memory"] = (share, f"resident memory {rss:.0f} MiB is {share:.0%} of the "
                                f"{limit} MiB limit")  # fmt: skip
    interval = float(last.get("interval") or 0.0)
    if interval > 0:
        times = [float(s["t"]) for s in samples[-_WINDOW:]] + [now]
        gap = max(b - a for a, b in itertools.pairwise(times))
        if gap > settings.jitter_factor * interval:
            out["heartbeat_jitter"] = (gap, f"heartbeats {gap:.1f}s apart for a {interval:g}s "
                                            "interval")  # fmt: skip
    if no_output_seconds is not None and last.get("output_bytes") is not None:
        since = float(last["t"])
        for s in reversed(samples):
            if s.get("output_bytes") != last["output_bytes"]:
                break
            since = float(s["t"])
        silent = now - since
        if silent >= no_output_seconds:
            out["no_output"] = (silent, f"no output for {silent:.0f}s (no_output_seconds "
                                        f"{no_output_seconds:g})")  # fmt: skip
    return out


class Monitor:
    """The loop phase: checks running jobs' samples, stores new anomalies."""

    def __init__(self, store: Store, backend_of: Callable[[JobRecord], Backend | None],
                 settings: MonitorSettings | None = None) -> None:  # fmt: skip
        self.store = store
        self.backend_of = backend_of
        self.settings = settings or MonitorSettings()
        self._open: set[tuple[int, int, int, str]] = set()
        self._last = float("-inf")

    def tick(self, now: float) -> bool:
        """Check every running job if ``interval`` passed; True if anything was flagged."""
        if now - self._last < self.settings.interval:
            return False
        self._last = now
        flagged = False
        for job in list(self.store.iter_jobs([S.RUNNING])):
            try:
                flagged |= bool(self.check(job))
            except Exception:  # one job's files must not stop the others' checks
                log.exception("monitoring check failed", extra={"job_id": job.id})
        return flagged

    def check(self, job: JobRecord, now: float | None = None) -> list[str]:
        """Flag the job's new anomalies; the kinds flagged (as ``replica:kind``)."""
        backend = self.backend_of(job)
        if backend is None or job.handle is None:
            return []
        wall = time.time() if now is None else now
        spec = JobSpec.model_validate(job.spec)
        flagged = []
        for r in job.handle.get("replicas", []):
            index = int(r["index"])
            samples = backend.samples(job.handle, index)
            if not samples:
                continue  # nothing recorded (yet): no verdict, open episodes stay open
            found = detect(samples, wall, self.settings, spec.no_output_seconds)
            for kind in KINDS:
                key = (job.id, job.attempts, index, kind)
                if kind not in found:
                    self._open.discard(key)
                    continue
                if key in self._open:
                    continue
                self._open.add(key)
                value, message = found[kind]
                self.store.add_anomaly(job.id, job.attempts, index, kind,
                                       f"replica {index}: {message}", value)  # fmt: skip
                log.warning("anomaly", extra={"job_id": job.id, "replica": index, "kind": kind,
                                              "detail": message})  # fmt: skip
                flagged.append(f"{index}:{kind}")
        return flagged
