"""The local backend's host process: one per node, it starts and supervises every replica.

A forked Python sidecar per replica cost more CPU than a trivial job itself (a fork of an
interpreter, a thread, a second fork for the command, its exit). The host does the sidecar's
work for all replicas of the node from one loop (:mod:`.replica` for one replica's part). The
local backend starts it (``python -m recforge.platform.backends.spawner``) with a pipe each way
and an empty environment:

* each request line is a JSON :class:`~recforge.platform.backends.sidecar.SidecarConfig` plus
  ``log`` and optionally ``cpus``; the host starts the command at once and writes the replica's
  pid file (its own pid and start time, the replica's supervision, and the command's). It never
  answers: the service does not wait for spawns. A command that cannot start gets an exit file
  (127, or 126 for a request the host cannot read) saying why;
* once a replica has ended (exit file written) it sends ``{"exited": child_pid, "job": id}``
  (``exited`` null if it never started), which lets the service poll that job at once.

The loop waits on the input, a SIGCHLD self-pipe and its next timer (the earliest heartbeat, and
every :data:`~.memory.SAMPLE_SECONDS` while a replica has a tree-accounted memory limit). Ended
commands are found with ``waitid(WNOWAIT)``: the exit file is written while the zombie still
holds the pid, then it is reaped. The host is the subreaper of every replica (orphans stay in
their replica's tree). Stopping the host stops every beat of its replicas, so a hung host shows
as lost replicas.

Replicas do not depend on the service: when its input ends (the service exited or was killed),
the host stops reading and keeps supervising until its last replica has ended, then exits; a
restarted service starts its own host and finds the older replicas by their pid and exit files.
Started with ``--drained PATH``, the host writes that file once it has read its input to the
end: from then on it starts nothing more, so a restarted service knows that every replica of an
interrupted launch that will ever run has its pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends import proctree
from recforge.platform.backends.memory import SAMPLE_SECONDS
from recforge.platform.backends.replica import Replica, StartFailed, start
from recforge.platform.backends.sidecar import SidecarConfig, write_exit_file

__all__ = ["main"]

_CONFIG_FIELDS = {f.name for f in fields(SidecarConfig)}


class Host:
    """The loop's state: live replicas by command pid, and the pipe to the service."""

    def __init__(self, out: Any) -> None:
        self.out = out  # None once the service is gone
        self.replicas: dict[int, Replica] = {}
        self.me = (os.getpid(), proctree.process_start_time(os.getpid()) or 0)

    def send(self, msg: dict[str, Any]) -> None:
        if self.out is None:
            return
        try:
            self.out.write(dumps(msg, indent=None) + "\n")
        except (BrokenPipeError, ValueError):  # the service went away while we answered
            self.out = None

    def spawn(self, request: dict[str, Any]) -> None:
        """Start one replica; whatever goes wrong is recorded in its exit file."""
        try:
            cfg = SidecarConfig(**{k: v for k, v in request.items() if k in _CONFIG_FIELDS})
            rep = start(cfg, request["log"], request.get("cpus"), self.me, time.monotonic())
        except StartFailed:  # the exit file (127) says why
            self.send({"exited": None, "job": request.get("job")})
            return
        except Exception as exc:  # a bad request: a bug of the service, recorded all the same
            if request.get("exit_file"):
                with contextlib.suppress(OSError):
                    write_exit_file(Path(request["exit_file"]), 126,
                                    f"host: {type(exc).__name__}: {exc}")  # fmt: skip
            self.send({"exited": None, "job": request.get("job")})
            return
        self.replicas[rep.pid] = rep

    def orphans(self) -> list[int]:
        """Children of the host that are no replica's command (adopted as subreaper)."""
        return [p for p in proctree.children(os.getpid()) if p not in self.replicas]

    def reap(self) -> None:
        """Settle every ended child: a command's exit file first, then the reap."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            rep = self.replicas.pop(pid, None)
            if rep is not None:
                try:
                    orphans = self.orphans()
                    rep.finish(_status(info), orphans)
                    if not self.replicas:  # the last live replica: every orphan was its own
                        rep.kill(orphans)
                finally:
                    os.waitpid(pid, 0)
                self.send({"exited": pid, "job": rep.cfg.job})
            else:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def timers(self, now: float) -> float | None:
        """Run what is due; seconds until the next timer (None: nothing to wait for)."""
        due = [r for r in self.replicas.values() if r.next_beat <= now]
        watched = [r for r in self.replicas.values()
                   if r.cfg.memory_mib and r.cfg.memory_mode == "tree"]  # fmt: skip
        if due or watched:
            orphans = self.orphans()
            for r in due:
                r.beat(now, orphans)
            for r in watched:
                r.check_memory(orphans)
        if not self.replicas:
            return None
        nxt = min(r.next_beat for r in self.replicas.values()) - now
        if watched:
            nxt = min(nxt, SAMPLE_SECONDS)
        return max(0.0, nxt)


def _status(info: os.waitid_result) -> int:
    """A waitpid-style status from waitid's result (for ``os.waitstatus_to_exitcode``)."""
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    return info.si_status & 0x7F  # killed (or dumped core) by that signal


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    drained = Path(args[args.index("--drained") + 1]) if "--drained" in args else None
    out = os.fdopen(sys.stdout.fileno(), "w", buffering=1)
    inp = sys.stdin.fileno()
    host = Host(out)
    proctree.become_subreaper()
    wake_r, wake_w = os.pipe()  # SIGCHLD -> the select loop (self-pipe)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(inp, selectors.EVENT_READ)
    sel.register(wake_r, selectors.EVENT_READ)
    reading = True
    pending = b""
    while reading or host.replicas:
        timeout = host.timers(time.monotonic())
        for key, _ in sel.select(timeout):
            if key.fd == wake_r:
                os.read(wake_r, 4096)
                continue
            # Read what is there ourselves: a buffered reader could hold whole requests
            # that select() then never reports.
            chunk = os.read(inp, 1 << 16)
            if not chunk:  # the service is gone: supervise what runs, then exit
                reading = False
                sel.unregister(inp)
                host.out = None
                with contextlib.suppress(OSError):
                    out.close()
                if drained is not None:
                    with contextlib.suppress(OSError):
                        drained.write_text(f"{os.getpid()}\n")
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    host.spawn(json.loads(line))
        host.reap()
    return 0


if __name__ == "__main__":
    sys.exit(main())
