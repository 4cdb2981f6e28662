"""DAG commands (``recforge platform dag ...``) and ``recforge platform artifacts``."""

from __future__ import annotations

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
    read_mapping,
    table,
)

dag_app = typer.Typer(help="DAG runs: submit, list, show, events, cancel.", no_args_is_help=True)
app.add_typer(dag_app, name="dag")
RunIdArg = Annotated[int, typer.Argument(help="DAG run id.", min=1)]


def _show(run: dict[str, Any]) -> None:
    typer.echo(f"DAG run {run['id']} ({run['name']}) of {run['owner']}: {run['state']} - "
               f"{run['reason']}")  # fmt: skip
    if run.get("nodes"):
        table(["node", "state", "job", "job state", "reason"],
              [[n["name"], n["state"], n["job_id"] or "", n["job_state"] or "", n["reason"]]
               for n in run["nodes"]])  # fmt: skip


@dag_app.command("submit")
def dag_submit(
    file: Annotated[Path, typer.Argument(help="DAG spec (YAML/JSON); '-' reads stdin.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a DAG spec file; the run starts at once."""
    spec = read_mapping(file, "DAG spec")
    run = call(url, token, lambda c: c.submit_dag(spec))
    if as_json:
        print_json(run)
    else:
        typer.echo(f"submitted DAG run {run['id']} ({run['name']}, {len(run['nodes'])} nodes): "
                   f"{run['state']}")  # fmt: skip


@dag_app.command("list")
def dag_list(
    state: Annotated[list[str] | None, typer.Option(help="Only runs in this state.")] = None,
    schedule: Annotated[int | None, typer.Option(help="Only runs of this schedule id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One page of your group's DAG runs, newest first."""
    states = [s.upper() for s in state] if state else None
    page = call(url, token, lambda c: c.list_dags(limit=limit, cursor=cursor, state=states,
                                                  schedule_id=schedule))  # fmt: skip
    if as_json:
        print_json(page)
        return
    table(["id", "name", "owner", "state", "schedule", "created", "reason"],
          [[r["id"], r["name"], r["owner"], r["state"], r["schedule_id"] or "",
            ago(r["created_at"]), r["reason"]] for r in page["items"]])  # fmt: skip
    if page.get("next_cursor"):
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


@dag_app.command("show")
def dag_show(run_id: RunIdArg, url: UrlOpt = None, token: TokenOpt = None,
             as_json: JsonOpt = False) -> None:  # fmt: skip
    """A run's state and its nodes' states and jobs."""
    run = call(url, token, lambda c: c.get_dag(run_id))
    if as_json:
        print_json(run)
    else:
        _show(run)


@dag_app.command("events")
def dag_events(run_id: RunIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Every move of the run and of its nodes, oldest first."""
    events = call(url, token, lambda c: c.dag_events(run_id))
    if as_json:
        print_json(events)
        return
    table(["at", "node", "from", "to", "job", "reason"],
          [[ago(e["at"]), e["node"] or "(run)", e["from_state"] or "", e["to_state"],
            e["job_id"] or "", e["reason"]] for e in events])  # fmt: skip


@dag_app.command("cancel")
def dag_cancel(run_id: RunIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:  # fmt: skip
    """Cancel a run (running node jobs are stopped; nothing new starts)."""
    run = call(url, token, lambda c: c.cancel_dag(run_id))
    if as_json:
        print_json(run)
    else:
        typer.echo(f"cancelling DAG run {run['id']} ({run['name']}): {run['state']}")


@app.command("artifacts")
def artifacts_cmd(
    run_id: RunIdArg,
    out: Annotated[Path | None, typer.Option("--out", help="Download into DIR/<node>/<name>/.")]
    = None,
    node: Annotated[str | None, typer.Option(help="Only this node's artefacts.")] = None,
    name: Annotated[str | None, typer.Option(help="Only artefacts of this name.")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List a DAG run's artefacts, or download them with --out DIR."""
    arts = [a for a in call(url, token, lambda c: c.artifacts(run_id))
            if (node is None or a["node"] == node) and (name is None or a["name"] == name)]
    if not arts:
        fail(f"DAG run {run_id} has no artefact matching node={node} name={name}", 1)
    if out is not None:
        for a in arts:
            dest = out / a["node"] / a["name"]
            call(url, token, lambda c, a=a, dest=dest: c.download_artifact(
                run_id, a["node"], a["name"], dest))  # fmt: skip
            if not as_json:
                typer.echo(f"{a['node']}/{a['name']}: {len(a['files'])} file(s), {a['bytes']} "
                           f"bytes -> {dest}")  # fmt: skip
    if as_json:
        print_json(arts)
        return
    if out is None:
        table(["node", "name", "node state", "files", "bytes"],
              [[a["node"], a["name"], a["node_state"], len(a["files"]), a["bytes"]]
               for a in arts])  # fmt: skip
    for a in arts:
        for s in a["skipped"]:
            typer.echo(f"left out {a['node']}/{a['name']}/{s['path']}: {s['why']}", err=True)
