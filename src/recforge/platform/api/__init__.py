"""REST API of the job platform: a FastAPI app over the service façade.

Pieces: :mod:`.auth` (bearer tokens), :mod:`.schemas` (bodies), :mod:`.errors` (the one mapping
from the service's typed errors to HTTP statuses), :mod:`.middleware` (body limit, access log),
:mod:`.openapi` (the description, from the access rules), :mod:`.group_commit` (submissions
that arrive together share one transaction), one router per resource in
:mod:`.routes` and the web UI (:mod:`.ui`, static pages at ``/ui/`` over this same API).
Routes call public methods of :class:`~recforge.platform.runtime.service.PlatformService` only.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI

from recforge.platform.api.auth import Authenticator, TokenAuth
from recforge.platform.api.errors import ErrorOut, install_error_handlers
from recforge.platform.api.group_commit import GroupCommit
from recforge.platform.api.middleware import AccessLog, BodyLimit
from recforge.platform.api.openapi import DESCRIPTION, install_openapi
from recforge.platform.api.routes import (
    audit,
    config,
    dags,
    heartbeats,
    jobs,
    meta,
    metrics,
    overview,
    schedules,
    services,
    templates,
    tokens,
)
from recforge.platform.api.ui import install_ui
from recforge.platform.runtime.service import PlatformService

__all__ = ["ROUTERS", "TokenAuth", "create_app"]

#: every router of the app, in the order of the OpenAPI document.
ROUTERS: tuple[APIRouter, ...] = (
    meta.router,
    jobs.router,
    dags.router,
    schedules.router,
    config.router,
    templates.router,
    tokens.router,
    audit.router,
    services.router,
    metrics.router,
    overview.router,
    heartbeats.router,
)


def create_app(
    service: PlatformService,
    *,
    auth: Authenticator | None = None,
    admin_token: str | None = None,
    max_body_bytes: int = 1 << 20,
    title: str = "recforge platform",
) -> FastAPI:
    """Build the REST app for ``service``.

    ``auth`` maps a bearer token to a :class:`~recforge.platform.store.User` (default:
    :class:`TokenAuth` on the service's store with ``admin_token``, which defaults to the
    ``RECFORGE_ADMIN_TOKEN`` environment variable). Request bodies over ``max_body_bytes``
    (default 1 MiB) are refused with 413.
    """
    if auth is None:
        token = admin_token or os.environ.get("RECFORGE_ADMIN_TOKEN")
        auth = TokenAuth(service.store, admin_token=token)
    common = {
        400: {"model": ErrorOut, "description": "the body is not decodable JSON"},
        413: {"model": ErrorOut, "description": "the body is too large"},
        401: {"model": ErrorOut, "description": "missing, unknown, revoked or expired token"},
        422: {"model": ErrorOut, "description": "malformed request; names the field"},
    }
    app = FastAPI(
        title=title, version="1", description=DESCRIPTION, responses=common  # type: ignore[arg-type]
    )
    app.state.service = service
    app.state.auth = auth
    app.state.group_commit = GroupCommit(service)
    # Added last = outermost: the access log also records requests refused for their size.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # type: ignore[arg-type]
    app.add_middleware(AccessLog)  # type: ignore[arg-type]
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    install_openapi(app)
    install_ui(app)
    return app
