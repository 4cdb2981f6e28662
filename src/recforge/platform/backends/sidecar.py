"""The replica sidecar: runs the user's command unchanged, heartbeats, records the exit code.

Usage::

    python -m recforge.platform.backends.sidecar run --job 7 --replica 0 --attempt 1 \\
        --store-url sqlite:///platform.db --exit-file /run/j7/r0.exit -- python train.py

Heartbeats: the local backend passes ``--heartbeat-file`` (a file in the service's private
runtime directory whose modification time the backend reads), so a local sidecar never needs the
store. A backend may instead pass a store URL in ``$RECFORGE_STORE_URL`` (not argv, which any user
can read) for beats into ``replicas.last_heartbeat``; the sidecar drops it from the command's
environment. Store heartbeats carry the attempt number, so a dying sidecar of an old attempt
cannot refresh the rows of a new one.

The exit code is also written (atomically: temp file + rename) to ``--exit-file`` as JSON
``{"exit_code": n, "finished_at": t}``: a restarted service that is not the sidecar's parent reads
it to learn how a replica ended. ``exit_code`` is negative when the command died from a signal.
SIGTERM/SIGINT/SIGHUP received by the sidecar are forwarded to the command; the sidecar exits with
the command's code (128 + signal number when it was killed by a signal).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["STORE_URL_ENV", "main", "read_exit_file", "write_exit_file"]

#: the store URL for heartbeats, read by the sidecar and removed from the command's environment
#: (it may hold database credentials; the environment, unlike argv, is not world-readable).
STORE_URL_ENV = "RECFORGE_STORE_URL"


def write_exit_file(path: Path, exit_code: int) -> None:
    """Atomically write ``{"exit_code", "finished_at"}`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"exit_code": exit_code, "finished_at": time.time()}))
    os.replace(tmp, path)


def read_exit_file(path: Path | str) -> int | None:
    """The recorded exit code, or None if the file is absent (or unreadable)."""
    try:
        return int(json.loads(Path(path).read_text())["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _own_start_time() -> int:
    raw = Path("/proc/self/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def _write_pid_file(path: Path, child_pid: int) -> None:
    """Record who we are so a restarted service can find us without a stored handle."""
    info = {
        "pid": os.getpid(),
        "start_time": _own_start_time(),
        "child_pid": child_pid,
        "role": os.environ.get("RECFORGE_ROLE", ""),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def _limit_memory(memory_mib: int | None) -> Callable[[], None] | None:
    if not memory_mib:
        return None
    limit = memory_mib * 1024 * 1024

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


class _Heartbeat(threading.Thread):
    """Background thread that beats every ``interval`` seconds: touches the heartbeat file
    (``--heartbeat-file``, what the local backend reads) and/or refreshes the replica's row in
    the store (``--store-url``)."""

    def __init__(self, args: argparse.Namespace, pid: int = 0) -> None:
        super().__init__(name="recforge-heartbeat", daemon=True)
        self.args = args
        self.pid = pid
        self.stop_event = threading.Event()
        self.store: Any = None
        url = args.store_url or os.environ.get(STORE_URL_ENV)
        if url:
            from recforge.platform.store import Store

            self.store = Store(url, create=False)

    def beat(self, state: str = "running", exit_code: int | None = None) -> None:
        if self.args.heartbeat_file:
            path = Path(self.args.heartbeat_file)
            try:
                path.touch()
                os.utime(path)
            except OSError as exc:
                print(f"[recforge-sidecar] heartbeat failed: {exc}", file=sys.stderr, flush=True)
        if self.store is None:
            return
        try:
            self.store.heartbeat(
                self.args.job,
                self.args.replica,
                attempt=self.args.attempt,
                state=state,
                pid=self.pid,
                exit_code=exit_code,
            )
        except Exception as exc:  # the store may be briefly unavailable; keep the job running
            print(f"[recforge-sidecar] heartbeat failed: {exc}", file=sys.stderr, flush=True)

    def run(self) -> None:
        while not self.stop_event.wait(self.args.heartbeat_interval):
            self.beat()


def run(args: argparse.Namespace) -> int:
    """Run the command as a child, heartbeat until it exits, record and return its exit code."""
    cmd: list[str] = args.cmd
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        print("[recforge-sidecar] no command given after '--'", file=sys.stderr)
        return 2
    # Handlers go in before the child exists: a stop request that arrives while we start is
    # remembered and passed on (or prevents the start) instead of killing us silently.
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    if received:
        code = -received[0]
        if args.exit_file:
            write_exit_file(Path(args.exit_file), code)
        return 128 + received[0]
    # Connect to the store before the command starts, so the first heartbeat follows the pid
    # file at once (connecting can take long on a loaded machine).
    hb = _Heartbeat(args)
    try:
        # The backend built this process's environment from its allow-list; the command gets it
        # without the sidecar's own settings.
        child_env = {k: v for k, v in os.environ.items() if k != STORE_URL_ENV}
        user: dict[str, Any] = {}
        if args.user:
            pw = pwd.getpwnam(args.user)
            if pw.pw_uid == 0:
                raise OSError(f"refusing to run a job as {args.user!r} (root)")
            user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        child = subprocess.Popen(
            cmd, env=child_env, preexec_fn=_limit_memory(args.memory_mib), **user
        )
    except OSError as exc:
        print(f"[recforge-sidecar] cannot start {cmd[0]!r}: {exc}", file=sys.stderr, flush=True)
        code = 127
        if args.exit_file:
            write_exit_file(Path(args.exit_file), code)
        return code
    if received:  # arrived between the check above and Popen
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(received[0])

    if args.pid_file:
        _write_pid_file(Path(args.pid_file), child.pid)
    hb.pid = child.pid
    hb.beat()
    hb.start()
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue
    hb.stop_event.set()
    if args.exit_file:
        write_exit_file(Path(args.exit_file), code)
    hb.beat(state="succeeded" if code == 0 else "failed", exit_code=code)
    return code if code >= 0 else 128 - code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recforge.platform.backends.sidecar")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a replica's command under the sidecar")
    r.add_argument("--job", type=int, required=True, help="job id")
    r.add_argument("--replica", type=int, required=True, help="global replica index")
    r.add_argument("--attempt", type=int, default=1, help="attempt number (1-based)")
    r.add_argument(
        "--store-url", default=None, help=f"store URL for heartbeats (default: ${STORE_URL_ENV})"
    )
    r.add_argument("--exit-file", default=None, help="where to write the exit code JSON")
    r.add_argument("--pid-file", default=None, help="where to write the sidecar's pid JSON")
    r.add_argument("--heartbeat-file", default=None, help="touched at every heartbeat")
    r.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    r.add_argument("--memory-mib", type=int, default=None, help="RLIMIT_AS for the command")
    r.add_argument("--user", default=None, help="run the command as this OS user (needs root)")
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.heartbeat_interval <= 0:
        print("[recforge-sidecar] --heartbeat-interval must be > 0", file=sys.stderr)
        return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
