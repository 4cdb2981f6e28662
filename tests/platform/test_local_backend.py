"""LocalBackend and the sidecar with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from serve_support import wait_until

from recforge.platform.backends import (
    BackendError,
    BackendStatus,
    EnvPolicy,
    LocalBackend,
    ReplicaPhase,
)
from recforge.platform.backends.env import KERNEL_ENV
from recforge.platform.backends.local import process_start_time
from recforge.platform.model.specs import JobSpec, parse_job_spec

PY = sys.executable


def spec(command: list[str], *, workers: int = 1, **kw: object) -> JobSpec:
    body: dict[str, object] = {
        "name": "t",
        "command": command,
        "replica_specs": [
            {"role": "master", "resources": {"cpu": 0.5}},
            {"role": "worker", "replicas": workers, "resources": {"cpu": 0.5}},
        ],
    }
    body.update(kw)
    return parse_job_spec(body)


def wait_for(backend: LocalBackend, handle: dict, pred, timeout: float = 60.0) -> BackendStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = backend.poll(handle)
        if pred(st):
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last status {st}")
        time.sleep(0.05)


def finished(st: BackendStatus) -> bool:
    return all(r.phase in (ReplicaPhase.SUCCEEDED, ReplicaPhase.FAILED) for r in st.replicas)


ENV_DUMP = (
    "import json, os, sys; print(json.dumps(dict(os.environ)));"
    " sys.exit(int(os.environ['RECFORGE_REPLICA_INDEX']) * 3)"
)


def test_gang_runs_with_env_logs_and_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service's environment holds secrets: replicas get a built environment, not a copy.
    monkeypatch.setenv("RECFORGE_ADMIN_TOKEN", "leak-me")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak-me-too")
    monkeypatch.setenv("SHARED_MIRROR", "/data")
    backend = LocalBackend(tmp_path / "rt", env=EnvPolicy.from_service(["SHARED_MIRROR"]))
    handle = backend.launch(7, spec([PY, "-c", ENV_DUMP], env={"MY_VAR": "x"}), None, attempt=2)
    assert [r["role"] for r in handle["replicas"]] == ["master", "worker"]
    st = wait_for(backend, handle, finished)
    assert [(r.phase, r.exit_code) for r in st.replicas] == [
        (ReplicaPhase.SUCCEEDED, 0),
        (ReplicaPhase.FAILED, 3),
    ]
    assert not st.all_succeeded and [r.index for r in st.failed] == [1]
    env = json.loads(backend.logs(handle, 1, tail=1))
    keys = ("RECFORGE_JOB_ID", "RECFORGE_REPLICA_INDEX", "RECFORGE_ROLE", "RECFORGE_WORLD_SIZE",
            "RECFORGE_ATTEMPT", "MY_VAR", "SHARED_MIRROR")
    assert {k: env[k] for k in keys} == {
        "RECFORGE_JOB_ID": "7",
        "RECFORGE_REPLICA_INDEX": "1",
        "RECFORGE_ROLE": "worker",
        "RECFORGE_WORLD_SIZE": "2",
        "RECFORGE_ATTEMPT": "2",
        "MY_VAR": "x",
        "SHARED_MIRROR": "/data",  # allow-listed by the deployment
    }
    assert "leak-me" not in json.dumps(env)
    allowed = {"PATH", "LANG", "HOME", "OMP_NUM_THREADS", "MY_VAR", "SHARED_MIRROR",
               "RECFORGE_JOB_ID", "RECFORGE_JOB_NAME", "RECFORGE_ATTEMPT",
               "RECFORGE_REPLICA_INDEX", "RECFORGE_ROLE", "RECFORGE_ROLE_INDEX",
               "RECFORGE_WORLD_SIZE"}
    # Python itself may add a few variables of its own; nothing else comes from the service
    # but its numerical-kernel settings (machine configuration, no secrets).
    assert set(env) - allowed - set(KERNEL_ENV) <= {"LC_CTYPE", "PYTHONHOME"}, set(env) - allowed
    assert json.loads(Path(handle["replicas"][1]["exit_file"]).read_text())["exit_code"] == 3
    with pytest.raises(KeyError, match="no replica 5"):
        backend.logs(handle, 5)
    with pytest.raises(ValueError, match=r"RECFORGE_ADMIN_TOKEN.*never reach a job"):
        EnvPolicy.from_service(["RECFORGE_ADMIN_TOKEN"])


def test_a_job_computes_with_the_services_kernel_settings(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:  # fmt: skip
    """OPENBLAS_CORETYPE & co. reach a job from the service (a job without it ran other BLAS
    kernels and its metrics differed from a local run in the last bits); spec env wins."""
    for name in KERNEL_ENV:  # this machine's own settings out of the way
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("RECFORGE_ADMIN_TOKEN", "leak-me")
    policy = EnvPolicy.from_service([])
    assert "OPENBLAS_CORETYPE" in KERNEL_ENV and policy.kernel == {"OPENBLAS_CORETYPE": "Haswell"}
    backend = LocalBackend(tmp_path / "rt", env=policy)
    handle = backend.launch(8, spec([PY, "-c", ENV_DUMP], env={"MY_VAR": "x"}), None, attempt=1)
    wait_for(backend, handle, finished, timeout=120)
    env = json.loads(backend.logs(handle, 0, tail=1))
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and "leak-me" not in json.dumps(env)
    built = policy.build(spec([PY], env={"OPENBLAS_CORETYPE": "Zen"}), {}, cpu=1, home=None,
                         user=None)  # fmt: skip
    assert built["OPENBLAS_CORETYPE"] == "Zen"  # the spec's own setting wins
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert "OPENBLAS_CORETYPE" not in EnvPolicy().build(spec([PY]), {}, cpu=1, home=None, user=None)


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    grace = 30.0  # the sidecars stop on SIGTERM; only a hung one would need the SIGKILL
    backend = LocalBackend(tmp_path / "rt", term_grace=grace)
    code = (
        "import os, time; i = os.environ['RECFORGE_REPLICA_INDEX'];"
        f" open({str(tmp_path)!r} + '/child' + i + '.pid', 'w').write(str(os.getpid()));"
        " time.sleep(60)"
    )
    handle = backend.launch(1, spec([PY, "-c", code]), None)
    markers = [tmp_path / "child0.pid", tmp_path / "child1.pid"]
    wait_for(backend, handle, lambda s: s.all_running and all(_pid_in(m) for m in markers))
    children = [int(m.read_text()) for m in markers]
    t0 = time.monotonic()
    backend.cancel(handle)
    assert time.monotonic() - t0 < grace  # ended by SIGTERM, without waiting out the grace
    assert all(process_start_time(c) is None or _is_zombie(c) for c in children)
    st = backend.poll(handle)
    # The sidecars forwarded SIGTERM and recorded their command's death by signal.
    assert [r.exit_code for r in st.replicas] == [-signal.SIGTERM, -signal.SIGTERM]
    backend.cancel(handle)  # idempotent


def _pid_in(path: Path) -> bool:
    """The file holds a whole pid (it is written without a rename, so it may be partial)."""
    return path.exists() and path.read_text().strip().isdigit()


def _is_zombie(pid: int) -> bool:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2] == "Z"


def test_reattach_from_a_new_backend_and_detect_pid_reuse(tmp_path: Path) -> None:
    first = LocalBackend(tmp_path / "rt")
    handle = first.launch(3, spec([PY, "-c", "import time; time.sleep(0.8)"]), None)
    second = LocalBackend(tmp_path / "rt")  # a restarted service: not the parent
    assert second.reattach(handle)
    wait_for(second, handle, lambda st: st.all_running)  # the new backend sees them run
    st = wait_for(second, handle, finished)
    assert st.all_succeeded
    first.poll(handle)  # reap
    forged = json.loads(json.dumps(handle))
    for r in forged["replicas"]:
        r["pid"] = os.getpid()  # a live pid, but not the process we launched
        r["exit_file"] = str(tmp_path / "missing.exit")
    assert not second.reattach(forged)
    assert {r.phase for r in second.poll(forged).replicas} == {ReplicaPhase.NOT_FOUND}
    second.cancel(forged)  # must not signal the unrelated (our own) process group
    assert process_start_time(os.getpid()) is not None


def test_killed_sidecar_is_not_found_and_cancel_reaps_its_orphan(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "rt", term_grace=1.0)
    marker = tmp_path / "child.pid"
    cmd = [PY, "-c", f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid()));"
           " time.sleep(60)"]  # fmt: skip
    handle = backend.launch(4, spec(cmd, workers=1).model_copy(update={"min_available": 1}), None)
    assert len(handle["replicas"]) == 1  # only the gang is launched
    wait_for(backend, handle, lambda s: s.all_running and _pid_in(marker))
    os.kill(handle["replicas"][0]["pid"], signal.SIGKILL)
    st = wait_for(backend, handle, lambda s: not s.all_running)
    assert st.replicas[0].phase is ReplicaPhase.NOT_FOUND
    child = int(marker.read_text())
    assert process_start_time(child) is not None  # the orphan still runs...
    backend.cancel(handle)
    deadline = time.monotonic() + 30
    while process_start_time(child) is not None and not _is_zombie(child):
        assert time.monotonic() < deadline, "orphaned command survived cancel"
        time.sleep(0.05)


def test_memory_limit_covers_the_whole_process_tree(tmp_path: Path) -> None:
    """Three children of 60 MiB each: every one is within the replica's 100 MiB, together they
    are not. A per-process limit lets that pass; the replica's limit kills the whole tree."""
    backend = LocalBackend(tmp_path / "rt", memory="tree")
    kid = "import time; b = b'x' * (60 * 2**20); time.sleep(60)"
    code = (
        "import subprocess, sys, time; "
        f"kids = [subprocess.Popen([sys.executable, '-c', {kid!r}]) for _ in range(3)]; "
        "print('children', *[k.pid for k in kids], flush=True); time.sleep(60)"
    )
    s = parse_job_spec(
        {
            "name": "mem",
            "command": [PY, "-c", code],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1, "memory": "100Mi"}}],
        }
    )
    handle = backend.launch(5, s, None)
    st = wait_for(backend, handle, finished)
    (r,) = st.replicas
    assert (r.phase, r.exit_code) == (ReplicaPhase.FAILED, -9)
    assert r.detail.startswith("memory limit 100 MiB exceeded: the replica's"), r.detail
    assert handle["limits"]["memory"] == "tree" and handle["limits"]["memory_mib"] == {0: 100}
    kids = [int(p) for p in backend.logs(handle, 0).split("children", 1)[1].split()[:3]]
    deadline = time.monotonic() + 30
    while any(process_start_time(k) is not None and not _is_zombie(k) for k in kids):
        assert time.monotonic() < deadline, "children survived the memory kill"
        time.sleep(0.05)


def test_cpu_affinity(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "rt")
    s = parse_job_spec(
        {
            "name": "cpu",
            "command": [PY, "-c", "import os; print(len(os.sched_getaffinity(0)))"],
            "replica_specs": [{"role": "master", "resources": {"cpu": 1}}],
        }
    )
    handle = backend.launch(6, s, None)
    st = wait_for(backend, handle, finished)
    assert st.all_succeeded
    log = backend.logs(handle, 0)
    if len(os.sched_getaffinity(0)) > 1:
        assert log.splitlines()[0] == "1" and handle["limits"]["cpu_affinity"] == {
            0: handle["replicas"][0]["cpus"]
        }
    else:  # one core: affinity would change nothing, so it is not applied (and says so)
        assert handle["limits"]["cpu_affinity"] == {}


def test_sidecar_heartbeats_reach_the_backend(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "rt", heartbeat_interval=0.2)
    handle = backend.launch(4, spec([PY, "-c", "import time; time.sleep(2.0)"]).model_copy(
        update={"min_available": 1}), None)  # fmt: skip
    beats = set()
    deadline = time.monotonic() + 30
    while not finished(st := backend.poll(handle)):
        (r,) = st.replicas
        if r.heartbeat_at is not None:
            beats.add(r.heartbeat_at)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(beats) >= 3, beats  # the first beat plus periodic ones
    assert st.replicas[0].heartbeat_at is None and st.all_succeeded  # ended: no longer beating


def test_sidecar_cli_errors(tmp_path: Path) -> None:
    from recforge.platform.backends.sidecar import main

    assert main(["run", "--job", "1", "--replica", "0"]) == 2  # no command
    exit_file = tmp_path / "e.exit"
    rc = main(["run", "--job", "1", "--replica", "0", "--exit-file", str(exit_file), "--",
               "/nonexistent/binary"])  # fmt: skip
    assert rc == 127 and json.loads(exit_file.read_text())["exit_code"] == 127


def test_cgroup_v2_mode_writes_the_limits_where_the_hierarchy_allows(tmp_path: Path) -> None:
    """The files a cgroup-v2 limit writes, on a stand-in hierarchy (this machine's cgroups are
    v1, so replicas here use tree accounting; the kernel's enforcement is not exercised)."""
    from recforge.platform.backends.memory import CgroupLimit, memory_mode

    root = tmp_path / "cgroup"
    root.mkdir()
    assert memory_mode(root) == "tree"  # no unified hierarchy there
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("memory\n")
    (root / "recforge").mkdir()
    (root / "recforge" / "cgroup.subtree_control").write_text("memory\n")
    assert memory_mode(root) == "cgroup-v2"
    cg = CgroupLimit.create("job-1-a1-r0", 64, root)
    assert (cg.path / "memory.max").read_text() == str(64 * 2**20)
    assert (cg.path / "memory.swap.max").read_text() == "0"
    assert (cg.path / "memory.oom.group").read_text() == "1"
    cg.join()
    assert (cg.path / "cgroup.procs").read_text() == "0"  # the kernel reads "0" as "me"
    assert not cg.oom_killed()
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cg.oom_killed()


def _ppid(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def test_one_host_supervises_every_replica_and_outlives_close(tmp_path: Path) -> None:
    """No Python process per replica: every command is a child of the one host, whose pid the
    handles name as the replicas' supervision; after close() the host records the running
    replica's end, then exits."""
    backend = LocalBackend(tmp_path / "rt")
    gate = tmp_path / "go"
    # the payload polls for the gate, bounded so a failing test leaves no replica behind
    wait = (f"import os, time\nend = time.monotonic() + 120\n"
            f"while not os.path.exists({str(gate)!r}) and time.monotonic() < end: time.sleep(0.02)")
    a = backend.launch(1, spec([PY, "-c", wait]), None)  # 2 replicas
    b = backend.launch(2, spec([PY, "-c", wait], workers=2), None)  # 3 replicas
    reps = a["replicas"] + b["replicas"]
    hosts = {(r["pid"], r["start_time"]) for r in reps}
    assert len(hosts) == 1, hosts
    host = next(iter(hosts))[0]
    wait_for(backend, a, lambda s: s.all_running)
    wait_for(backend, b, lambda s: s.all_running)  # every pid file is there
    pid_files = [json.loads(Path(r["exit_file"]).with_suffix(".pid").read_text()) for r in reps]
    assert all((p["pid"], p["start_time"]) == next(iter(hosts)) for p in pid_files)
    children = [int(p["child_pid"]) for p in pid_files]
    assert len(set(children)) == 5 and host not in children
    assert all(_ppid(c) == host for c in children)  # the commands themselves, no sidecars
    assert all(os.getpgid(c) == c for c in children)  # each leads its own group (cancel)
    proc = backend._spawner[0].proc
    backend.close()
    gate.write_text("")
    # Exit files written after close: a host that ended with its input would leave none.
    st = wait_for(LocalBackend(tmp_path / "rt"), b, finished)
    assert st.all_succeeded
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the host did not exit after its last replica"
        time.sleep(0.05)
    assert proc.returncode == 0


def _single(command: list[str]) -> JobSpec:
    return parse_job_spec({"name": "one", "command": command,
                           "replica_specs": [{"role": "master"}]})  # fmt: skip


DAEMON = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"  # leaves the replica's session: only attribution finds it
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "        time.sleep(120)\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "end = time.monotonic() + 120\n"
    "while not os.path.exists(sys.argv[1]) and time.monotonic() < end: time.sleep(0.02)\n"
)


def test_a_daemonised_process_dies_with_its_replica_not_with_others(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "rt")
    other = backend.launch(1, _single([PY, "-c", "import time; time.sleep(60)"]), None)
    marker = tmp_path / "daemon.pid"
    h = backend.launch(2, _single([PY, "-c", DAEMON, str(marker)]), None)
    st = wait_for(backend, h, finished)
    assert st.all_succeeded
    daemon = int(marker.read_text())
    deadline = time.monotonic() + 30
    while process_start_time(daemon) is not None and not _is_zombie(daemon):
        assert time.monotonic() < deadline, "the daemonised process outlived its replica"
        time.sleep(0.05)
    assert backend.poll(other).all_running  # the other job's replica was not touched
    backend.cancel(other)
    assert [r.exit_code for r in backend.poll(other).replicas] == [-signal.SIGTERM]


def test_the_host_records_a_request_it_cannot_read_in_the_exit_file(tmp_path: Path) -> None:
    """A start request the host cannot use (a service bug) still ends the replica, with 126 and
    the reason in its exit file, and a notice to the service; a missing command gets 127."""
    import io

    from recforge.platform.backends.sidecar import read_exit
    from recforge.platform.backends.spawner import Host

    out = io.StringIO()
    host = Host(out)
    bad, missing = tmp_path / "bad.exit", tmp_path / "missing.exit"
    host.spawn({"job": 3, "exit_file": str(bad), "log": str(tmp_path / "bad.log")})  # no argv
    host.spawn({"job": 4, "replica": 0, "argv": ["/nonexistent/binary"], "env": {},
                "exit_file": str(missing), "log": str(tmp_path / "missing.log")})  # fmt: skip
    code, reason = read_exit(bad) or (None, "")
    assert code == 126 and reason.startswith("host: TypeError"), reason
    code, reason = read_exit(missing) or (None, "")
    assert code == 127 and "cannot start the command" in reason, reason
    assert "cannot start '/nonexistent/binary'" in (tmp_path / "missing.log").read_text()
    assert [json.loads(line)["job"] for line in out.getvalue().splitlines()] == [3, 4]
    assert host.replicas == {}


# A service that dies after handing a launch to its host and before recording it, while the
# host is too busy to read (stopped here): the request waits in the host's input.
_DYING_SERVICE = """
import os, signal, sys
from recforge.platform.backends import LocalBackend
from recforge.platform.model.specs import parse_job_spec
runtime, marker = sys.argv[1], sys.argv[2]
backend = LocalBackend(runtime, heartbeat_interval=0.5)
LocalBackend._save_handle = staticmethod(lambda handle: None)  # the crash comes first
host = backend._spawner_proc()
os.kill(host.proc.pid, signal.SIGSTOP)
backend.launch(7, parse_job_spec({"name": "late", "command": ["/bin/sh", "-c",
                                  f"echo ran >> {marker}"]}), None)
print(host.proc.pid, flush=True)
os._exit(0)
"""


def _crash_mid_launch(tmp_path: Path) -> tuple[Path, Path, int]:
    runtime, marker = tmp_path / "runtime", tmp_path / "ran"
    # stderr to a file: the host inherits it, and a pipe would stay open while it is stopped
    with (tmp_path / "service.err").open("w") as err:
        out = subprocess.run([PY, "-c", _DYING_SERVICE, str(runtime), str(marker)],
                             stdout=subprocess.PIPE, stderr=err, text=True, timeout=120,
                             check=True)  # fmt: skip
    return runtime, marker, int(out.stdout)


def test_recovery_waits_until_the_dead_services_host_has_read_its_input(tmp_path: Path) -> None:
    """Whether an interrupted launch started anything is known only once the old host has
    drained its input: until then recover_handle waits (it once gave up after 2 s and called a
    replica that was about to start 'never started')."""
    runtime, marker, host = _crash_mid_launch(tmp_path)
    backend = LocalBackend(runtime, heartbeat_interval=0.5)
    found: dict[str, object] = {}
    t = threading.Thread(target=lambda: found.update(handle=backend.recover_handle(7, 1)))
    t.start()
    t.join(3.0)
    assert t.is_alive(), found  # still waiting for the stopped host
    os.kill(host, signal.SIGCONT)
    t.join(120)
    handle = found["handle"]
    assert isinstance(handle, dict) and [r["index"] for r in handle["replicas"]] == [0]
    st = wait_for(backend, handle, finished)
    assert st.all_succeeded and marker.read_text() == "ran\n"
    backend.close()


def test_recovery_that_cannot_tell_says_so(tmp_path: Path) -> None:
    runtime, marker, host = _crash_mid_launch(tmp_path)
    backend = LocalBackend(runtime, heartbeat_interval=0.5)
    try:
        with pytest.raises(BackendError, match=rf"host\(s\) \[{host}\].*cannot tell"):
            backend.recover_handle(7, 1, settle_s=0.2)
    finally:
        os.kill(host, signal.SIGCONT)
    # Nothing prepared for an attempt: certain at once, without waiting for any host.
    assert backend.recover_handle(7, 2, settle_s=0.0) is None
    wait_until(marker.exists, 120, "the old host to start what it was given")
    backend.close()
