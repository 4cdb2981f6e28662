"""Local backend: each replica is a process on this machine, supervised by the node's host.

One host process per backend (:mod:`.spawner`) starts every replica's command and supervises it
(:mod:`.replica`): each command leads its own session (cancel signals its whole process group),
writes its output to ``<runtime_dir>/job-<id>/attempt-<n>/replica-<i>.log``; the host touches
``replica-<i>.hb`` at every heartbeat and records the exit in ``replica-<i>.exit``. The
runtime directory is the service's (private); replicas get a scratch working directory
(``<work_dir>/job-<id>/attempt-<n>``, owned by their OS user, mode 0700) unless the spec names
one, and ``HOME`` points there.

Limits: memory for the replica's whole process tree (cgroup v2 where available, else tree
accounting: :mod:`.memory`), CPU through ``sched_setaffinity`` when the replica asks for fewer
cores than the machine has. The handle records which were applied (``limits``).

The handle keeps, per replica, the supervising host's pid and start time (``pid``,
``start_time``; field 22 of ``/proc/<pid>/stat``); the command's (``child_pid``,
``child_start``) are in the replica's pid file, which the host writes as it starts it (the
service hands replicas to the host and never waits for the spawns). A restarted service, no
longer the host's parent, uses the pairs to tell a live replica from a reused pid, and reads
the exit file to learn how a finished replica ended. A replica whose host is gone and that left
no exit file is lost.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends.base import (
    Backend,
    BackendError,
    BackendStatus,
    Handle,
    Launch,
    LaunchError,
    ReplicaPhase,
    ReplicaStatus,
    admitted_count,
    replica_plan,
)
from recforge.platform.backends.env import EnvPolicy, identity_env
from recforge.platform.backends.memory import memory_mode
from recforge.platform.backends.proctree import alive, proc_stat, process_start_time
from recforge.platform.backends.sampling import read_samples, samples_path
from recforge.platform.backends.sidecar import read_exit
from recforge.platform.backends.users import RunAs
from recforge.platform.model.specs import JobSpec

__all__ = ["LocalBackend", "process_start_time"]

_HOSTS = "hosts"  # below the runtime directory: one record per host process (see _Spawner)


class _Spawner:
    """The host process (:mod:`.spawner`) and the thread that reads its notices.

    Each host is recorded in ``<hosts_dir>/<token>.json`` (its pid and start time, and the
    service's) and writes ``<token>.drained`` once it has read its input to the end, so a
    restarted service can tell when an older host will start nothing more
    (:meth:`LocalBackend.recover_handle`).
    """

    def __init__(self, python: str, on_exit: Callable[[int], object], hosts_dir: Path) -> None:
        """``on_exit(job_id)`` is called when a replica of that job has ended."""
        self.on_exit = on_exit
        hosts_dir.mkdir(parents=True, exist_ok=True)
        self.token = f"{os.getpid()}-{time.time_ns()}"
        drained = hosts_dir / f"{self.token}.drained"
        self.proc = subprocess.Popen(
            [python, "-m", "recforge.platform.backends.spawner", "--drained", str(drained)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},  # nothing of ours
            start_new_session=True,
        )
        #: the host's (pid, start time): every replica's supervision
        self.identity = (self.proc.pid, process_start_time(self.proc.pid) or -1)
        record = {"host": list(self.identity),
                  "service": [os.getpid(), process_start_time(os.getpid()) or -1]}  # fmt: skip
        (hosts_dir / f"{self.token}.json").write_text(dumps(record, indent=None))
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="spawner-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError, KeyError, TypeError):  # never stop listening
                self.on_exit(int(json.loads(raw)["job"]))
        # After close() the host supervises its replicas to their end; collect it then.
        self.proc.wait()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, requests: list[dict[str, Any]]) -> None:
        """Hand replicas to the host (one write); it starts them in order, without answering."""
        assert self.proc.stdin is not None
        data = "".join(dumps(r, indent=None) + "\n" for r in requests).encode()
        try:
            with self._lock:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except OSError as exc:
            raise LaunchError(f"the host process is gone: {exc}") from exc

    def close(self) -> None:
        """End the host's input; it exits once its last replica has ended."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


class LocalBackend(Backend):
    """Run replicas as local processes under the node's host (see the module docstring).

    ``term_grace`` is how long cancel waits after SIGTERM before SIGKILL. ``work_dir`` holds the
    replicas' scratch directories (default: ``<runtime_dir>/../work``). ``memory`` forces the
    memory-limit mode (``"tree"``, ``"cgroup-v2"``, ``"none"``; default: what the machine allows).
    """

    cluster_type = "local"
    heartbeats = True
    recovers_launches = True

    def __init__(
        self,
        runtime_dir: str | Path,
        *,
        heartbeat_interval: float = 5.0,
        python: str = sys.executable,
        job_python: str | None = None,
        term_grace: float = 3.0,
        enforce_cpu_affinity: bool = True,
        enforce_memory: bool = True,
        env: EnvPolicy | None = None,
        work_dir: str | Path | None = None,
        memory: str | None = None,
    ) -> None:
        self.runtime_dir = Path(runtime_dir)
        self.work_dir = Path(work_dir) if work_dir is not None else self.runtime_dir.parent / "work"
        self.heartbeat_interval = heartbeat_interval
        self.python = python  # the host's (the service's user runs it)
        #: the interpreter of replicas the platform writes in Python (kind python, a service's
        #: supervisor); they run as the job's user, who must be able to execute it
        self.job_python = job_python or python
        self.term_grace = term_grace
        self.enforce_cpu_affinity = enforce_cpu_affinity
        self.memory = ("none" if not enforce_memory else memory) or memory_mode()
        self.env_policy = env or EnvPolicy.from_service()
        self._next_core = 0
        self._spawner: list[_Spawner] = []  # at most one; a list so the finalizer can see it
        self._spawn_lock = threading.Lock()
        self._notify: Callable[[int], None] | None = None
        # A backend dropped without close() still lets its host go (it ends after its replicas).
        weakref.finalize(self, _close_all, self._spawner)

    def set_notifier(self, notify: Callable[[int], None]) -> None:
        self._notify = notify

    def _on_exit(self, job: int) -> None:
        if self._notify is not None:
            self._notify(job)

    def _spawner_proc(self) -> _Spawner:
        with self._spawn_lock:
            if not self._spawner or not self._spawner[0].alive():
                _close_all(self._spawner)
                on_exit = weakref.WeakMethod(self._on_exit)  # the reader must not keep us alive
                self._spawner.append(_Spawner(
                    self.python, lambda job: (m := on_exit()) is not None and m(job),
                    self.runtime_dir / _HOSTS,
                ))  # fmt: skip
            return self._spawner[0]

    def close(self) -> None:
        """Let the host go (it supervises running replicas to their end, then exits)."""
        with self._spawn_lock:
            _close_all(self._spawner)

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
        out = self.launch_many([Launch(job_id, spec, admission, attempt, run_as)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def launch_many(self, launches: list[Launch]) -> list[Handle | Exception]:
        """Start the gangs: every replica's start request goes to the host in one write, and
        the handles are complete at once (the host's pid is every replica's supervision; each
        command's pid comes in its pid file). The loop never waits for the spawns: a command
        that cannot start ends with exit code 127 and the reason in its exit file."""
        out: list[Handle | Exception] = []
        batch: list[dict[str, Any]] = []
        prepared: list[Handle] = []
        try:
            host = self._spawner_proc()
        except Exception as exc:
            return [LaunchError(f"job {la.job_id}: cannot start the host process: {exc}")
                    for la in launches]  # fmt: skip
        for la in launches:
            try:
                handle, requests = self._prepare(la)
            except Exception as exc:
                out.append(LaunchError(f"job {la.job_id}: {exc}"))
                continue
            for replica, request in requests:
                replica["pid"], replica["start_time"] = host.identity
                handle["replicas"].append(replica)
                batch.append(request)
            replicas = handle["replicas"]
            limits = handle["limits"]
            limits["cpu_affinity"] = {r["index"]: r["cpus"] for r in replicas if r["cpus"]}
            limits["memory_mib"] = {r["index"]: r["memory_mib"] for r in replicas
                                    if r["memory_mib"]}  # fmt: skip
            handle["complete"] = True
            prepared.append(handle)
            out.append(handle)
        try:
            host.send(batch)
        except LaunchError as exc:
            return [LaunchError(f"job {h['job_id']}: {exc}") if isinstance(h, dict) else h
                    for h in out]  # fmt: skip
        for handle in prepared:
            # Once per launch, complete. A crash before this write leaves the replicas' pid
            # files (the host writes one as it starts each), from which recover_handle
            # rebuilds the handle.
            self._save_handle(handle)
        return out

    def _prepare(self, la: Launch) -> tuple[Handle, list[tuple[dict[str, Any], dict[str, Any]]]]:
        """The handle skeleton of one launch and, per replica, its entry and spawn request."""
        spec, attempt, run_as = la.spec, la.attempt, la.run_as
        plans = replica_plan(spec, admitted_count(la.admission), self.job_python)
        job_dir = self.runtime_dir / f"job-{la.job_id}" / f"attempt-{attempt}"
        job_dir.mkdir(parents=True, exist_ok=True)
        workdir = spec.workdir or str(self.work_dir / f"job-{la.job_id}" / f"attempt-{attempt}")
        handle: Handle = {
            "backend": "local",
            "job_id": la.job_id,
            "attempt": attempt,
            "dir": str(job_dir),
            "workdir": workdir,
            "replicas": [],
            "limits": {"memory": self.memory, "user": run_as.user if run_as else None},
        }
        requests = []
        for rp in plans:
            log_path = job_dir / f"replica-{rp.index}.log"
            exit_path = job_dir / f"replica-{rp.index}.exit"
            with contextlib.suppress(FileNotFoundError):
                exit_path.unlink()
            memory = rp.memory_mib if (self.memory != "none" and rp.memory_mib > 0) else None
            identity = identity_env(la.job_id, attempt, spec.name, rp.index, rp.role,
                                    rp.role_index, len(plans))  # fmt: skip
            env = self.env_policy.build(spec, identity, cpu=rp.cpu, home=workdir,
                                        user=run_as.user if run_as else None)  # fmt: skip
            cpus = self._affinity(rp.cpu)
            replica = {"index": rp.index, "role": rp.role, "log": str(log_path),
                       "exit_file": str(exit_path), "cpus": cpus, "memory_mib": memory}
            request = {
                "job": la.job_id, "replica": rp.index, "attempt": attempt, "role": rp.role,
                "argv": rp.command, "env": env, "cwd": workdir,
                "workdir_owned": spec.workdir is None,
                "user": run_as.user if run_as else None,
                "exit_file": str(exit_path), "pid_file": str(job_dir / f"replica-{rp.index}.pid"),
                "heartbeat_file": str(job_dir / f"replica-{rp.index}.hb"),
                "heartbeat_interval": self.heartbeat_interval,
                "memory_mib": memory, "memory_mode": self.memory,
                "log": str(log_path), "cpus": cpus,
            }  # fmt: skip
            requests.append((replica, request))
        return handle, requests

    @staticmethod
    def _save_handle(handle: Handle) -> None:
        path = Path(handle["dir"]) / "handle.json"
        tmp = path.with_name("handle.json.tmp")
        tmp.write_text(dumps(handle, indent=None))
        os.replace(tmp, path)

    def recover_handle(
        self, job_id: int, attempt: int, *, settle_s: float = 120.0
    ) -> Handle | None:
        """Rebuild the handle of an attempt whose launch was interrupted (service crash).

        Reads ``handle.json`` (written once the launch is complete), else the replicas' pid
        files. Requests the dead service had sent may still wait in its host's input, so first
        every host of a service that is gone must have read its input to the end or have
        ended (up to ``settle_s``): only then is a missing pid file a replica that will never
        start. None when nothing of the attempt was started (nor will be); raises
        :class:`BackendError` when an older host did not drain in time (cannot tell).
        """
        job_dir = self.runtime_dir / f"job-{job_id}" / f"attempt-{attempt}"
        if not job_dir.is_dir():
            return None  # made before anything is sent: nothing was
        handle = self._collect(job_id, attempt, job_dir)
        if handle is not None and handle.get("complete"):
            return handle
        waiting = self._wait_for_older_hosts(settle_s)
        if waiting:
            raise BackendError(
                f"job {job_id} attempt {attempt}: the host(s) {waiting} of a stopped service "
                f"did not read their input to the end within {settle_s:g}s; cannot tell "
                "whether the interrupted launch started anything"
            )
        handle = self._collect(job_id, attempt, job_dir)
        return handle if handle is not None and handle["replicas"] else None

    def _wait_for_older_hosts(self, timeout: float) -> list[int]:
        """Wait until every host whose service is gone has drained its input or ended; the
        pids of those that did not in time. Records of ended hosts are removed."""
        hosts = self.runtime_dir / _HOSTS
        mine = {s.token for s in self._spawner}
        deadline = time.monotonic() + timeout
        while True:
            waiting: list[int] = []
            for path in sorted(hosts.glob("*.json")):
                if path.stem in mine:
                    continue
                try:
                    record = json.loads(path.read_text())
                    host = (int(record["host"][0]), int(record["host"][1]))
                    service = (int(record["service"][0]), int(record["service"][1]))
                except (OSError, ValueError, KeyError, IndexError, TypeError):
                    continue  # a record being written by a live service
                if alive(*service):
                    continue  # a running service's host: no launch of it was interrupted
                if not alive(*host):
                    for stale in (path, path.with_suffix(".drained")):
                        with contextlib.suppress(FileNotFoundError):
                            stale.unlink()
                elif not path.with_suffix(".drained").exists():
                    waiting.append(host[0])
            if not waiting or time.monotonic() >= deadline:
                return waiting
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
                        "child_pid": info.get("child_pid"),
                        "child_start": info.get("child_start"),
                        "log": str(job_dir / f"replica-{index}.log"),
                        "exit_file": str(job_dir / f"replica-{index}.exit"),
                        "cpus": None,
                        "memory_mib": None,
                    }
                )
        handle["replicas"].sort(key=lambda r: int(r["index"]))
        return handle

    # -- status -------------------------------------------------------------------------------
    def _replica_status(self, r: dict[str, Any]) -> ReplicaStatus:
        idx = int(r["index"])
        ended = read_exit(r["exit_file"])
        if ended is None:
            if alive(int(r["pid"]), int(r["start_time"])):
                # Running while its host is up (its exit file comes before the command's pid
                # goes) and once the pid file is there (the host writes it after starting the
                # command, then beats); before that it is still starting, however slow the
                # machine is, and its heartbeat clock has not started.
                beat = _mtime(Path(r["exit_file"]).with_suffix(".hb"))
                if beat is None:
                    beat = _mtime(Path(r["exit_file"]).with_suffix(".pid"))
                if beat is not None:
                    return ReplicaStatus(idx, ReplicaPhase.RUNNING, heartbeat_at=beat)
                return ReplicaStatus(idx, ReplicaPhase.PENDING, None, "host starting it")
            # It may have written the file just before exiting: look once more.
            ended = read_exit(r["exit_file"])
            if ended is None:
                return ReplicaStatus(
                    idx, ReplicaPhase.NOT_FOUND, None, "process gone without an exit code"
                )
        code, reason = ended
        phase = ReplicaPhase.SUCCEEDED if code == 0 else ReplicaPhase.FAILED
        detail = reason or ("" if code >= 0 else f"killed by signal {-code}")
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
    @staticmethod
    def _command(r: dict[str, Any], wait: float = 0.0) -> tuple[int, int] | None:
        """The replica's command (pid, start time), from the handle or else its pid file
        (remembered in ``r``); waits up to ``wait`` seconds while its live host has not
        started it yet. None if it never started (or its host is gone)."""
        deadline = time.monotonic() + wait
        pid_file = Path(r["exit_file"]).with_suffix(".pid")
        while r.get("child_pid") is None:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                info = json.loads(pid_file.read_text())
                r["child_pid"], r["child_start"] = int(info["child_pid"]), int(info["child_start"])
                break
            if (read_exit(r["exit_file"]) is not None or time.monotonic() >= deadline
                    or not alive(int(r["pid"]), int(r["start_time"]))):  # fmt: skip
                return None
            time.sleep(0.01)
        return int(r["child_pid"]), int(r["child_start"])

    def _signal_group(self, r: dict[str, Any], sig: int) -> bool:
        """Signal the replica's process group; False if nothing of ours is left to signal."""
        command = self._command(r)
        if command is None:
            return False  # the command never started
        pid, start = command
        st = proc_stat(pid)
        if st is not None and st[1] != start:
            return False  # pid reused by an unrelated process: its group is not ours
        try:
            os.killpg(pid, sig)  # the command leads its own session; the group outlives it
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def cancel(self, handle: Handle) -> None:
        """SIGTERM to every replica's process group, SIGKILL after ``term_grace``; then wait
        (boundedly) for the exit files, so a poll right after sees how each ended. A host that
        is stopped (SIGSTOP: it can record nothing) is killed: its replicas are lost anyway."""
        replicas = handle.get("replicas", [])
        for r in replicas:  # a replica handed to the host a moment ago is started first
            self._command(r, wait=_EXIT_FILE_WAIT)
        live = [r for r in replicas if self._signal_group(r, signal.SIGTERM)]
        deadline = time.monotonic() + self.term_grace
        while live and time.monotonic() < deadline:
            live = [r for r in live if _group_exists(int(r["child_pid"]))]
            if live:
                time.sleep(0.05)
        for r in live:
            self._signal_group(r, signal.SIGKILL)
        waiting = [r for r in replicas if r.get("child_pid") is not None]
        deadline = time.monotonic() + max(self.term_grace, _EXIT_FILE_WAIT)
        while waiting and time.monotonic() < deadline:
            waiting = [r for r in waiting if read_exit(r["exit_file"]) is None
                       and _host_supervises(r)]  # fmt: skip
            if waiting:
                time.sleep(0.02)

    def samples(self, handle: Handle, replica: int, since: float | None = None
                ) -> list[dict[str, Any]]:  # fmt: skip
        for r in handle.get("replicas", []):
            if int(r["index"]) == replica:
                return read_samples(samples_path(Path(r["exit_file"]).with_suffix(".hb")), since)
        raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")

    def logs(self, handle: Handle, replica: int, tail: int = 100) -> str:
        for r in handle.get("replicas", []):
            if int(r["index"]) == replica:
                path = Path(r["log"])
                if not path.exists():
                    return ""
                lines = path.read_text(errors="replace").splitlines()
                return "\n".join(lines[-tail:]) if tail > 0 else ""
        raise KeyError(f"job {handle.get('job_id')} has no replica {replica}")


#: how long cancel waits at most for the exit files once the replicas' groups are gone
_EXIT_FILE_WAIT = 5.0


def _host_supervises(r: dict[str, Any]) -> bool:
    """The replica's host is alive and can still record its exit; a stopped host is killed."""
    pid, start = int(r["pid"]), int(r["start_time"])
    st = proc_stat(pid)
    if st is None or st[1] != start or st[0] in ("Z", "X"):
        return False
    if st[0] in ("T", "t"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        return False
    return True


def _close_all(spawners: list[_Spawner]) -> None:
    while spawners:
        spawners.pop().close()


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
        (st := proc_stat(pid)) is not None and st[0] not in ("Z", "X")
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
