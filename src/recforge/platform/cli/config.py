"""Configuration commands: queues, quotas, clusters, templates, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recforge.platform.cli.common import (
    JsonOpt,
    TokenOpt,
    UrlOpt,
    ago,
    app,
    call,
    print_json,
    read_mapping,
    res,
    table,
)


@app.command("queues")
def queues_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Queues with their group, priority and weight."""
    qs = call(url, token, lambda c: c.get_config("queues"))
    if as_json:
        print_json(qs)
        return
    table(["queue", "group", "priority", "weight"],
           [[q["name"], q["group"], q["priority"], q["weight"]] for q in qs])


@app.command("quotas")
def quotas_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Groups and their per-cluster quotas."""
    groups = call(url, token, lambda c: c.get_config("groups"))
    if as_json:
        print_json(groups)
        return
    rows = []
    for g in groups:
        for q in g["quotas"] or [{"cluster": "-", "nominal": None}]:
            rows.append([g["name"], q["cluster"], res(q.get("nominal")),
                         res(q.get("borrowing_limit")) if q.get("borrowing_limit") else "∞",
                         res(q.get("lending_limit")) if q.get("lending_limit") else "all"])
    table(["group", "cluster", "nominal", "borrowing limit", "lending limit"], rows)


@app.command("clusters")
def clusters_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Clusters with their type and capacity."""
    cs = call(url, token, lambda c: c.get_config("clusters"))
    if as_json:
        print_json(cs)
        return
    table(["cluster", "type", "capacity", "nodes"],
           [[c["name"], c["type"], res(c["capacity"]), len(c.get("nodes") or [])] for c in cs])


@app.command("templates")
def templates_cmd(
    put: Annotated[
        Path | None, typer.Option(help="Create or replace the template in this YAML (admin).")
    ] = None,
    delete: Annotated[str | None, typer.Option(help="Delete this template (admin).")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List job templates; admins add (--put FILE) or remove (--delete NAME) them."""
    if put is not None:
        body = read_mapping(put, "template")
        t = call(url, token, lambda c: c.put_template(body))
        if as_json:
            print_json(t)
        else:
            typer.echo(f"template {t['name']} stored")
        return
    if delete is not None:
        call(url, token, lambda c: c.delete_template(delete))
        if not as_json:
            typer.echo(f"template {delete} deleted")
        return
    ts = call(url, token, lambda c: c.templates())
    if as_json:
        print_json(ts)
        return
    table(
        ["template", "owner", "parameters", "description"],
        [[t["name"], t.get("owner"), ", ".join(p["name"] for p in t.get("parameters", [])),
          t.get("description", "")] for t in ts],
    )


@app.command("audit")
def audit_cmd(
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 100,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The audit log of admin actions, newest first (admin)."""
    page = call(url, token, lambda c: c.audit(limit=limit, cursor=cursor, action=action))
    if as_json:
        print_json(page)
        return
    table(["id", "when", "actor", "action", "target", "detail"],
          [[e["id"], ago(e["at"]), e["actor"], e["action"], e["target"], e["detail"]]
           for e in page["items"]])  # fmt: skip
    if page.get("next_cursor"):
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)
