"""Shared pieces of the ``recforge platform`` commands: the typer apps, options, helpers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from recforge._json import dumps

if TYPE_CHECKING:
    from recforge.platform.client import PlatformClient

__all__ = ["app", "default_store_url", "state_dir", "token_app"]

app = typer.Typer(
    help="Job platform: serve the REST API, submit and inspect jobs, manage tokens. "
    "STATE_DIR is RECFORGE_STATE_DIR, else XDG_STATE_HOME/recforge or ~/.local/state/recforge.",
    no_args_is_help=True,
    add_completion=False,
)
token_app = typer.Typer(help="Bearer tokens: create, list, revoke.", no_args_is_help=True)
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


def fail(msg: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj, indent=2) + "\n")


def connect(url: str | None, token: str | None) -> PlatformClient:
    from recforge.platform.client import PlatformClient

    return PlatformClient(url, token)


def call(url: str | None, token: str | None, fn: Any) -> Any:
    """Run ``fn(client)``; print the server's refusal and exit non-zero instead of a traceback."""
    from recforge.platform.client import PlatformError

    with connect(url, token) as client:
        try:
            return fn(client)
        except PlatformError as exc:
            fail(exc.detail if exc.status else str(exc), 1 if exc.status else 2)


def parse_values(items: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs. Values stay strings (the template converts them to its parameter types,
    so ``--set name=007`` keeps its zeros), except JSON lists/objects (``--set ids=[1,2]``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r} must look like key=value", 2)
        if raw.lstrip().startswith(("[", "{")):
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                fail(f"--set {key}: {raw!r} looks like JSON but is not valid: {exc}", 2)
        else:
            out[key] = raw
    return out


def read_mapping(file: Path, what: str) -> dict[str, Any]:
    """A YAML/JSON mapping from ``file`` ('-': stdin); exits 2 naming the file otherwise."""
    import yaml

    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    except OSError as exc:
        fail(f"cannot read {file}: {exc}", 2)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"{file}: not valid YAML/JSON: {exc}", 2)
    if not isinstance(data, dict):
        fail(f"{file}: a {what} must be a mapping, got {type(data).__name__}", 2)
    return data


def table(columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(*columns)
    for r in rows:
        # Escaped: names and reasons come from users and may contain rich markup like "[x]".
        t.add_row(*("" if v is None else escape(str(v)) for v in r))
    Console().print(t)


def ago(ts: float | None) -> str:
    if ts is None:
        return ""
    import time

    s = max(0.0, time.time() - ts)
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    return f"{s / 3600:.1f}h ago"


def res(r: dict[str, Any] | None) -> str:
    if not r:
        return "-"
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items() if v]
    return ", ".join(parts) or "0"
