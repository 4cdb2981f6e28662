"""The local backend's spawner: forks replica sidecars from one small, warm process.

Starting a fresh Python interpreter for every replica's sidecar costs tens of milliseconds of CPU;
forking this process (which has imported the sidecar and nothing else) costs well under one. The
local backend starts one spawner (``python -m recforge.platform.backends.spawner``) with a pipe
each way and an empty environment:

* each request line is a JSON :class:`~recforge.platform.backends.sidecar.SidecarConfig` plus
  ``id``, ``log`` and optionally ``cpus``; the spawner forks, the child starts a new session,
  sends its output to ``log``, pins itself to ``cpus`` and runs
  :func:`~recforge.platform.backends.sidecar.supervise`;
* the spawner answers ``{"id", "pid", "start_time"}`` (or ``{"id", "error"}``) and later
  ``{"exited": pid}`` when that sidecar has ended, which lets the service poll that job at once.

Sidecars do not depend on the spawner: each leads its own session and writes its exit file, so
when the service (and with it the spawner, which exits at the end of its input) dies, replicas
run on and a restarted service finds them by their pid and exit files.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends import proctree
from recforge.platform.backends.sidecar import SidecarConfig, supervise, write_exit_file

__all__ = ["main"]

_CONFIG_FIELDS = {f.name for f in fields(SidecarConfig)}


def _child(request: dict[str, Any]) -> int:
    """In the forked child: become the sidecar of one replica."""
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the spawner's pipes are not the replica's
    if request.get("cpus"):
        os.sched_setaffinity(0, set(request["cpus"]))
    cfg = SidecarConfig(**{k: v for k, v in request.items() if k in _CONFIG_FIELDS})
    try:
        return supervise(cfg)
    except BaseException as exc:  # never fall back into the spawner's loop
        print(f"[recforge-sidecar] failed: {exc!r}", file=sys.stderr, flush=True)
        if cfg.exit_file:
            write_exit_file(Path(cfg.exit_file), 126, f"sidecar: {exc}")
        return 126


def main() -> int:
    out = os.fdopen(sys.stdout.fileno(), "w", buffering=1)
    inp = sys.stdin.fileno()
    children: set[int] = set()
    wake_r, wake_w = os.pipe()  # SIGCHLD -> the select loop (self-pipe)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel = selectors.DefaultSelector()
    sel.register(inp, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    pending = b""

    def reap() -> None:
        while children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            out.write(dumps({"exited": pid}, indent=None) + "\n")

    def spawn(request: dict[str, Any]) -> None:
        try:
            pid = os.fork()
        except OSError as exc:
            out.write(dumps({"id": request.get("id"), "error": str(exc)}, indent=None) + "\n")
            return
        if pid == 0:
            os._exit(_child(request))
        children.add(pid)
        start = proctree.process_start_time(pid)
        out.write(dumps({"id": request.get("id"), "pid": pid, "start_time": start or -1},
                        indent=None) + "\n")  # fmt: skip

    try:
        while True:
            for key, _ in sel.select():
                if key.fd == wake_r:
                    os.read(wake_r, 4096)
                    reap()
                    continue
                # Read what is there ourselves: a buffered reader could hold whole requests
                # that select() then never reports.
                chunk = os.read(inp, 1 << 16)
                if not chunk:  # the service is gone: sidecars run on without us
                    return 0
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        spawn(json.loads(line))
            reap()
    except BrokenPipeError:  # the service went away while we answered
        return 0


if __name__ == "__main__":
    sys.exit(main())
