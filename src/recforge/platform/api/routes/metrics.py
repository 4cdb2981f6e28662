"""Monitoring: a job's resource samples and the anomalies flagged on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import JobId, ServiceDep, err
from recforge.platform.api.schemas import MetricsOut

router = APIRouter(tags=["monitoring"])


@router.get("/jobs/{job_id}/metrics", response_model=MetricsOut, responses=err(404))
def job_metrics(
    service: ServiceDep,
    user: UserDep,
    job_id: JobId,
    since: Annotated[float | None, Query(ge=0, le=1e11,
                                         description="only samples after this unix time")] = None,
) -> MetricsOut:
    """CPU, memory and output samples per replica (one per heartbeat), and the anomalies."""
    return MetricsOut.model_validate(service.metrics(user, job_id, since))
