"""Local backend: each replica is a process on this machine, wrapped by the sidecar.

Every replica runs ``python -m recforge.platform.backends.sidecar run ... -- <command>`` in its
own session (so cancel can signal the whole process group), with stdout/stderr in
``<runtime_dir>/job-<id>/attempt-<n>/replica-<i>.log`` and its exit code written by the sidecar to
``replica-<i>.exit``. Limits, where the OS allows: memory through ``RLIMIT_AS`` on the command
(applied by the sidecar), CPU through ``sched_setaffinity`` when the replica asks for fewer cores
than the machine has. The handle records which limits were enforced.

The handle keeps each sidecar's pid and its start time (field 22 of ``/proc/<pid>/stat``): a
restarted service, no longer the parent, uses the pair to tell a live replica from a reused pid,
and reads the exit file to learn how a finished replica ended.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recforge.platform.backends.base import (
    Backend,
    BackendStatus,
    Handle,
    LaunchError,
    ReplicaPhase,
    ReplicaPlan,
    ReplicaStatus,
    admitted_count,
    replica_plan,
)
from recforge.platform.backends.env import EnvPolicy, identity_env
from recforge.platform.backends.sidecar import read_exit_file
from recforge.platform.backends.users import RunAs
from recforge.platform.model.specs import JobSpec

__all__ = ["LocalBackend", "process_start_time"]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in clock ticks)`` of ``pid``, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces/parens: split after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    st = _proc_stat(pid)
    return None if st is None else st[1]


def _alive(pid: int, start_time: int) -> bool:
    """The very process we launched is still running (not exited, not a zombie, pid not reused)."""
    st = _proc_stat(pid)
    return st is not None and st[1] == start_time and st[0] not in ("Z", "X")


class LocalBackend(Backend):
    """Run replicas as local processes under the sidecar.

    Sidecars beat into a heartbeat file next to their log (they never get the store).
    ``term_grace`` is how long cancel waits after SIGTERM before SIGKILL.
    """

    cluster_type = "local"
    heartbeats = True

    def __init__(
        self,
        runtime_dir: str | Path,
        *,
        heartbeat_interval: float = 5.0,
        python: str = sys.executable,
        term_grace: float = 3.0,
        enforce_cpu_affinity: bool = True,
        enforce_memory: bool = True,
        env: EnvPolicy | None = None,
    ) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.heartbeat_interval = heartbeat_interval
        self.python = python
        self.term_grace = term_grace
        self.enforce_cpu_affinity = enforce_cpu_affinity
        self.enforce_memory = enforce_memory
        self.env_policy = env or EnvPolicy.from_service()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._next_core = 0

    # -- launch -------------------------------------------------------------------------------
    def _affinity(self, cpu: float) -> list[int] | None:
        if not self.enforce_cpu_affinity or cpu <= 0 or not hasattr(os, "sched_setaffinity"):
            return None
        cores = sorted(os.sched_getaffinity(0))
        want = max(1, math.ceil(cpu - 1e-9))
        if want >= len(cores):
            return None
        # Round-robin so replicas of concurrent jobs spread over the cores.
        picked = [cores[(self._next_core + k) % len(cores)] for k in range(want)]
        self._next_core = (self._next_core + want) % len(cores)
        return sorted(picked)

    def _env(
        self, job_id: int, attempt: int, spec: JobSpec, rp: ReplicaPlan, n: int,
        run_as: RunAs | None,
    ) -> dict[str, str]:
        identity = identity_env(job_id, attempt, spec.name, rp.index, rp.role, rp.role_index, n)
        env = self.env_policy.build(
            spec, identity, cpu=rp.cpu,
            home=run_as.home if run_as else None, user=run_as.user if run_as else None,
        )  # fmt: skip
        return env

    def launch(
        self,
        job_id: int,
        spec: JobSpec,
        admission: Any,
        *,
        attempt: int = 1,
        run_as: RunAs | None = None,
    ) -> Handle:
        """Start the gang's replicas; on any failure kill what was started and raise."""
        plans = replica_plan(spec, admitted_count(admission), self.python)
        job_dir = self.runtime_dir / f"job-{job_id}" / f"attempt-{attempt}"
        job_dir.mkdir(parents=True, exist_ok=True)
        replicas: list[dict[str, Any]] = []
        limits: dict[str, Any] = {"memory": "rlimit_as" if self.enforce_memory else "none"}
        handle: Handle = {
            "backend": "local",
            "job_id": job_id,
            "attempt": attempt,
            "dir": str(job_dir),
            "replicas": replicas,
            "limits": limits,
        }
        try:
            for rp in plans:
                replicas.append(
                    self._start(job_id, attempt, spec, rp, len(plans), job_dir, run_as)
                )
                # Rewritten after every start: a crash mid-launch leaves a usable partial handle.
                self._save_handle(handle)
        except Exception as exc:
            self.cancel(handle)
            raise LaunchError(
                f"job {job_id}: launching replica {len(replicas)} failed: {exc}"
            ) from exc
        limits["cpu_affinity"] = {r["index"]: r["cpus"] for r in replicas if r["cpus"]}
        limits["memory_mib"] = {r["index"]: r["memory_mib"] for r in replicas if r["memory_mib"]}
        handle["complete"] = True
        self._save_handle(handle)
        return handle

    @staticmethod
    def _save_handle(handle: Handle) -> None:
        path = Path(handle["dir"]) / "handle.json"
        tmp = path.with_name("handle.json.tmp")
        tmp.write_text(json.dumps(handle))
        os.replace(tmp, path)

    def recover_handle(self, job_id: int, attempt: int, *, settle_s: float = 2.0) -> Handle | None:
        """Rebuild the handle of an attempt whose launch was interrupted (service crash).

        Reads ``handle.json`` (complete, or partial: rewritten after each replica start) and
        adds replicas known only from their sidecar's pid file. Sidecars write that file right
        after starting, so if the attempt directory exists but nothing is found yet, it waits up
        to ``settle_s`` for them. None when nothing of the attempt was started.
        """
        job_dir = self.runtime_dir / f"job-{job_id}" / f"attempt-{attempt}"
        if not job_dir.is_dir():
            return None
        deadline = time.monotonic() + settle_s
        while True:
            handle = self._collect(job_id, attempt, job_dir)
            if handle is not None and (handle.get("complete") or handle["replicas"]):
                return handle
            if time.monotonic() >= deadline:
                return handle if handle is not None and handle["replicas"] else None
            time.sleep(0.05)

    @staticmethod
    def _collect(job_id: int, attempt: int, job_dir: Path) -> Handle | None:
        path = job_dir / "handle.json"
        handle: Handle | None = None
        with contextlib.suppress(FileNotFoundError, ValueError):
            handle = json.loads(path.read_text())
        if handle is not None and handle.get("complete"):
            return handle
        if handle is None:
            handle = {"backend": "local", "job_id": job_id, "attempt": attempt,
                      "dir": str(job_dir), "replicas": [], "limits": {}}  # fmt: skip
        known = {int(r["index"]) for r in handle["replicas"]}
        for pid_file in sorted(job_dir.glob("replica-*.pid")):
            index = int(pid_file.stem.split("-")[1])
            if index in known:
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                info = json.loads(pid_file.read_text())
                handle["replicas"].append(
                    {
                        "index": index,
                        "role": info.get("role", ""),
                        "pid": info["pid"],
                        "start_time": info["start_time"],
                        "log": str(job_dir / f"replica-{index}.log"),
                        "exit_file": str(job_dir / f"replica-{index}.exit"),
                        "cpus": None,
                        "memory_mib": None,
                    }
                )
        handle["replicas"].sort(key=lambda r: int(r["index"]))
        return handle

    def _start(
        self,
        job_id: int,
        attempt: int,
        spec: JobSpec,
        rp: ReplicaPlan,
        n: int,
        job_dir: Path,
        run_as: RunAs | None,
    ) -> dict[str, Any]:
        log_path = job_dir / f"replica-{rp.index}.log"
        exit_path = job_dir / f"replica-{rp.index}.exit"
        with contextlib.suppress(FileNotFoundError):
            exit_path.unlink()
        memory = rp.memory_mib if (self.enforce_memory and rp.memory_mib > 0) else None
        argv = [
            self.python, "-m", "recforge.platform.backends.sidecar", "run",
            "--job", str(job_id), "--replica", str(rp.index), "--attempt", str(attempt),
            "--exit-file", str(exit_path),
            "--pid-file", str(job_dir / f"replica-{rp.index}.pid"),
            "--heartbeat-file", str(job_dir / f"replica-{rp.index}.hb"),
            "--heartbeat-interval", str(self.heartbeat_interval),
        ]  # fmt: skip
        if memory:
            argv += ["--memory-mib", str(memory)]
        if run_as is not None:
            argv += ["--user", run_as.user]
        argv += ["--", *rp.command]
        cpus = self._affinity(rp.cpu)
        preexec: Callable[[], None] | None = None
        if cpus:
            cpu_set = set(cpus)

            def preexec() -> None:
                os.sched_setaffinity(0, cpu_set)

        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=spec.workdir or None,
                env=self._env(job_id, attempt, spec, rp, n, run_as),
                start_new_session=True,
                preexec_fn=preexec,
            )
        self._children[proc.pid] = proc
        start = process_start_time(proc.pid)
        if start is None:  # exited already: keep a value that can never match a live process
            start = -1
        return {
            "index": rp.index,
            "role": rp.role,
            "pid": proc.pid,
            "start_time": start,
            "log": str(log_path),
            "exit_file": str(exit_path),
            "cpus": cpus,
            "memory_mib": memory,
        }

    # -- status -------------------------------------------------------------------------------
    def _reap(self, pid: int) -> int | None:
        """If we are the parent, collect the child's status (avoids zombies)."""
        proc = self._children.get(pid)
        if proc is None:
            return None
        code = proc.poll()
        if code is not None:
            del self._children[pid]
        return code

    def _replica_status(self, r: dict[str, Any]) -> ReplicaStatus:
        idx = int(r["index"])
        code = read_exit_file(r["exit_file"])
        if code is None:
            self._reap(int(r["pid"]))
            if _alive(int(r["pid"]), int(r["start_time"])):
                # Running once its sidecar is up (it writes the pid file after starting the
                # command); before that it is still starting, however slow the machine is.
                beat = _mtime(Path(r["exit_file"]).with_suffix(".hb"))
                if beat is None:  # the first beat follows the pid file
                    beat = _mtime(Path(r["exit_file"]).with_suffix(".pid"))
                if beat is not None:
                    return ReplicaStatus(idx, ReplicaPhase.RUNNING, heartbeat_at=beat)
                return ReplicaStatus(idx, ReplicaPhase.PENDING, None, "sidecar starting")
            # It may have written the file just before exiting: look once more.
            code = read_exit_file(r["exit_file"])
            if code is None:
                return ReplicaStatus(
                    idx, ReplicaPhase.NOT_FOUND, None, "process gone without an exit code"
                )
        phase = ReplicaPhase.SUCCEEDED if code == 0 else ReplicaPhase.FAILED
        detail = "" if code >= 0 else f"killed by signal {-code}"
        return ReplicaStatus(idx, phase, code, detail)

    def poll(self, handle: Handle) -> BackendStatus:
        return BackendStatus([self._replica_status(r) for r in handle.get("replicas", [])])

    def reattach(self, handle: Handle) -> bool:
        """True if every replica is either alive (same process) or left an exit code."""
        return all(
            self._replica_status(r).phase is not ReplicaPhase.NOT_FOUND
            for r in handle.get("replicas", [])
        )

    # -- cancel / logs ------------------------------------------------------------------------
    def _signal_group(self, r: dict[str, Any], sig: int) -> bool:
        """Signal the replica's process group; False if nothing of ours is left to signal."""
        pid, start = int(r["pid"]), int(r["start_time"])
        st = _proc_stat(pid)
        if st is not None and st[1] != start:
            return False  # pid reused by an unrelated process: its group is not ours
        try:
            os.killpg(pid, sig)  # the sidecar leads its own session; the group outlives it
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def cancel(self, handle: Handle) -> None:
        replicas = handle.get("replicas", [])
        live = [r for r in replicas if self._signal_group(r, signal.SIGTERM)]
        deadline = time.monotonic() + self.term_grace
        while live and time.monotonic() < deadline:
            for r in live:
                self._reap(int(r["pid"]))
            live = [r for r in live if _group_exists(int(r["pid"]))]
            if live:
                time.sleep(0.05)
        for r in live:
            self._signal_group(r, signal.SIGKILL)
        for r in replicas:
            proc = self._children.pop(int(r["pid"]), None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=self.term_grace)

    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        for r in handle.get("replicas", []):
            if int(r["index"]) == replica:
                path = Path(r["log"])
                if not path.exists():
                    return ""
                lines = path.read_text(errors="replace").splitlines()
                return "\n".join(lines[-tail:]) if tail > 0 else ""
        raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (e.g. the sidecar not reaped yet) count as gone.
    return any(
        (st := _proc_stat(pid)) is not None and st[0] not in ("Z", "X")
        for pid in _group_members(pgid)
    )


def _group_members(pgid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(f"/proc/{entry}/stat").read_text()
                if int(raw[raw.rindex(")") + 2 :].split()[2]) == pgid:
                    out.append(int(entry))
    return out
