"""Schedule commands: ``recforge platform schedule create|list|show|suspend|resume|backfill|
instants|events|delete``."""

from __future__ import annotations

from datetime import UTC, datetime
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
    print_json,
    read_mapping,
    table,
)

schedule_app = typer.Typer(
    help="Schedules of DAGs and jobs: once or on cron, with backfill.", no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")
IdArg = Annotated[int, typer.Argument(help="Schedule id.", min=1)]


def load_schedule_file(path: Path) -> dict[str, Any]:
    """A schedule file, with ``dag:``/``job:`` given as a file name (relative to the schedule
    file) read in: one DAG file serves ``dag submit`` and its schedule alike."""
    spec = read_mapping(path, "schedule")
    for key in ("dag", "job"):
        if isinstance(spec.get(key), str):
            target = Path(spec[key])
            if not target.is_absolute() and str(path) != "-":
                target = path.parent / target
            spec[key] = read_mapping(target, f"schedule {key}")
    return spec


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def _say(rec: dict[str, Any]) -> None:
    spec = rec["schedule"]
    when = f"cron {spec['cron']!r}" if spec.get("cron") else f"at {spec['at']}"
    target = "DAG" if spec.get("dag") else "job"
    typer.echo(f"schedule {rec['id']} ({rec['name']}) of {rec['owner']}: {rec['state']}, "
               f"{target} {when} in {spec['timezone']}, concurrency {spec['concurrency']}, "
               f"next {_iso(rec['next_at']) or '-'}")  # fmt: skip


@schedule_app.command("create")
def schedule_create(
    file: Annotated[Path, typer.Argument(help="Schedule (YAML/JSON); '-' reads stdin.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule from a file (cron or at; a dag or a job, inline or a file name)."""
    spec = load_schedule_file(file)
    rec = call(url, token, lambda c: c.create_schedule(spec))
    if as_json:
        print_json(rec)
    else:
        _say(rec)


@schedule_app.command("list")
def schedule_list(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Your group's schedules."""
    recs = call(url, token, lambda c: c.list_schedules())
    if as_json:
        print_json(recs)
        return
    table(["id", "name", "owner", "state", "when", "next"],
          [[r["id"], r["name"], r["owner"], r["state"],
            r["schedule"].get("cron") or r["schedule"].get("at"), _iso(r["next_at"])]
           for r in recs])  # fmt: skip


@schedule_app.command("show")
def schedule_show(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None,
                  as_json: JsonOpt = False) -> None:  # fmt: skip
    """A schedule and its latest instants."""
    rec = call(url, token, lambda c: c.get_schedule(schedule_id))
    if as_json:
        print_json(rec)
        return
    _say(rec)
    _instants(call(url, token, lambda c: c.schedule_instants(schedule_id, limit=20)))


def _instants(items: list[dict[str, Any]]) -> None:
    table(["instant", "state", "run", "outcome", "backfill", "reason"],
          [[_iso(i["instant"]), i["state"],
            f"{i['run_kind']} {i['run_id']}" if i["run_id"] is not None else "",
            i["outcome"] or "", "yes" if i["backfill"] else "", i["reason"]]
           for i in items])  # fmt: skip


@schedule_app.command("suspend")
def schedule_suspend(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None,
                     as_json: JsonOpt = False) -> None:  # fmt: skip
    """Stop firing (runs going are left alone)."""
    rec = call(url, token, lambda c: c.suspend_schedule(schedule_id, True))
    print_json(rec) if as_json else _say(rec)


@schedule_app.command("resume")
def schedule_resume(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None,
                    as_json: JsonOpt = False) -> None:  # fmt: skip
    """Fire again (instants that came meanwhile: up to the catch-up bound)."""
    rec = call(url, token, lambda c: c.suspend_schedule(schedule_id, False))
    print_json(rec) if as_json else _say(rec)


@schedule_app.command("backfill")
def schedule_backfill(
    schedule_id: IdArg,
    start: Annotated[str, typer.Option(help="ISO 8601 start (no zone: the schedule's).")],
    end: Annotated[str, typer.Option(help="ISO 8601 end, in the past.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue every instant of [START, END] to run one after another."""
    out = call(url, token, lambda c: c.backfill(schedule_id, start, end))
    if as_json:
        print_json(out)
    else:
        typer.echo(f"queued {len(out['recorded'])} instant(s); {len(out['already'])} recorded "
                   "before (not run again)")  # fmt: skip


@schedule_app.command("instants")
def schedule_instants(
    schedule_id: IdArg,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recorded instants, newest first, with their runs."""
    items = call(url, token, lambda c: c.schedule_instants(schedule_id, limit=limit))
    print_json(items) if as_json else _instants(items)


@schedule_app.command("events")
def schedule_events(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None,
                    as_json: JsonOpt = False) -> None:  # fmt: skip
    """What happened to the schedule (created, missed instants, backfills, ...)."""
    items = call(url, token, lambda c: c.schedule_events(schedule_id))
    if as_json:
        print_json(items)
        return
    for e in items:
        typer.echo(f"{ago(e['at']):>10}  {e['message']}")


@schedule_app.command("delete")
def schedule_delete(schedule_id: IdArg, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a schedule (runs it started are left as they are)."""
    call(url, token, lambda c: c.delete_schedule(schedule_id))
    typer.echo(f"schedule {schedule_id} deleted")
