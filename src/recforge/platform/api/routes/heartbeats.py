"""Heartbeats of replicas that cannot reach the store (pod sidecars), by their attempt's token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from recforge.platform.api.errors import ApiError
from recforge.platform.api.routes import JobId, ServiceDep, err
from recforge.platform.api.schemas import HeartbeatIn

router = APIRouter(tags=["heartbeats"])
_attempt_token = HTTPBearer(auto_error=False, scheme_name="attempt token",
                            description="the heartbeat token of one job attempt (its Secret)")


@router.post("/jobs/{job_id}/heartbeat", status_code=204, response_class=Response,
             responses=err(404, s403="the token is not this attempt's"))  # fmt: skip
def heartbeat(
    service: ServiceDep,
    job_id: JobId,
    body: HeartbeatIn,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_attempt_token)],
) -> Response:
    """Record a heartbeat of one replica. Authorised by the attempt's heartbeat token, which
    the platform gave that attempt's pods only; a user token is not accepted."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
    service.replica_heartbeat(job_id, body.attempt, body.replica, creds.credentials)
    return Response(status_code=204)
