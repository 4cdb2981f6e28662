"""What every ``recforge`` command shares: error exit, JSON and text output, log lines."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from recforge._json import dumps

__all__ = ["JsonOpt", "echo", "err", "fail", "log", "parse_kv", "print_json",
           "sigterm_as_interrupt"]

# Logs go to stderr; when it is not a terminal (piped, redirected) lines are not wrapped.
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def fail(msg: str, code: int = 2) -> NoReturn:
    """Print ``error: msg`` on stderr and exit with ``code`` (2: bad input, 1: failed work)."""
    err.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
    raise typer.Exit(code)


def print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")


def echo(text: str) -> None:
    """Plain text on stdout at full width (no wrapping when piped)."""
    sys.stdout.write(text + "\n")


def log(msg: str) -> None:
    err.print(f"[dim]{escape(msg)}[/]", highlight=False)


def parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` options; values are read as JSON when they parse (numbers, lists, ...)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            fail(f"{what} {item!r} must look like key=value")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler cancelling the job) stops a run as cleanly as Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
