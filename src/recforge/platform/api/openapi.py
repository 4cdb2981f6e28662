"""The OpenAPI document: the API's description (access rules and error statuses, from the one
place each is stated) and the job-spec schemas that ``POST /jobs`` refers to."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from recforge.platform.api.schemas import TemplateSubmission
from recforge.platform.model.access import RULES
from recforge.platform.model.specs import JobSpec

__all__ = ["DESCRIPTION", "install_openapi"]

DESCRIPTION = f"""\
REST API of the recforge job platform.

Authentication: `Authorization: Bearer <token>`. Tokens belong to users, users to one group;
only a token's sha256 is stored, every token expires (30 days unless issued with another
`ttl_seconds`, at most a year) and can be revoked (`DELETE /tokens/{{token_id}}`). The bootstrap
`RECFORGE_ADMIN_TOKEN` authenticates as the built-in admin and is never stored.

Access rules:

{RULES}
Errors are JSON `{{"detail": "...", "field": "...", "errors": [...]}}`: a malformed spec, query or
unknown queue answers 422 naming the field; an unknown template or another group's job 404; a
forbidden action 403 (cancelling a job you did not submit, another group's queue, admin-only
endpoints); a request that can never be admitted (over every quota, or larger than any cluster)
or that conflicts with the current state 409 with the reason; no, an unknown, revoked or expired
token 401; a body that is not decodable JSON 400, one over the size limit 413. Bad input never
yields a 500. Every request logs one JSON line (logger `recforge.platform.access`: user, group,
method, path, status, duration_ms). Admin actions are kept in the audit log (`GET /audit`).
"""


def install_openapi(app: FastAPI) -> None:
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
