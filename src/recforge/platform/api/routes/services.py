"""Service jobs: their stable address and replicas, and scaling them."""

from __future__ import annotations

from fastapi import APIRouter

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import JobId, ServiceDep, err
from recforge.platform.api.schemas import ScaleIn, ServiceOut

router = APIRouter(tags=["services"])


@router.get("/jobs/{job_id}/service", response_model=ServiceOut,
            responses=err(404, s422="not a service job"))  # fmt: skip
def get_service(service: ServiceDep, user: UserDep, job_id: JobId) -> ServiceOut:
    """The service's address, wanted/ready replica counts and each replica's state."""
    return ServiceOut.model_validate(service.service(user, job_id))


@router.post("/jobs/{job_id}/scale", response_model=ServiceOut,
             responses=err(404, s403="not the owner or an admin",
                           s409="the service is not running", s422="not a service job or "
                           "outside 0..max_replicas"))  # fmt: skip
def scale_service(service: ServiceDep, user: UserDep, job_id: JobId, body: ScaleIn
                  ) -> ServiceOut:  # fmt: skip
    """Ask a running service for ``replicas`` replicas (within its admitted max_replicas)."""
    return ServiceOut.model_validate(service.scale(user, job_id, body.replicas))
