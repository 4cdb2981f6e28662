"""``recforge platform``: serve the REST API, submit and inspect jobs, manage tokens.

Client commands talk to a server at ``--url`` (env ``RECFORGE_PLATFORM_URL``, default
``http://127.0.0.1:8765``) with ``--token`` (env ``RECFORGE_TOKEN``). ``--json`` prints the
server's JSON on stdout for scripts; tables and messages otherwise. Exit codes: 0 ok, 1 the
server refused the request (its message is printed), 2 bad usage or unreachable server.

This module stays light on import (typer and the small client only); the server stack (FastAPI,
uvicorn, SQLAlchemy) is imported inside the commands that need it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from recforge.platform.client import PlatformClient

__all__ = ["app", "default_store_url", "state_dir"]

app = typer.Typer(
    help="Job platform: serve the REST API, submit and inspect jobs, manage tokens. "
    "STATE_DIR is RECFORGE_STATE_DIR, else XDG_STATE_HOME/recforge or ~/.local/state/recforge.",
    no_args_is_help=True,
    add_completion=False,
)
token_app = typer.Typer(help="Bearer tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")

DEFAULT_PORT = 8765
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="RECFORGE_PLATFORM_URL", help="Server URL.", show_default=False),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="RECFORGE_TOKEN", help="Bearer token.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
JobIdArg = Annotated[int, typer.Argument(help="Job id.", min=1)]


def state_dir() -> Path:
    """``RECFORGE_STATE_DIR``, else ``<XDG_STATE_HOME or ~/.local/state>/recforge``."""
    env = os.environ.get("RECFORGE_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "recforge"


def default_store_url() -> str:
    return f"sqlite:///{state_dir() / 'platform.db'}"


# ------------------------------------------------------------------------------ helpers
def _fail(msg: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _client(url: str | None, token: str | None) -> PlatformClient:
    from recforge.platform.client import PlatformClient

    return PlatformClient(url, token)


def _call(url: str | None, token: str | None, fn: Any) -> Any:
    """Run ``fn(client)``; print the server's refusal and exit non-zero instead of a traceback."""
    from recforge.platform.client import PlatformError

    with _client(url, token) as client:
        try:
            return fn(client)
        except PlatformError as exc:
            _fail(exc.detail if exc.status else str(exc), 1 if exc.status else 2)


def _parse_values(items: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs. Values stay strings (the template converts them to its parameter types,
    so ``--set name=007`` keeps its zeros), except JSON lists/objects (``--set ids=[1,2]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            _fail(f"--set {item!r} must look like key=value", 2)
        if raw.lstrip().startswith(("[", "{")):
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                _fail(f"--set {key}: {raw!r} looks like JSON but is not valid: {exc}", 2)
        else:
            out[key] = raw
    return out


def _read_mapping(file: Path, what: str) -> dict[str, Any]:
    """A YAML/JSON mapping from ``file`` ('-': stdin); exits 2 naming the file otherwise."""
    import yaml

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        _fail(f"cannot read {file}: {exc}", 2)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        _fail(f"{file}: not valid YAML/JSON: {exc}", 2)
    if not isinstance(data, dict):
        _fail(f"{file}: a {what} must be a mapping, got {type(data).__name__}", 2)
    return data


def _table(columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(*columns)
    for r in rows:
        # Escaped: names and reasons come from users and may contain rich markup like "[x]".
        t.add_row(*("" if v is None else escape(str(v)) for v in r))
    Console().print(t)


def _ago(ts: float | None) -> str:
    if ts is None:
        return ""
    import time

    s = max(0.0, time.time() - ts)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def _res(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if v]
    return ", ".join(parts) or "0"


# ------------------------------------------------------------------------------ jobs
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
        _fail("give a spec FILE or --template NAME (not both)", 2)
    if template is not None:
        values = _parse_values(set_)
        job = _call(url, token, lambda c: c.submit_template(template, values))
    else:
        assert file is not None
        if set_:
            _fail("--set only applies to --template", 2)
        spec = _read_mapping(file, "job spec")
        job = _call(url, token, lambda c: c.submit(spec))
    if as_json:
        _print_json(job)
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
    page = _call(
        url, token,
        lambda c: c.list_jobs(limit=limit, cursor=cursor, state=states, queue=queue),
    )
    if as_json:
        _print_json(page)
        return
    _table(
        ["id", "name", "owner", "queue", "state", "cluster", "created", "reason"],
        [
            [j["id"], j["name"], j["owner"], j["queue"], j["state"], j["cluster"],
             _ago(j["created_at"]), j["reason"]]
            for j in page["items"]
        ],
    )
    if page.get("next_cursor"):
        typer.echo(f"more: --cursor {page['next_cursor']}", err=True)


@app.command("status")
def status_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """A job's state, reason and timestamps."""
    job = _call(url, token, lambda c: c.get_job(job_id))
    if as_json:
        _print_json(job)
        return
    for key in ("id", "name", "owner", "group", "queue", "state", "reason", "attempts",
                "cluster", "cancel_requested"):
        typer.echo(f"{key:>16}: {job[key]}")
    for key in ("created_at", "admitted_at", "started_at", "finished_at"):
        if job[key] is not None:
            typer.echo(f"{key:>16}: {_ago(job[key])}")


@app.command("why")
def why_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
            as_json: JsonOpt = False) -> None:
    """Why a job is pending: what blocks it and where it stands in its queue."""
    why = _call(url, token, lambda c: c.why(job_id))
    if as_json:
        _print_json(why)
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
    out = _call(url, token, lambda c: c.logs(job_id, replica=replica, tail=tail))
    if as_json:
        _print_json(out)
    else:
        text = out["text"]
        sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))


@app.command("cancel")
def cancel_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Cancel a job (its replicas are stopped by the service loop)."""
    job = _call(url, token, lambda c: c.cancel(job_id))
    if as_json:
        _print_json(job)
    else:
        typer.echo(f"job {job['id']}: {job['state']} (cancel requested)")


@app.command("events")
def events_cmd(job_id: JobIdArg, url: UrlOpt = None, token: TokenOpt = None,
               as_json: JsonOpt = False) -> None:
    """Every recorded state change of a job."""
    evs = _call(url, token, lambda c: c.events(job_id))
    if as_json:
        _print_json(evs)
        return
    _table(["at", "from", "to", "reason"],
           [[_ago(e["at"]), e["from_state"] or "-", e["to_state"], e["reason"]] for e in evs])


# ------------------------------------------------------------------------------ config
@app.command("queues")
def queues_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Queues with their group, priority and weight."""
    qs = _call(url, token, lambda c: c.get_config("queues"))
    if as_json:
        _print_json(qs)
        return
    _table(["queue", "group", "priority", "weight"],
           [[q["name"], q["group"], q["priority"], q["weight"]] for q in qs])


@app.command("quotas")
def quotas_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Groups and their per-cluster quotas."""
    groups = _call(url, token, lambda c: c.get_config("groups"))
    if as_json:
        _print_json(groups)
        return
    rows = []
    for g in groups:
        for q in g["quotas"] or [{"cluster": "-", "nominal": None}]:
            rows.append([g["name"], q["cluster"], _res(q.get("nominal")),
                         _res(q.get("borrowing_limit")) if q.get("borrowing_limit") else "∞",
                         _res(q.get("lending_limit")) if q.get("lending_limit") else "all"])
    _table(["group", "cluster", "nominal", "borrowing limit", "lending limit"], rows)


@app.command("clusters")
def clusters_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Clusters with their type and capacity."""
    cs = _call(url, token, lambda c: c.get_config("clusters"))
    if as_json:
        _print_json(cs)
        return
    _table(["cluster", "type", "capacity", "nodes"],
           [[c["name"], c["type"], _res(c["capacity"]), len(c.get("nodes") or [])] for c in cs])


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
        body = _read_mapping(put, "template")
        t = _call(url, token, lambda c: c.put_template(body))
        if as_json:
            _print_json(t)
        else:
            typer.echo(f"template {t['name']} stored")
        return
    if delete is not None:
        _call(url, token, lambda c: c.delete_template(delete))
        if not as_json:
            typer.echo(f"template {delete} deleted")
        return
    ts = _call(url, token, lambda c: c.templates())
    if as_json:
        _print_json(ts)
        return
    _table(
        ["template", "owner", "parameters", "description"],
        [[t["name"], t.get("owner"), ", ".join(p["name"] for p in t.get("parameters", [])),
          t.get("description", "")] for t in ts],
    )


# ------------------------------------------------------------------------------ server
@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = DEFAULT_PORT,
    store: Annotated[
        str | None,
        typer.Option(help="Store URL (default: sqlite:///STATE_DIR/platform.db).",
                     show_default=False),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML with clusters, groups and queues; stored (replacing same "
                     "names) before the service starts."),
    ] = None,
    runtime_dir: Annotated[
        Path | None,
        typer.Option(help="Replica logs and exit files (default: STATE_DIR/runtime).",
                     show_default=False),
    ] = None,
    loop: Annotated[
        bool, typer.Option(help="Run the scheduling loop in a background thread.")
    ] = True,
    tick: Annotated[float, typer.Option(min=0.01, help="Seconds between idle ticks.")] = 1.0,
    heartbeat_timeout: Annotated[
        float, typer.Option(help="Seconds without heartbeat before a replica is lost; <= 0 "
                            "disables.")
    ] = 30.0,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="RECFORGE_ADMIN_TOKEN", show_default=False,
                     help="Bootstrap admin token (never stored)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "INFO",
) -> None:
    """Run the REST API (uvicorn) with the service loop in a background thread."""
    import logging
    import signal
    import threading

    import uvicorn

    from recforge.platform.api import create_app
    from recforge.platform.backends.local import LocalBackend
    from recforge.platform.resources import parse_platform_config
    from recforge.platform.service import (
        JsonLogFormatter,
        PlatformService,
        ServiceSettings,
        save_config,
    )
    from recforge.platform.specs import SpecError
    from recforge.platform.store import Store

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=log_level.upper(), handlers=[handler], force=True)

    url = store or default_store_url()
    if url.startswith("sqlite:///"):
        # Sidecars run in other directories: hand them an absolute database path.
        db = Path(url.removeprefix("sqlite:///")).expanduser().resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{db}"
    rdir = (runtime_dir or state_dir() / "runtime").resolve()
    rdir.mkdir(parents=True, exist_ok=True)
    try:
        st = Store(url)
    except Exception as exc:  # bad URL or unreachable database: say which and stop
        _fail(f"cannot open store {url!r}: {exc}", 2)
    if config is not None:
        try:
            cfg = parse_platform_config(config.read_text(), source=str(config))
        except (OSError, SpecError) as exc:
            _fail(str(exc), 2)
        save_config(st, cfg)
    settings = ServiceSettings(
        tick_interval=tick,
        heartbeat_timeout=heartbeat_timeout if heartbeat_timeout > 0 else None,
    )
    backends = {"local": LocalBackend(rdir, store_url=url)}
    try:
        service = PlatformService(st, backends, settings=settings)
    except Exception as exc:  # an inconsistent stored configuration
        _fail(f"cannot start the service: {exc}", 2)
    service.recover()
    app_ = create_app(service, admin_token=admin_token)
    stop = threading.Event()
    worker = None
    if loop:
        worker = threading.Thread(
            target=service.run_forever, args=(stop,), name="platform-loop", daemon=True
        )
        worker.start()
    typer.echo(f"platform API on http://{host}:{port} (store {st.dialect}, "
               f"loop {'on' if loop else 'off'})", err=True)
    # uvicorn shuts down on SIGTERM/SIGINT and then re-raises the signal to the handler that
    # was installed before it; with the default one the process would die right there and skip
    # the clean-up below (stopping the loop between ticks, closing the store).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        uvicorn.run(app_, host=host, port=port, log_level="warning", access_log=False)
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=30)
        st.close()


# ------------------------------------------------------------------------------ tokens
@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="User name (created if new).")],
    group: Annotated[str | None, typer.Option(help="The user's group (needed if new).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make a new user an admin.")] = False,
    label: Annotated[str, typer.Option(help="A note stored with the token.")] = "",
    store: Annotated[
        str | None,
        typer.Option(
            help="Write straight into this store URL (bootstrap, no server needed); "
            "otherwise ask the server with an admin token.",
        ),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a bearer token (printed once; only its hash is stored)."""
    if store is not None:
        from recforge.platform.api import ApiError, issue_token
        from recforge.platform.store import Store

        if store.startswith("sqlite:///"):
            Path(store.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            st = Store(store)
        except Exception as exc:  # bad URL or unreachable database: say which
            _fail(f"cannot open store {store!r}: {exc}", 2)
        try:
            u, secret = issue_token(st, user, group=group, admin=admin, label=label)
        except ApiError as exc:
            _fail(exc.detail)
        finally:
            st.close()
        out = {"user": u.name, "group": u.group, "admin": u.is_admin, "token": secret}
    else:
        out = _call(url, token, lambda c: c.create_token(user, group=group, admin=admin,
                                                         label=label))
    if as_json:
        _print_json(out)
    else:
        typer.echo(out["token"])
        typer.echo(f"token for {out['user']} (group {out['group']}"
                   f"{', admin' if out['admin'] else ''}); it is shown only once", err=True)


@app.command("whoami")
def whoami_cmd(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The user the token belongs to."""
    me = _call(url, token, lambda c: c.whoami())
    if as_json:
        _print_json(me)
    else:
        typer.echo(f"{me['user']} (group {me['group']}{', admin' if me['admin'] else ''})")
