"""Tokens: issue (admins for anyone, users for themselves), list (own; admins all), revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam

from recforge.platform.api.auth import UserDep
from recforge.platform.api.routes import ServiceDep, err
from recforge.platform.api.schemas import TokenIn, TokenInfoOut, TokenOut
from recforge.platform.model.names import NAME_PATTERN

router = APIRouter(tags=["tokens"])
TokenId = Annotated[str, PathParam(pattern=r"^tok-[0-9a-f]{16}$", description="a token's id")]


@router.post("/tokens", response_model=TokenOut, status_code=201, responses=err(403, 409))
def create_token(service: ServiceDep, actor: UserDep, body: TokenIn) -> TokenOut:
    """Issue a token; admins for anyone (creating the user in ``group`` if new), users for
    themselves. The secret is shown once."""
    user, secret, info = service.issue_token(
        actor, body.user, group=body.group, admin=body.admin, label=body.label,
        ttl_seconds=body.ttl_seconds,
    )  # fmt: skip
    return TokenOut(user=user.name, group=user.group, admin=user.is_admin, token=secret,
                    token_id=info.token_id, expires_at=info.expires_at)  # fmt: skip


@router.get("/tokens", response_model=list[TokenInfoOut], responses=err(403))
def list_tokens(
    service: ServiceDep,
    actor: UserDep,
    user: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> list[TokenInfoOut]:
    """Tokens without their secrets: your own (admins: anyone's, or all)."""
    return [TokenInfoOut.of(t) for t in service.tokens(actor, user)]


@router.delete("/tokens/{token_id}", response_model=TokenInfoOut, responses=err(404))
def revoke_token(
    request: Request, service: ServiceDep, actor: UserDep, token_id: TokenId
) -> TokenInfoOut:
    """Revoke a token (its owner or an admin); it stops working at once."""
    info = service.revoke_token(actor, token_id)
    forget = getattr(request.app.state.auth, "forget", None)
    if forget is not None:
        forget()
    return TokenInfoOut.of(info)
