"""REST API of the job platform: a FastAPI app over a :class:`PlatformService`.

Authentication: ``Authorization: Bearer <token>``. Tokens belong to users; a user belongs to one
group; the store keeps only the sha256 of each token. ``RECFORGE_ADMIN_TOKEN`` (or
``admin_token=``) is an extra bootstrap token that authenticates as the built-in admin; it is
compared in memory and never stored. ``recforge platform token create`` issues stored tokens.

Access rules (decided here, documented in the OpenAPI description):

* a user sees and lists only the jobs of their own group; a job of another group answers
  **404** exactly like a missing one, so ids of other groups' jobs do not leak;
* a user cancels their own jobs; a group-mate's job answers **403** (the service's rule:
  owner or admin) and another group's job 404;
* a user submits only to queues of their own group (**403** otherwise);
* templates owned by the user's group or by ``admin`` are visible and usable, others answer 404;
* reading clusters, groups (quotas) and queues is open to every user; changing them, changing
  templates and issuing tokens is for admins only (**403** otherwise: the endpoint is no
  secret);
* admins see, submit anywhere and cancel every job.

Errors are JSON ``{"detail": "...", "field": "...", "errors": [...]}``: a malformed spec or query
answers 422 naming the field path, an unknown queue 422 and an unknown template 404 naming it, a
request that can never be admitted (over every quota, or larger than any cluster) 409 with the
reason, no or a bad token 401, a body that is not decodable JSON 400, one over the size limit
413. Bad input never yields a 500. Every request logs one record (logger
``recforge.platform.access``) whose ``extra`` fields are user, group, method, path, status and
duration_ms; ``recforge platform serve`` writes each as one JSON line.
"""

import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Annotated, Any, Self

import sqlalchemy as sa
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recforge.platform.resources import Cluster, Group, PlatformConfig, Queue
from recforge.platform.scheduler import UnknownJob
from recforge.platform.service import PermissionDenied, PlatformService, SubmitError
from recforge.platform.specs import JobSpec, SpecError, format_validation_error, parse_job_spec
from recforge.platform.states import ACTIVE_STATES, TERMINAL_STATES, JobState
from recforge.platform.store import JobNotFound, JobRecord, Store, User, hash_token
from recforge.platform.templates import Template, render

__all__ = [
    "ADMIN_GROUP",
    "ADMIN_USER",
    "ApiError",
    "TokenAuth",
    "create_app",
]

log = logging.getLogger("recforge.platform.api")
access_log = logging.getLogger("recforge.platform.access")

ADMIN_USER = "admin"
ADMIN_GROUP = "admin"
# Job ids are INTEGER columns: 32-bit on PostgreSQL. Larger ids cannot exist, and passing one
# to the database would fail there (not a client error), so requests naming one answer 422.
MAX_JOB_ID = 2**31 - 1
_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"


# --------------------------------------------------------------------------------- errors
class ApiError(Exception):
    """An error answered as ``{"detail", "field"}`` with an HTTP status."""

    def __init__(self, status: int, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field


class ErrorOut(BaseModel):
    """Every error body: a human-readable ``detail``, the offending ``field`` when known."""

    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def _error(status: int, detail: str, field: str | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "field": field}
    body.update(extra)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _not_found(job_id: int) -> ApiError:
    return ApiError(404, f"no job with id {job_id}", field="job_id")


# --------------------------------------------------------------------------------- auth
class TokenAuth:
    """Resolves bearer tokens to users: the bootstrap admin token, then the store's tokens.

    Successful store look-ups are cached for ``cache_seconds`` (keyed by the token's digest) to
    save a database read per request; a revoked token therefore keeps working for at most that
    long. ``cache_seconds=0`` disables the cache.
    """

    def __init__(
        self,
        store: Store,
        *,
        admin_token: str | None = None,
        cache_seconds: float = 5.0,
        max_cached: int = 10_000,
    ) -> None:
        self.store = store
        # Keep only the digest: compare digests in constant time, never the raw secret.
        self._admin_digest = hash_token(admin_token) if admin_token else None
        self.cache_seconds = cache_seconds
        self.max_cached = max_cached
        self._cache: dict[str, tuple[User, float]] = {}

    def __call__(self, token: str) -> User | None:
        digest = hash_token(token)
        if self._admin_digest is not None and hmac.compare_digest(digest, self._admin_digest):
            return User(ADMIN_USER, ADMIN_GROUP, True)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        user = self.store.authenticate(token)
        if user is not None and self.cache_seconds > 0:
            if len(self._cache) >= self.max_cached:
                self._cache.clear()  # crude bound; a miss only costs one read
            self._cache[digest] = (user, now + self.cache_seconds)
        return user


Authenticator = Callable[[str], User | None]
_bearer = HTTPBearer(auto_error=False, description="a platform token: Bearer <token>")


# --------------------------------------------------------------------------------- models
class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @classmethod
    def of(cls, record: Any) -> Self:
        """This model from the same-named attributes of a store record (other ones ignored)."""
        return cls.model_validate(record, from_attributes=True)


class JobOut(_Out):
    """A job as the API shows it (its rendered spec, state and timestamps)."""

    id: int
    name: str
    owner: str
    group: str
    queue: str
    state: JobState
    reason: str
    attempts: int
    cluster: str | None
    admission: dict[str, Any] | None
    cancel_requested: bool
    not_before: float | None
    created_at: float
    updated_at: float
    admitted_at: float | None
    started_at: float | None
    finished_at: float | None
    spec: dict[str, Any]


class JobPage(_Out):
    """One page of jobs, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[JobOut]
    next_cursor: str | None


class EventOut(_Out):
    """One recorded state change of a job."""

    id: int
    from_state: JobState | None
    to_state: JobState
    reason: str
    version: int
    at: float


class ShortageOut(_Out):
    """A resource the job cannot get now, what it needs and what is free to it, and why."""

    resource: str
    needed: float
    available: float
    limited_by: str
    cluster: str | None = None


class WhyOut(_Out):
    """Why a job is where it is; for a pending job, what blocks it and its place in line."""

    job_id: int
    state: JobState
    reason: str
    queue: str
    queue_position: int | None = Field(
        default=None,
        description="1-based position among the queue's pending jobs (None if not pending)",
    )
    blocking: list[ShortageOut] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)


class LogsOut(_Out):
    """The last ``tail`` lines of one replica's output."""

    job_id: int
    replica: int
    tail: int
    text: str


class TemplateSubmission(BaseModel):
    """Submit a job rendered from an admin-owned template with the user's values."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(pattern=_NAME_PATTERN)
    values: dict[str, Any] = Field(default_factory=dict)


class TokenIn(BaseModel):
    """Issue a token for ``user``; the user is created in ``group`` if new."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(pattern=_NAME_PATTERN)
    group: str | None = Field(None, pattern=_NAME_PATTERN)
    admin: bool = False
    label: str = Field("", max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")


class TokenOut(_Out):
    """A freshly issued token: shown once, only its hash is stored."""

    user: str
    group: str
    admin: bool
    token: str


class WhoAmI(_Out):
    user: str
    group: str
    admin: bool


class Health(_Out):
    status: str
    store: str


# --------------------------------------------------------------------------------- access log
_ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413.

    A declared Content-Length is checked before anything is read; a body sent without one is
    counted as it arrives and cut off at the limit (FastAPI then answers 400, as for any body
    it cannot read).
    """

    def __init__(self, app: _ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = _error(
                        413, f"request body of {declared} bytes exceeds {self.max_bytes} bytes"
                    )
                    await response(scope, receive, send)
                    return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        await self.app(scope, counted, send)


class AccessLog:
    """ASGI middleware: one JSON line per HTTP request (user, group, path, status, duration)."""

    def __init__(self, app: _ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            user = scope.get("state", {}).get("user")
            fields = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "user": getattr(user, "name", None),
                "group": getattr(user, "group", None),
            }
            # The fields go in ``extra`` so a JSON formatter (``serve`` installs one) writes
            # them as top-level keys of the request's one log line.
            access_log.info(
                "%s %s -> %d (%.1f ms)",
                fields["method"],
                fields["path"],
                status,
                fields["duration_ms"],
                extra=fields,
            )


# --------------------------------------------------------------------------------- app
@dataclass
class _Ctx:
    service: PlatformService
    store: Store
    auth: Authenticator


def _ctx(request: Request) -> _Ctx:
    return request.app.state.ctx  # type: ignore[no-any-return]


def current_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The authenticated caller (401 without a known bearer token)."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")
    user = _ctx(request).auth(creds.credentials)
    if user is None:
        raise ApiError(401, "unknown or revoked token")
    request.state.user = user  # for the access log
    return user


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The caller, who must be an admin (403 otherwise)."""
    if not user.is_admin:
        raise ApiError(403, f"user {user.name!r} is not an admin; this needs an admin token")
    return user


UserDep = Annotated[User, Depends(current_user)]
AdminDep = Annotated[User, Depends(admin_user)]
JobId = Annotated[int, PathParam(ge=1, le=MAX_JOB_ID, description="job id")]


_CONFIG_KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "clusters": ("cluster", Cluster),
    "groups": ("group", Group),
    "queues": ("queue", Queue),
}


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
    ``RECFORGE_ADMIN_TOKEN`` environment variable, and a 5 s cache of store look-ups).
    Request bodies over ``max_body_bytes`` (default 1 MiB) are refused with 413.
    """
    store: Store = service.store
    if auth is None:
        auth = TokenAuth(store, admin_token=admin_token or os.environ.get("RECFORGE_ADMIN_TOKEN"))
    ctx = _Ctx(service=service, store=store, auth=auth)
    common: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut, "description": "the body is not decodable JSON"},
        413: {"model": ErrorOut, "description": "the body is too large"},
        401: {"model": ErrorOut, "description": "missing or unknown token"},
        422: {"model": ErrorOut, "description": "malformed request; names the field"},
    }
    app = FastAPI(
        title=title,
        version="1",
        description=__doc__,
        responses=common,
    )
    app.state.ctx = ctx
    # Added last = outermost: the access log also records requests refused for their size.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # type: ignore[arg-type]
    app.add_middleware(AccessLog)  # type: ignore[arg-type]
    _install_error_handlers(app)

    def visible_job(user: User, job_id: int) -> JobRecord:
        try:
            job = store.get_job(job_id)
        except JobNotFound:
            raise _not_found(job_id) from None
        if not user.is_admin and job.group != user.group:
            raise _not_found(job_id)  # same answer as a missing job: ids do not leak
        return job

    # -- health ------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, tags=["meta"],
             responses={503: {"model": ErrorOut, "description": "the store does not answer"}})
    def healthz() -> Health | JSONResponse:
        """Liveness plus a trivial store query (503 if the database does not answer)."""
        try:
            store.last_event_id()
        except Exception as exc:  # any database failure means "unhealthy", not a crash
            log.warning("health check: store failed: %s", exc)
            return _error(503, f"store unavailable: {type(exc).__name__}")
        return Health(status="ok", store=store.dialect)

    @app.get("/whoami", response_model=WhoAmI, tags=["meta"])
    def whoami(user: UserDep) -> WhoAmI:
        return WhoAmI(user=user.name, group=user.group, admin=user.is_admin)

    # -- jobs --------------------------------------------------------------------------------
    submit_schema = {
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/JobSpec"},
                            {"$ref": "#/components/schemas/TemplateSubmission"},
                        ]
                    }
                }
            }
        }
    }

    @app.post(
        "/jobs",
        status_code=201,
        response_model=JobOut,
        tags=["jobs"],
        openapi_extra=submit_schema,
        responses={
            404: {"model": ErrorOut, "description": "unknown template"},
            409: {"model": ErrorOut, "description": "can never be admitted (quota/capacity)"},
        },
    )
    def submit_job(
        user: UserDep,
        body: Annotated[dict[str, Any], Body(description="a JobSpec or {template, values}")],
    ) -> JobOut:
        """Submit a job spec, or ``{"template": name, "values": {...}}`` to render a template."""
        job_id = _submit(ctx, user, body)
        return JobOut.of(store.get_job(job_id))

    @app.get("/jobs", response_model=JobPage, tags=["jobs"],
             responses={403: {"model": ErrorOut, "description": "another group's jobs"}})
    def list_jobs(
        user: UserDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[
            str | None,
            Query(pattern=r"^[0-9]{1,10}$", description="next_cursor of the previous page"),
        ] = None,
        state: Annotated[list[JobState] | None, Query()] = None,
        queue: Annotated[str | None, Query(pattern=_NAME_PATTERN)] = None,
        group: Annotated[
            str | None, Query(pattern=_NAME_PATTERN, description="admins only; others: own")
        ] = None,
    ) -> JobPage:
        """Jobs of the caller's group (admins: all, or ``group``), newest first, paginated."""
        if not user.is_admin:
            if group is not None and group != user.group:
                raise ApiError(403, f"you may list only your group's jobs ({user.group!r})",
                               field="group")
            group = user.group
        if cursor is not None and int(cursor) > MAX_JOB_ID:
            cursor = None  # every id is below it: the same page as no cursor
        page = store.list_jobs(limit=limit, cursor=cursor, states=state, queue=queue,
                               group=group)
        return JobPage(items=[JobOut.of(j) for j in page.items], next_cursor=page.next_cursor)

    @app.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"],
             responses={404: {"model": ErrorOut}})
    def get_job(user: UserDep, job_id: JobId) -> JobOut:
        return JobOut.of(visible_job(user, job_id))

    @app.get("/jobs/{job_id}/why", response_model=WhyOut, tags=["jobs"],
             responses={404: {"model": ErrorOut}})
    def why(user: UserDep, job_id: JobId) -> WhyOut:
        """Why the job is in its state; for a pending job the blocking resources and its place
        in the queue."""
        job = visible_job(user, job_id)
        return _why(ctx, job)

    @app.get("/jobs/{job_id}/logs", response_model=LogsOut, tags=["jobs"],
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    def logs(
        user: UserDep,
        job_id: JobId,
        replica: Annotated[int, Query(ge=0, le=100_000)] = 0,
        tail: Annotated[int, Query(ge=1, le=100_000)] = 100,
    ) -> LogsOut:
        """The last ``tail`` lines of replica ``replica`` (0 is the master, or the first
        worker)."""
        job = visible_job(user, job_id)
        text = _logs(ctx, job, replica, tail)
        return LogsOut(job_id=job.id, replica=replica, tail=tail, text=text)

    @app.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"],
              responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    def cancel(user: UserDep, job_id: JobId) -> JobOut:
        """Request cancellation; a finished job answers 409 naming its final state."""
        job = visible_job(user, job_id)
        _cancel(ctx, user, job)
        return JobOut.of(store.get_job(job_id))

    @app.get("/jobs/{job_id}/events", response_model=list[EventOut], tags=["jobs"],
             responses={404: {"model": ErrorOut}})
    def events(user: UserDep, job_id: JobId) -> list[EventOut]:
        visible_job(user, job_id)
        return [EventOut.of(e) for e in store.events(job_id)]

    # -- clusters, groups, queues -------------------------------------------------------------
    def add_config_routes(path: str, kind: str, model: type[BaseModel]) -> None:
        list_model = list[model]  # type: ignore[valid-type]

        def get_items(user: UserDep) -> list[Any]:
            return _config_items(store, kind, model)

        def put_items(
            user: AdminDep,
            items: Annotated[list_model, Body()],  # type: ignore[valid-type]
        ) -> list[Any]:
            _replace_config(ctx, path, list(items))
            return _config_items(store, kind, model)

        get_items.__doc__ = f"Every {kind} definition."
        put_items.__doc__ = (
            f"Replace every {kind} definition (admin only); the whole configuration must stay "
            "consistent (409 naming the broken reference otherwise)."
        )
        app.add_api_route(f"/{path}", get_items, methods=["GET"], response_model=list_model,
                          tags=["config"], name=f"get_{path}")
        app.add_api_route(
            f"/{path}", put_items, methods=["PUT"], response_model=list_model, tags=["config"],
            name=f"put_{path}",
            responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
        )

    for path, (kind, model) in _CONFIG_KINDS.items():
        add_config_routes(path, kind, model)

    # -- tokens --------------------------------------------------------------------------------
    @app.post("/tokens", response_model=TokenOut, status_code=201, tags=["meta"],
              responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}})
    def create_token(admin: AdminDep, body: TokenIn) -> TokenOut:
        """Issue a token for a user, creating the user in ``group`` if new (admin only)."""
        if body.group is not None and store.get_user(body.user) is None:
            known = set(store.get_config("group"))
            if body.group not in known and not (body.admin and body.group == ADMIN_GROUP):
                raise ApiError(
                    422,
                    f"unknown group {body.group!r}; known groups: {sorted(known)}"
                    + (f" (or {ADMIN_GROUP!r} for an admin)" if not body.admin else ""),
                    field="group",
                )
        u, token = issue_token(store, body.user, group=body.group, admin=body.admin,
                               label=body.label)
        return TokenOut(user=u.name, group=u.group, admin=u.is_admin, token=token)

    _install_template_routes(app, ctx)
    _install_openapi(app)
    return app


# --------------------------------------------------------------------------------- glue
def issue_token(
    store: Store, user: str, *, group: str | None, admin: bool = False, label: str = ""
) -> tuple[User, str]:
    """Create ``user`` in ``group`` if new, then issue a token; ApiError 409/422 on conflicts."""
    if user == ADMIN_USER and (group not in (None, ADMIN_GROUP) or not admin):
        raise ApiError(
            422,
            f"user name {ADMIN_USER!r} is reserved for an admin in group {ADMIN_GROUP!r} "
            "(the identity of the bootstrap token)",
            field="user",
        )
    existing = store.get_user(user)
    if existing is None:
        if not group:
            raise ApiError(422, f"user {user!r} does not exist: give a group to create it",
                           field="group")
        try:
            existing = store.add_user(user, group, is_admin=admin)
        except ValueError as exc:  # created concurrently
            raise ApiError(409, str(exc), field="user") from None
    elif group is not None and group != existing.group:
        raise ApiError(
            409, f"user {user!r} is in group {existing.group!r}, not {group!r}", field="group"
        )
    elif admin and not existing.is_admin:
        raise ApiError(409, f"user {user!r} exists and is not an admin", field="admin")
    return existing, store.issue_token(user, label=label)


def _config_items(store: Store, kind: str, model: type[BaseModel]) -> list[Any]:
    return [model.model_validate(body) for body in store.get_config(kind).values()]


def _current_config(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {
        path: list(store.get_config(kind).values()) for path, (kind, _) in _CONFIG_KINDS.items()
    }


def _replace_config(ctx: _Ctx, path: str, items: list[Any]) -> None:
    """Validate the whole config with ``path`` replaced by ``items``, then store and reload."""
    kind, _ = _CONFIG_KINDS[path]
    current = _current_config(ctx.store)
    current[path] = [i.model_dump(mode="json") for i in items]
    try:
        PlatformConfig.model_validate(current)
    except ValidationError as exc:
        raise ApiError(409, format_validation_error(exc, "platform config", f"after PUT /{path}"),
                       field=path) from None
    _refuse_orphaning(ctx, path, items)
    new_names = {i.name for i in items}
    for name in ctx.store.get_config(kind):
        if name not in new_names:
            ctx.store.delete_config(kind, name)
    for item in items:
        ctx.store.put_config(kind, item.name, item.model_dump(mode="json"))
    _reload_config(ctx)


_UNFINISHED = [s for s in JobState if s not in TERMINAL_STATES]


def _refuse_orphaning(ctx: _Ctx, path: str, items: list[Any]) -> None:
    """409 if the change would strand unfinished jobs.

    A removed (or re-grouped) queue with unfinished jobs, or a removed cluster with jobs
    admitted there, would make the service fail those jobs on reload; the admin must let them
    finish or cancel them first.
    """
    store = ctx.store
    if path == "queues":
        new = {q.name: q for q in items}
        for name, body in store.get_config("queue").items():
            changed = name not in new or new[name].group != body.get("group")
            if changed:
                page = store.list_jobs(limit=5, states=_UNFINISHED, queue=name)
                if page.items:
                    ids = [j.id for j in page.items]
                    what = "remove" if name not in new else "move to another group"
                    raise ApiError(
                        409,
                        f"cannot {what} queue {name!r}: it has unfinished jobs (e.g. {ids}); "
                        "cancel them or let them finish first",
                        field="queues",
                    )
    elif path == "clusters":
        gone = set(store.get_config("cluster")) - {c.name for c in items}
        if gone:
            busy = sorted(
                {j.cluster for j in store.iter_jobs(ACTIVE_STATES) if j.cluster in gone}
            )
            if busy:
                raise ApiError(
                    409,
                    f"cannot remove cluster(s) {busy}: jobs are admitted or running there",
                    field="clusters",
                )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.detail, exc.field)

    @app.exception_handler(SpecError)
    async def _spec_error(_: Request, exc: SpecError) -> JSONResponse:
        return _error(422, str(exc), _first_field(str(exc)))

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # Only user-supplied numbers can overflow here (e.g. cpu=1e305 in a spec): bad input.
        return _error(422, f"a number in the request is out of range: {exc}")

    @app.exception_handler(sa.exc.DataError)
    async def _data_error(_: Request, exc: sa.exc.DataError) -> JSONResponse:
        # The database refused a value (e.g. a NUL character in a PostgreSQL text column, a
        # number out of a column's range): the request carried it, so it is a client error.
        log.warning("database refused a request value: %s", exc.orig)
        return _error(422, f"a value in the request cannot be stored: {exc.orig}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = []
        lines = ["invalid request:"]
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()))
            errs.append({"loc": loc, "msg": str(e.get("msg", "")), "type": e.get("type", "")})
            lines.append(f"  - {loc}: {e.get('msg', '')}")
        field = errs[0]["loc"] if errs else None
        return _error(422, "\n".join(lines), field, errors=errs)


def _first_field(message: str) -> str | None:
    """The first ``  - path: msg`` field path of a spec error, if any."""
    for line in message.splitlines():
        line = line.strip()
        if line.startswith("- ") and ":" in line:
            return line[2:].split(":", 1)[0]
    return None


def _install_openapi(app: FastAPI) -> None:
    """Add the JobSpec and TemplateSubmission schemas that POST /jobs refers to."""
    from pydantic.json_schema import models_json_schema

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        _, defs = models_json_schema(
            [(JobSpec, "validation"), (TemplateSubmission, "validation")],
            ref_template="#/components/schemas/{model}",
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, sub in defs.get("$defs", {}).items():
            comps.setdefault(name, sub)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]




# --------------------------------------------------------------------------------- service glue
def _submit(ctx: _Ctx, user: User, body: dict[str, Any]) -> int:
    """Validate in the order that gives the most precise status, then let the service store it.

    The service refuses every bad submission with one :class:`SubmitError`; checking the spec,
    template and queue here first lets the API tell 422 (malformed), 404 (unknown template),
    403 (another group's queue) and 409 (can never be admitted) apart.
    """
    if "template" in body:
        try:
            ref = TemplateSubmission.model_validate(body)
        except ValidationError as exc:
            raise SpecError(format_validation_error(exc, "template submission", "body")) from None
        spec = render(_visible_template(ctx, user, ref.template), ref.values)
    else:
        spec = parse_job_spec(body, source="body")
    queues = {q.name: q for q in ctx.service.config.queues}
    queue = queues.get(spec.queue)
    if queue is None:
        raise ApiError(
            422, f"unknown queue {spec.queue!r}; known queues: {sorted(queues)}", field="queue"
        )
    if not user.is_admin and queue.group != user.group:
        raise ApiError(
            403,
            f"queue {queue.name!r} belongs to group {queue.group!r}; you are in "
            f"{user.group!r}",
            field="queue",
        )
    try:
        return ctx.service.submit(user, spec, source="body")
    except PermissionDenied as exc:
        raise ApiError(403, str(exc), field="queue") from None
    except SubmitError as exc:
        # What is left after the checks above: the gang can never be admitted (bigger than
        # every cluster or quota the queue's group may use, or unknown resource names).
        raise ApiError(409, str(exc)) from None


def _cancel(ctx: _Ctx, user: User, job: JobRecord) -> None:
    if job.state in TERMINAL_STATES:
        raise ApiError(409, f"job {job.id} already finished: {job.state.value} ({job.reason})")
    try:
        ctx.service.cancel(user, job.id)
    except PermissionDenied as exc:
        raise ApiError(403, str(exc)) from None
    except JobNotFound:
        raise _not_found(job.id) from None


def _service_lock(service: Any) -> AbstractContextManager[Any]:
    # The scheduler is not thread-safe and the loop thread mutates it under the service's lock;
    # a read-only explain must hold it too (see the report: a public explain_details is wanted).
    lock = getattr(service, "_lock", None)
    return lock if lock is not None else nullcontext()


def _why(ctx: _Ctx, job: JobRecord) -> WhyOut:
    service = ctx.service
    out = WhyOut(job_id=job.id, state=job.state, reason=job.reason, queue=job.queue)
    key = str(job.id)
    expl = None
    with _service_lock(service):
        if job.state in (JobState.PENDING, JobState.ADMITTED) and key in service.scheduler:
            try:
                expl = service.scheduler.explain(key, service.clock())
            except UnknownJob:  # left the scheduler between the check and the call
                expl = None
    if expl is not None:
        out.reason = expl.message
        out.queue_position = expl.position
        out.blocking = [
            ShortageOut(
                resource=s.resource,
                needed=s.needed,
                available=s.available,
                limited_by=s.limited_by,
                cluster=v.cluster,
            )
            for v in expl.clusters
            for s in v.shortages
        ]
        out.detail = {
            "scheduler_state": expl.state,
            "queue_length": expl.queue_length,
            "waited_seconds": expl.waited_seconds,
            "size": expl.size,
            "effective_size": expl.effective_size,
            "starving": expl.starving,
            "starving_in_seconds": expl.starving_in_seconds,
            "reserved_cluster": expl.reserved_cluster,
            "clusters": {
                v.cluster: {"fits_now": v.fits_now, "claimed_by": list(v.claimed_by)}
                for v in expl.clusters
            },
        }
    else:
        try:
            out.reason = service.explain(job.id)
        except JobNotFound:
            raise _not_found(job.id) from None
    return out


def _logs(ctx: _Ctx, job: JobRecord, replica: int, tail: int) -> str:
    if job.handle is None:
        raise ApiError(
            409, f"job {job.id} is {job.state.value} and was never launched: no logs yet"
        )
    try:
        return ctx.service.logs(job.id, replica, tail)
    except KeyError:
        raise ApiError(404, f"job {job.id} has no replica {replica}", field="replica") from None
    except OSError as exc:
        raise ApiError(409, f"logs of job {job.id} replica {replica} unreadable: {exc}") from None


def _reload_config(ctx: _Ctx) -> None:
    ctx.service.reload_config()


# --------------------------------------------------------------------------------- templates
def _visible_template(ctx: _Ctx, user: User, name: str) -> Template:
    """Users see templates owned by their group or by admins; others answer 404."""
    stored = ctx.store.get_template(name)
    if stored is None or not _may_see_template(user, stored["owner"]):
        raise ApiError(404, f"unknown template {name!r}", field="template")
    return Template.model_validate(stored["body"])


def _may_see_template(user: User, owner: str) -> bool:
    return user.is_admin or owner in (user.group, ADMIN_GROUP)


TemplateName = Annotated[str, PathParam(pattern=_NAME_PATTERN, description="template name")]


def _install_template_routes(app: FastAPI, ctx: _Ctx) -> None:
    store = ctx.store

    @app.get("/templates", response_model=list[Template], tags=["templates"])
    def list_templates(user: UserDep) -> list[Template]:
        """Templates of the caller's group and admin-owned ones (admins: all)."""
        return [
            Template.model_validate(t["body"])
            for t in store.list_templates()
            if _may_see_template(user, t["owner"])
        ]

    @app.get("/templates/{name}", response_model=Template, tags=["templates"],
             responses={404: {"model": ErrorOut}})
    def get_template(user: UserDep, name: TemplateName) -> Template:
        return _visible_template(ctx, user, name)

    @app.post("/templates", response_model=Template, status_code=201, tags=["templates"],
              responses={403: {"model": ErrorOut}})
    def put_template(admin: AdminDep, template: Template) -> Template:
        """Create or replace a template (admin only); ``owner`` is the group that may use it
        (``admin``: everybody)."""
        if not re.fullmatch(_NAME_PATTERN, template.owner):
            raise ApiError(422, f"template owner must be a group name, got {template.owner!r}",
                           field="owner")
        store.put_template(template.name, template.owner, template.model_dump(mode="json"))
        return template

    @app.delete("/templates/{name}", status_code=204, tags=["templates"],
                responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}})
    def delete_template(admin: AdminDep, name: TemplateName) -> Response:
        """Delete a template (admin only); jobs already rendered from it are unaffected."""
        if not store.delete_template(name):
            raise ApiError(404, f"unknown template {name!r}", field="name")
        return Response(status_code=204)
