"""One local replica as the node's host process (:mod:`.spawner`) supervises it.

The host does for every replica what a per-replica sidecar process did, without a process of
its own: :func:`start` runs the command (its own session, the log as its output, the built
environment, the run-as user, the cpu set, a memory cgroup where there is one) and writes the
pid file; the host's loop then calls :meth:`Replica.beat` every heartbeat interval (touch the
heartbeat file, one resource sample), :meth:`Replica.check_memory` every
:data:`~.memory.SAMPLE_SECONDS` when the replica has a tree-accounted limit, and
:meth:`Replica.finish` once the command has exited but before it is reaped (the exit file is on
disk before the pid can go).

The replica's tree is its command, the command's descendants, and the orphans they left: the
host is the subreaper of every replica, so an orphan becomes the host's child. It is attributed
to its replica by the pids seen in earlier samples, else by the ``RECFORGE_JOB_ID`` /
``RECFORGE_ATTEMPT`` / ``RECFORGE_REPLICA_INDEX`` variables it inherited (a process that both
leaves the replica's session and clears those variables before any sample saw it is not
attributed, and is killed when the host's last live replica ends).

Only the standard library (the host imports this module).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from recforge._json import dumps
from recforge.platform.backends import proctree
from recforge.platform.backends.memory import CgroupLimit, over_limit
from recforge.platform.backends.sampling import Sampler, samples_path
from recforge.platform.backends.sidecar import SidecarConfig, start_settings, write_exit_file

__all__ = ["Replica", "StartFailed", "start"]

_ID_VARS = ("RECFORGE_JOB_ID", "RECFORGE_ATTEMPT", "RECFORGE_REPLICA_INDEX")


class StartFailed(Exception):
    """The command could not be started; the exit file (127) says why."""


@dataclass
class Replica:
    """A started replica (see the module docstring)."""

    cfg: SidecarConfig
    proc: subprocess.Popen[bytes]
    start_time: int
    log_fd: int
    cgroup: CgroupLimit | None
    next_beat: float
    sampler: Sampler | None = None
    reason: str = ""  # why the host killed it (memory), recorded in the exit file
    #: pids (with their start times) seen in this replica's tree, to attribute orphans
    seen: dict[int, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def key(self) -> tuple[str, str, str]:
        return str(self.cfg.job), str(self.cfg.attempt), str(self.cfg.replica)

    def tree(self, orphans: list[int]) -> list[int]:
        """The live processes of this replica: the command, its descendants and the orphans
        (children of the host, given) that belong to it."""
        roots = [self.pid, *[o for o in orphans if self.owns(o)]]
        out: list[int] = []
        for root in roots:
            out.append(root)
            out += proctree.descendants(root)
        for p in out:
            if p not in self.seen and (start := proctree.process_start_time(p)) is not None:
                self.seen[p] = start
        return out

    def owns(self, orphan: int) -> bool:
        """Whether an orphan (a child of the host that is no replica's command) is ours."""
        start = proctree.process_start_time(orphan)
        if start is not None and self.seen.get(orphan) == start:
            return True
        try:
            raw = Path(f"/proc/{orphan}/environ").read_bytes()
        except OSError:
            return False
        env = dict(kv.split(b"=", 1) for kv in raw.split(b"\0") if b"=" in kv)
        return tuple(env.get(k.encode(), b"").decode() for k in _ID_VARS) == self.key

    def beat(self, now: float, orphans: list[int]) -> None:
        """One heartbeat: a resource sample, then touch the heartbeat file."""
        self.next_beat = now + self.cfg.heartbeat_interval
        if self.sampler is not None:
            try:
                self.sampler.sample(self.tree(orphans))
            except Exception as exc:  # monitoring must never stop a replica
                self.say(f"sampling failed: {exc}")
        if self.cfg.heartbeat_file:
            try:
                os.utime(self.cfg.heartbeat_file)
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    Path(self.cfg.heartbeat_file).touch()
            except OSError as exc:
                self.say(f"heartbeat failed: {exc}")

    def check_memory(self, orphans: list[int]) -> None:
        """Kill the tree once its resident memory passes the limit (tree accounting)."""
        if self.reason or not self.cfg.memory_mib:
            return
        pids = self.tree(orphans)
        reason = over_limit(pids, self.cfg.memory_mib)
        if reason is not None:
            self.reason = reason
            self.kill(pids)

    def kill(self, pids: list[int]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)

    def finish(self, status: int, orphans: list[int]) -> None:
        """The command exited (``status`` as from waitpid; not reaped yet): kill what it left
        running, record the exit file. The replica is its command."""
        self.kill([p for p in self.tree(orphans) if p != self.pid])
        code = os.waitstatus_to_exitcode(status)
        reason = self.reason
        if not reason and self.cgroup is not None and self.cgroup.oom_killed():
            reason = f"memory limit {self.cfg.memory_mib} MiB exceeded (cgroup v2 OOM kill)"
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.cfg.exit_file:
            write_exit_file(Path(self.cfg.exit_file), code, reason)
        self.proc.returncode = code  # reaped by the host; Popen must not wait for it
        with contextlib.suppress(OSError):
            os.close(self.log_fd)

    def say(self, text: str) -> None:
        """A line from the platform in the replica's log."""
        with contextlib.suppress(OSError):
            os.write(self.log_fd, f"[recforge-sidecar] {text}\n".encode())


def start(cfg: SidecarConfig, log: str, cpus: list[int] | None, host: tuple[int, int],
          now: float) -> Replica:  # fmt: skip
    """Start one replica's command (see the module docstring); :class:`StartFailed` after
    writing its exit file (127) if it cannot start. ``host`` is the host's (pid, start time),
    written to the pid file."""
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    cgroup: CgroupLimit | None = None
    try:
        if not cfg.argv:
            raise OSError("no command given")
        creds, cgroup = start_settings(cfg)
        proc = subprocess.Popen(cfg.argv, env=cfg.env, cwd=cfg.cwd or None,
                                stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
                                start_new_session=True,
                                preexec_fn=cgroup.join if cgroup is not None else None,
                                **creds)  # fmt: skip
    except (OSError, KeyError, ValueError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            name = cfg.argv[0] if cfg.argv else ""
            os.write(log_fd, f"[recforge-sidecar] cannot start {name!r}: {exc}\n".encode())
            os.close(log_fd)
        if cgroup is not None:
            cgroup.remove()
        if cfg.exit_file:
            write_exit_file(Path(cfg.exit_file), 127, f"cannot start the command: {exc}")
        raise StartFailed(str(exc)) from exc
    if cpus:
        # Pinned as soon as it runs (Popen returns once it has exec'd): pinning the host
        # around the spawn instead would migrate the host twice per replica, which costs more
        # than the spawn on a busy machine.
        for p in [proc.pid, *proctree.descendants(proc.pid)]:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(p, set(cpus))
    start_time = proctree.process_start_time(proc.pid) or 0
    if cfg.pid_file:  # the replica's first beat, and its record should the handle be lost
        path = Path(cfg.pid_file)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(dumps({"pid": host[0], "start_time": host[1], "child_pid": proc.pid,
                              "child_start": start_time, "role": cfg.role}, indent=None))
        os.replace(tmp, path)
    rep = Replica(cfg, proc, start_time, log_fd, cgroup, now + cfg.heartbeat_interval)
    if cfg.heartbeat_file:
        rep.sampler = Sampler(proc.pid, samples_path(cfg.heartbeat_file),
                              interval=cfg.heartbeat_interval, limit_mib=cfg.memory_mib,
                              cgroup=cgroup.path if cgroup is not None else None,
                              output_fd=log_fd)  # fmt: skip
    return rep

