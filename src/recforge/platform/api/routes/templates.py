"""Job templates: visible to their owner group (and everyone for admin-owned ones), managed by
admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import Response

from recforge.platform.api.auth import AdminDep, UserDep
from recforge.platform.api.routes import ServiceDep, err
from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.model.templates import Template

router = APIRouter(tags=["templates"])
TemplateName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="template name")]


@router.get("/templates", response_model=list[Template])
def list_templates(service: ServiceDep, user: UserDep) -> list[Template]:
    """Templates of the caller's group and admin-owned ones (admins: all)."""
    return service.templates(user)


@router.get("/templates/{name}", response_model=Template, responses=err(404))
def get_template(service: ServiceDep, user: UserDep, name: TemplateName) -> Template:
    return service.template(user, name)


@router.post("/templates", response_model=Template, status_code=201, responses=err(403))
def put_template(service: ServiceDep, admin: AdminDep, template: Template) -> Template:
    """Create or replace a template (admin only); ``owner`` is the group that may use it
    (``admin``: everybody). The body must render into a valid job spec (422 otherwise)."""
    return service.put_template(admin, template)


@router.delete("/templates/{name}", status_code=204, responses=err(403, 404))
def delete_template(service: ServiceDep, admin: AdminDep, name: TemplateName) -> Response:
    """Delete a template (admin only); jobs already rendered from it are unaffected."""
    service.delete_template(admin, name)
    return Response(status_code=204)
