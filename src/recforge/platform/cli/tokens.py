"""Token commands: create, list, revoke; and whoami."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from recforge.platform.cli.common import (
    JsonOpt,
    TokenOpt,
    UrlOpt,
    ago,
    app,
    call,
    fail,
    print_json,
    table,
    token_app,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``"3600"``, ``"90m"``, ``"12h"``, ``"30d"`` as seconds; exits 2 naming the value."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None:
        fail(f"--ttl {text!r}: use seconds or a number with s, m, h or d (e.g. 30d)", 2)
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _open_store(url: str) -> Any:
    from recforge.platform.store import Store

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return Store(url)
    except Exception as exc:  # bad URL or unreachable database: say which
        fail(f"cannot open store {url!r}: {exc}", 2)


StoreOpt = Annotated[
    str | None,
    typer.Option(help="Work on this store URL directly (bootstrap, no server needed); otherwise "
                 "ask the server.", show_default=False),
]


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="User name (created if new).")],
    group: Annotated[str | None, typer.Option(help="The user's group (needed if new).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make a new user an admin.")] = False,
    label: Annotated[str, typer.Option(help="A note stored with the token.")] = "",
    ttl: Annotated[
        str, typer.Option(help="Lifetime: seconds, or e.g. 12h, 30d (max 365d).")
    ] = "30d",
    store: StoreOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a bearer token (printed once; only its hash is stored)."""
    seconds = parse_ttl(ttl)
    if store is not None:
        from recforge.platform.runtime.accounts import issue_token
        from recforge.platform.runtime.errors import ServiceError

        st = _open_store(store)
        try:
            u, secret, info = issue_token(st, user, group=group, admin=admin, label=label,
                                          ttl_seconds=seconds)  # fmt: skip
        except ServiceError as exc:
            fail(exc.detail)
        finally:
            st.close()
        out: dict[str, Any] = {"user": u.name, "group": u.group, "admin": u.is_admin,
                               "token": secret,
               "token_id": info.token_id, "expires_at": info.expires_at}  # fmt: skip
    else:
        out = call(url, token, lambda c: c.create_token(user, group=group, admin=admin,
                                                        label=label, ttl_seconds=seconds))
    if as_json:
        print_json(out)
    else:
        typer.echo(out["token"])
        typer.echo(f"token {out['token_id']} for {out['user']} (group {out['group']}"
                   f"{', admin' if out['admin'] else ''}), expires {_when(out['expires_at'])}; "
                   "it is shown only once", err=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option(help="Only this user's (admins).")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your tokens (admins: anyone's), without their secrets."""
    items = call(url, token, lambda c: c.list_tokens(user))
    if as_json:
        print_json(items)
        return
    table(["token id", "user", "label", "created", "expires"],
          [[t["token_id"], t["user"], t["label"], ago(t["created_at"]), _when(t["expires_at"])]
           for t in items])  # fmt: skip


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok-...), see 'token list'.")],
    store: StoreOpt = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token (yours, or anyone's as an admin); it stops working at once."""
    if store is not None:
        st = _open_store(store)
        try:
            info = st.get_token(token_id)
            if info is None or not st.revoke_token(token_id):
                fail(f"no token {token_id!r}")
            st.audit("admin", "revoke-token", info.user, {"token_id": token_id, "via": "store"})
        finally:
            st.close()
        out = {"token_id": info.token_id, "user": info.user}
    else:
        out = call(url, token, lambda c: c.revoke_token(token_id))
    if as_json:
        print_json(out)
    else:
        typer.echo(f"token {out['token_id']} of {out['user']} revoked")


@app.command("whoami")
def whoami_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The user the token belongs to."""
    me = call(url, token, lambda c: c.whoami())
    if as_json:
        print_json(me)
    else:
        typer.echo(f"{me['user']} (group {me['group']}{', admin' if me['admin'] else ''})")
