"""Service-job and monitoring commands: a service's address and replicas, scale, metrics."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from recforge.platform.cli.common import JobIdArg, JsonOpt, TokenOpt, UrlOpt, app, call, print_json


def _show(view: dict[str, Any]) -> None:
    typer.echo(f"job {view['job_id']} ({view['job_state']}): service {view['state']} at "
               f"{view['address'] or '-'}, {view['ready']} of {view['desired']} replica(s) "
               f"ready (max {view['max_replicas']})")  # fmt: skip
    for r in view.get("replicas", []):
        ready = "ready" if r["ready"] else "not ready"
        typer.echo(f"  replica {r['slot']}: pid {r['pid'] or '-'} port {r['port']} {ready}, "
                   f"{r['restarts']} restart(s)")  # fmt: skip


@app.command("service")
def service_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:  # fmt: skip
    """A service job's stable address and its replicas."""
    view = call(url, token, lambda c: c.service(job_id))
    print_json(view) if as_json else _show(view)


@app.command("scale")
def scale_cmd(
    job_id: JobIdArg,
    replicas: Annotated[int, typer.Argument(min=0, help="The wanted number of replicas.")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Scale a running service job (within its max_replicas)."""
    view = call(url, token, lambda c: c.scale(job_id, replicas))
    print_json(view) if as_json else _show(view)


@app.command("metrics")
def metrics_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
                as_json: JsonOpt = False) -> None:  # fmt: skip
    """A job's latest CPU/memory sample per replica and the anomalies flagged on it."""
    view = call(url, token, lambda c: c.metrics(job_id))
    if as_json:
        print_json(view)
        return
    typer.echo(f"job {view['job_id']} attempt {view['attempt']}")
    for index, series in view["replicas"].items():
        if not series:
            typer.echo(f"  replica {index}: no samples")
            continue
        s = series[-1]
        limit = f" of {s['limit_mib']} MiB" if s["limit_mib"] else ""
        typer.echo(f"  replica {index}: cpu {s['cpu_percent'] or 0:.0f}%, "
                   f"{s['rss_mib']:.0f} MiB{limit}, {len(series)} sample(s)")  # fmt: skip
    for a in view["anomalies"]:
        typer.echo(f"  anomaly {a['kind']} (attempt {a['attempt']}): {a['message']}")
