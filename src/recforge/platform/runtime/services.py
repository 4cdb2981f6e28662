"""Service jobs seen from the platform: their supervisor's status and the scale request.

The supervisor (:mod:`recforge.platform.backends.supervisor`) writes ``status.json`` (address,
replicas, readiness, restarts) in its attempt's state directory; the platform reads it for the
API and asks for another replica count by writing ``control.json`` there. Both live in the
attempt's working directory, which the local backend's handle records.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends.supervisor import CONTROL_FILE, STATUS_FILE, state_dir
from recforge.platform.model.specs import JobSpec
from recforge.platform.model.states import JobState as S
from recforge.platform.runtime.errors import Conflict, Invalid
from recforge.platform.store import JobRecord

__all__ = ["request_scale", "service_status"]


def _where(job: JobRecord) -> Path | None:
    handle = job.handle or {}
    workdir = handle.get("workdir")
    if not workdir:
        return None
    return state_dir(workdir, job.id, int(handle.get("attempt", job.attempts)))


def _spec(job: JobRecord) -> JobSpec:
    spec = JobSpec.model_validate(job.spec)
    if spec.kind != "service" or spec.service is None:
        raise Invalid(f"job {job.id} is a {spec.kind!r} job, not a service", field="job_id")
    return spec


def service_status(job: JobRecord) -> dict[str, Any]:
    """The service's address, wanted and ready replica counts and per-replica state (what its
    supervisor last wrote; ``state: "not started"`` before that)."""
    spec = _spec(job)
    assert spec.service is not None
    out: dict[str, Any] = {"job_id": job.id, "job_state": job.state.value,
                           "max_replicas": spec.service.limit, "state": "not started",
                           "address": None, "desired": spec.service.replicas, "ready": 0,
                           "replicas": []}  # fmt: skip
    where = _where(job)
    if where is not None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            out.update(json.loads((where / STATUS_FILE).read_text()))
    if job.state in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        out["address"] = None  # nothing listens there any more
    return out


def request_scale(job: JobRecord, replicas: int) -> dict[str, Any]:
    """Ask the running service's supervisor for ``replicas`` replicas (0..max_replicas)."""
    spec = _spec(job)
    assert spec.service is not None
    if not 0 <= replicas <= spec.service.limit:
        raise Invalid(f"replicas: {replicas} is outside 0..{spec.service.limit} (max_replicas, "
                      "what the job was admitted for)", field="replicas")  # fmt: skip
    where = _where(job)
    if job.state not in (S.STARTING, S.RUNNING) or where is None:
        raise Conflict(f"job {job.id} is {job.state.value}: only a launched service can scale")
    where.mkdir(parents=True, exist_ok=True)
    tmp = where / (CONTROL_FILE + ".tmp")
    tmp.write_text(dumps({"replicas": replicas}, indent=None))
    os.chmod(tmp, 0o644)  # the supervisor may run as another user
    os.replace(tmp, where / CONTROL_FILE)
    return {**service_status(job), "desired": replicas}
