"""The replica sidecar: runs the user's command unchanged, heartbeats, limits its memory, records
how it ended.

The local backend forks sidecars from its spawner (:mod:`.spawner`) and calls :func:`supervise`;
other backends run ``python -m recforge.platform.backends.sidecar run [options] -- <command>``.
The sidecar:

* runs the command as a child in its own process group's session, as the OS user it is given
  (``--user``: the service runs as root and replicas never do), in ``--cwd`` (a scratch
  directory it creates for that user when asked with ``--workdir-owned``), with exactly the
  environment it is given (the backend built it from an allow-list; the sidecar's own settings
  never reach the command);
* is the subreaper of everything below it, so nothing the command starts escapes its replica:
  when the command ends, what it left running is killed;
* limits the memory of the whole tree (:mod:`.memory`: a cgroup v2 or tree accounting), killing
  the tree over the limit and recording why;
* heartbeats every interval: touches ``--heartbeat-file`` (what the local backend reads: local
  sidecars never get the store) and/or refreshes the replica's row through a store URL given in
  ``$RECFORGE_STORE_URL`` (the URL never goes on the command line, which any user can read);
  with a heartbeat file, each beat also samples the tree's CPU, memory and output
  (:mod:`.sampling`, ``replica-<i>.samples`` beside it) for monitoring;
* writes, atomically, ``--pid-file`` once the command started and ``--exit-file``
  (``{"exit_code", "finished_at", "reason"}``) at the end, so a restarted service that is not its
  parent learns how the replica ended. ``exit_code`` is negative when the command died from a
  signal. SIGTERM/SIGINT/SIGHUP are forwarded to the command.

``sidecar beat`` only heartbeats (until SIGTERM): the second container of a Kubernetes pod,
beside the replica's own container (:mod:`.kubernetes`). There it posts each beat to the
platform's API (``$RECFORGE_HEARTBEAT_URL``/jobs/ID/heartbeat) with the attempt's token
(``$RECFORGE_HEARTBEAT_TOKEN``), both from the attempt's Secret.

Only the standard library at import time (the spawner forks this code for every replica).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends import proctree
from recforge.platform.backends.memory import CgroupLimit, TreeWatch, own_cgroup_name
from recforge.platform.backends.sampling import Sampler, samples_path

__all__ = ["STORE_URL_ENV", "SidecarConfig", "beat_until_stopped", "main", "make_workdir",
           "read_exit", "read_exit_file", "start_settings", "supervise",
           "write_exit_file"]  # fmt: skip

#: the store URL for store heartbeats, read by the sidecar and never passed to the command.
STORE_URL_ENV = "RECFORGE_STORE_URL"
#: the platform API's URL and one attempt's heartbeat token (a pod sidecar's, from a Secret)
HEARTBEAT_URL_ENV = "RECFORGE_HEARTBEAT_URL"
HEARTBEAT_TOKEN_ENV = "RECFORGE_HEARTBEAT_TOKEN"


def write_exit_file(path: Path, exit_code: int, reason: str = "") -> None:
    """Atomically write ``{"exit_code", "finished_at", "reason"}`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(dumps({"exit_code": exit_code, "finished_at": time.time(),
                          "reason": reason}, indent=None))  # fmt: skip
    os.replace(tmp, path)


def read_exit(path: Path | str) -> tuple[int, str] | None:
    """``(exit code, reason)`` recorded in an exit file, or None if it is absent (or torn)."""
    try:
        data = json.loads(Path(path).read_text())
        return int(data["exit_code"]), str(data.get("reason") or "")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_exit_file(path: Path | str) -> int | None:
    """The recorded exit code, or None."""
    got = read_exit(path)
    return None if got is None else got[0]


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data, indent=None))
    os.replace(tmp, path)


@dataclass
class SidecarConfig:
    """Everything one replica's sidecar needs (see the module docstring)."""

    job: int
    replica: int
    argv: list[str]
    env: dict[str, str]
    attempt: int = 1
    role: str = ""
    cwd: str | None = None
    workdir_owned: bool = False  # create ``cwd`` (mode 0700) for ``user``
    user: str | None = None
    exit_file: str | None = None
    pid_file: str | None = None
    heartbeat_file: str | None = None
    heartbeat_interval: float = 5.0
    memory_mib: int | None = None
    memory_mode: str = "tree"  # "tree" | "cgroup-v2" | "none"
    store_url: str | None = None
    api_url: str | None = None  # heartbeats to POST {api_url}/jobs/{job}/heartbeat ...
    api_token: str | None = None  # ... with this attempt's token
    extra: dict[str, Any] = field(default_factory=dict)


class _Heartbeat(threading.Thread):
    """Beats every interval: touches the heartbeat file and/or refreshes the store row."""

    def __init__(self, cfg: SidecarConfig) -> None:
        super().__init__(name="recforge-heartbeat", daemon=True)
        self.cfg = cfg
        self.pid = 0
        self.stop_event = threading.Event()
        self.sampler: Sampler | None = None
        self.store: Any = None
        if cfg.store_url:
            from recforge.platform.store import Store

            self.store = Store(cfg.store_url, create=False)

    def beat(self, state: str = "running", exit_code: int | None = None) -> None:
        if self.sampler is not None and state == "running":
            try:
                self.sampler.sample()
            except Exception as exc:  # monitoring must never stop a replica
                print(f"[recforge-sidecar] sampling failed: {exc}", file=sys.stderr, flush=True)
        if self.cfg.heartbeat_file:
            try:
                Path(self.cfg.heartbeat_file).touch()
                os.utime(self.cfg.heartbeat_file)
            except OSError as exc:
                print(f"[recforge-sidecar] heartbeat failed: {exc}", file=sys.stderr, flush=True)
        if self.cfg.api_url and self.cfg.api_token:
            self._post()
        if self.store is None:
            return
        try:
            self.store.heartbeat(self.cfg.job, self.cfg.replica, attempt=self.cfg.attempt,
                                 state=state, pid=self.pid, exit_code=exit_code)  # fmt: skip
        except Exception as exc:  # the store may be briefly unavailable; keep the job running
            print(f"[recforge-sidecar] heartbeat failed: {exc}", file=sys.stderr, flush=True)

    def _post(self) -> None:
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.cfg.api_url}/jobs/{self.cfg.job}/heartbeat", method="POST",
            data=json.dumps({"attempt": self.cfg.attempt, "replica": self.cfg.replica}).encode(),
            headers={"Authorization": f"Bearer {self.cfg.api_token}",
                     "Content-Type": "application/json"})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=max(1.0, self.cfg.heartbeat_interval)):
                pass
        except Exception as exc:  # the API may be briefly unavailable; keep beating
            print(f"[recforge-sidecar] heartbeat failed: {exc}", file=sys.stderr, flush=True)

    def run(self) -> None:
        while not self.stop_event.wait(self.cfg.heartbeat_interval):
            self.beat()


def make_workdir(path: Path, uid: int | None, gid: int | None) -> None:
    """``path`` (0700, owned by the replica's user) and any missing parent (0711: others may
    pass through, not list), whatever the umask, so the user can reach it by its full path."""
    todo, made = [path], []
    while todo:  # mkdir first, look only on failure (one call in the common case)
        try:
            os.mkdir(todo[-1])
        except FileNotFoundError:
            todo.append(todo[-1].parent)
            continue
        except FileExistsError:  # there already (a sibling replica made it first)
            pass
        else:
            made.append(todo[-1])
        todo.pop()
    for p in made:
        os.chmod(p, 0o700 if p == path else 0o711)
    if uid is not None and gid is not None:
        os.chown(path, uid, gid)


def start_settings(cfg: SidecarConfig) -> tuple[dict[str, Any], CgroupLimit | None]:
    """What starting a replica's command takes, done: the run-as credentials for ``Popen``
    (root refused), its scratch directory made, and its memory cgroup (cgroup-v2 mode), which
    the command joins before exec so nothing it starts escapes."""
    creds: dict[str, Any] = {}
    if cfg.user:
        pw = pwd.getpwnam(cfg.user)
        if pw.pw_uid == 0:
            raise OSError(f"refusing to run a job as {cfg.user!r} (root)")
        creds = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
    if cfg.cwd and cfg.workdir_owned:
        make_workdir(Path(cfg.cwd), creds.get("user"), creds.get("group"))
    cgroup = None
    if cfg.memory_mib and cfg.memory_mode == "cgroup-v2":
        cgroup = CgroupLimit.create(own_cgroup_name(cfg.job, cfg.attempt, cfg.replica),
                                    cfg.memory_mib)  # fmt: skip
    return creds, cgroup


def _finish(cfg: SidecarConfig, code: int, reason: str = "") -> int:
    if cfg.exit_file:
        write_exit_file(Path(cfg.exit_file), code, reason)
    return code if code >= 0 else 128 - code


def supervise(cfg: SidecarConfig) -> int:
    """Run one replica's command to its end (see the module docstring); the exit status to use
    for the sidecar itself (the command's, or 128 + signal)."""
    if not cfg.argv:
        print("[recforge-sidecar] no command given", file=sys.stderr)
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
    proctree.become_subreaper()
    if received:
        return _finish(cfg, -received[0], f"stopped before it started (signal {received[0]})")
    # Connect to the store (if any) before the command starts, so the first beat follows the
    # pid file at once (connecting can take long on a loaded machine).
    hb = _Heartbeat(cfg)
    cgroup: CgroupLimit | None = None
    try:
        creds, cgroup = start_settings(cfg)
        child = subprocess.Popen(cfg.argv, env=cfg.env, cwd=cfg.cwd or None,
                                 preexec_fn=cgroup.join if cgroup is not None else None,
                                 **creds)  # fmt: skip
    except (OSError, KeyError, subprocess.SubprocessError) as exc:
        print(f"[recforge-sidecar] cannot start {cfg.argv[0]!r}: {exc}", file=sys.stderr,
              flush=True)  # fmt: skip
        if cgroup is not None:
            cgroup.remove()
        return _finish(cfg, 127, f"cannot start the command: {exc}")
    if received:  # arrived between the check above and Popen
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(received[0])
    if cfg.pid_file:
        start = proctree.process_start_time(os.getpid()) or 0
        _write_json(Path(cfg.pid_file), {"pid": os.getpid(), "start_time": start,
                                         "child_pid": child.pid, "role": cfg.role})  # fmt: skip
    hb.pid = child.pid
    if cfg.heartbeat_file:
        hb.sampler = Sampler(os.getpid(), samples_path(cfg.heartbeat_file),
                             interval=cfg.heartbeat_interval, limit_mib=cfg.memory_mib,
                             cgroup=cgroup.path if cgroup is not None else None)  # fmt: skip
    hb.beat()
    hb.start()
    watch: TreeWatch | None = None
    if cfg.memory_mib and cfg.memory_mode == "tree":
        watch = TreeWatch(os.getpid(), cfg.memory_mib)
        watch.start()
    code = child.wait()
    if watch is not None:
        watch.stop_event.set()
    hb.stop_event.set()
    # The replica is its command: whatever the command left running dies with it.
    proctree.kill_tree(os.getpid())
    _reap()
    reason = ""
    if watch is not None and watch.reason:
        reason = watch.reason
    elif cgroup is not None and cgroup.oom_killed():
        reason = f"memory limit {cfg.memory_mib} MiB exceeded (cgroup v2 OOM kill)"
    if cgroup is not None:
        cgroup.remove()
    out = _finish(cfg, code, reason)
    hb.beat(state="succeeded" if code == 0 else "failed", exit_code=code)
    return out


def _reap() -> None:
    """Collect the exit status of orphans we inherited as subreaper (no zombies left)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not proctree.descendants(os.getpid()):
                return
            time.sleep(0.01)


# -- command line (used where the spawner is not: Ray tasks) ----------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recforge.platform.backends.sidecar")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a replica's command under the sidecar")
    r.add_argument("--job", type=int, required=True, help="job id")
    r.add_argument("--replica", type=int, required=True, help="global replica index")
    r.add_argument("--attempt", type=int, default=1, help="attempt number (1-based)")
    r.add_argument("--role", default="", help="the replica's role")
    r.add_argument("--exit-file", default=None, help="where to write the exit code JSON")
    r.add_argument("--pid-file", default=None, help="where to write the sidecar's pid JSON")
    r.add_argument("--heartbeat-file", default=None, help="touched at every heartbeat")
    r.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    r.add_argument("--memory-mib", type=int, default=None,
                   help="memory limit of the replica's whole process tree")  # fmt: skip
    r.add_argument("--memory-mode", choices=["tree", "cgroup-v2", "none"], default="tree")
    r.add_argument("--user", default=None, help="run the command as this OS user (needs root)")
    r.add_argument("--cwd", default=None, help="working directory of the command")
    r.add_argument("--workdir-owned", action="store_true",
                   help="create --cwd (0700) owned by --user")  # fmt: skip
    r.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    b = sub.add_parser("beat", help="only heartbeat for a replica until SIGTERM (a Kubernetes "
                                    "pod's second container)")  # fmt: skip
    b.add_argument("--job", type=int, required=True, help="job id")
    b.add_argument("--replica", type=int, required=True, help="global replica index")
    b.add_argument("--attempt", type=int, default=1, help="attempt number (1-based)")
    b.add_argument("--heartbeat-file", default=None, help="touched at every heartbeat")
    b.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    return parser


def beat_until_stopped(cfg: SidecarConfig) -> int:
    """Heartbeat for ``cfg``'s replica (file and/or store) until SIGTERM/SIGINT; exit 0."""
    hb = _Heartbeat(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: hb.stop_event.set())
    hb.beat()
    while not hb.stop_event.wait(cfg.heartbeat_interval):
        hb.beat()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.heartbeat_interval <= 0:
        print("[recforge-sidecar] --heartbeat-interval must be > 0", file=sys.stderr)
        return 2
    if args.command == "beat":
        return beat_until_stopped(SidecarConfig(
            job=args.job, replica=args.replica, argv=[], env={}, attempt=args.attempt,
            heartbeat_file=args.heartbeat_file, heartbeat_interval=args.heartbeat_interval,
            store_url=os.environ.get(STORE_URL_ENV), api_url=os.environ.get(HEARTBEAT_URL_ENV),
            api_token=os.environ.get(HEARTBEAT_TOKEN_ENV),
        ))  # fmt: skip
    cmd: list[str] = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    # This process's environment was built by the backend; the command gets it without the
    # sidecar's own settings.
    env = {k: v for k, v in os.environ.items() if k != STORE_URL_ENV}
    cfg = SidecarConfig(
        job=args.job, replica=args.replica, argv=cmd, env=env, attempt=args.attempt,
        role=args.role, cwd=args.cwd, workdir_owned=args.workdir_owned, user=args.user,
        exit_file=args.exit_file, pid_file=args.pid_file, heartbeat_file=args.heartbeat_file,
        heartbeat_interval=args.heartbeat_interval, memory_mib=args.memory_mib,
        memory_mode=args.memory_mode, store_url=os.environ.get(STORE_URL_ENV),
    )  # fmt: skip
    return supervise(cfg)


if __name__ == "__main__":
    sys.exit(main())
