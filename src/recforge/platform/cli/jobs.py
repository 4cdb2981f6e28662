"""Job commands: submit, list, status, why, logs, cancel, events."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from recforge.platform.cli.common import (
    JobIdArg,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    ago,
    app,
    call,
    fail,
    parse_values,
    print_json,
    read_mapping,
    table,
)


@app.command("submit")
def submit_cmd(
    file: Annotated[
        Path | None, typer.Argument(help="Job spec (YAML/JSON); '-' reads stdin.")
    ] = None,
    template: Annotated[str | None, typer.Option(help="Render this template instead.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Template value key=value (repeatable).")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job spec file, or a template with values."""
    if (file is None) == (template is None):
        fail("give a spec FILE or --template NAME (not both)", 2)
    if template is not None:
        values = parse_values(set_)
        job = call(url, token, lambda c: c.submit_template(template, values))
    else:
        assert file is not None
        if set_:
            fail("--set only applies to --template", 2)
        spec = read_mapping(file, "job spec")
        job = call(url, token, lambda c: c.submit(spec))
    if as_json:
        print_json(job)
    else:
        typer.echo(f"submitted job {job['id']} ({job['name']}) to queue {job['queue']}: "
                   f"{job['state']}")


@app.command("list")
def list_cmd(
    state: Annotated[
        list[str] | None, typer.Option(help="Only jobs in this state (repeatable).")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Only jobs of this queue.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of a previous page.")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One page of your group's jobs, newest first."""
    states = [s.upper() for s in state] if state else None
    page = call(
        url, token,
        lambda c: c.list_jobs(limit=limit, cursor=cursor, state=states, queue=queue),
    )
    if as_json:
        print_json(page)
        return
    table(
        ["id", "name", "owner", "queue", "state", "cluster", "created", "reason"],
        [
            [j["id"], j["name"], j["owner"], j["queue"], j["state"], j["cluster"],
             ago(j["created_at"]), j["reason"]]
            for j in page["items"]
        ],
    )
    if page.get("next_cursor"):
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


@app.command("status")
def status_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """A job's state, reason and timestamps."""
    job = call(url, token, lambda c: c.get_job(job_id))
    if as_json:
        print_json(job)
        return
    for key in ("id", "name", "owner", "group", "queue", "state", "reason", "attempts",
                "cluster", "cancel_requested"):
        typer.echo(f"{key:>16}: {job[key]}")
    for key in ("created_at", "admitted_at", "started_at", "finished_at"):
        if job[key] is not None:
            typer.echo(f"{key:>16}: {ago(job[key])}")


@app.command("why")
def why_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
            as_json: JsonOpt = False) -> None:
    """Why a job is pending: what blocks it and where it stands in its queue."""
    why = call(url, token, lambda c: c.why(job_id))
    if as_json:
        print_json(why)
        return
    typer.echo(f"job {why['job_id']} is {why['state']} in queue {why['queue']}: {why['reason']}")
    if why.get("queue_position") is not None:
        typer.echo(f"queue position: {why['queue_position']}")
    for b in why.get("blocking", []):
        where = f" on {b['cluster']}" if b.get("cluster") else ""
        typer.echo(f"  blocked{where}: {b['resource']} needs {b['needed']:g}, "
                   f"{b['available']:g} available (limited by {b['limited_by']})")


@app.command("logs")
def logs_cmd(
    job_id: JobIdArg,
    replica: Annotated[int, typer.Option(min=0, help="Replica index (0 = master).")] = 0,
    tail: Annotated[int, typer.Option(min=1, help="Last N lines.")] = 100,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The last lines of one replica's output."""
    out = call(url, token, lambda c: c.logs(job_id, replica=replica, tail=tail))
    if as_json:
        print_json(out)
    else:
        text = out["text"]
        sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))


@app.command("cancel")
def cancel_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Cancel a job (its replicas are stopped by the service loop)."""
    job = call(url, token, lambda c: c.cancel(job_id))
    if as_json:
        print_json(job)
    else:
        typer.echo(f"job {job['id']}: {job['state']} (cancel requested)")


@app.command("events")
def events_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Every recorded state change of a job."""
    evs = call(url, token, lambda c: c.events(job_id))
    if as_json:
        print_json(evs)
        return
    table(["at", "from", "to", "reason"],
           [[ago(e["at"]), e["from_state"] or "-", e["to_state"], e["reason"]] for e in evs])
