"""Platform throughput end to end: REST submissions with the loop off and on, and trivial jobs
completed per second on the local backend.

Run: ``.venv/bin/python benchmarks/bench_api.py`` (``--quick`` for a small smoke run,
``--profile`` to sample the server with py-spy during the first SQLite run, loop off and on:
``pip install py-spy``).
Writes ``benchmarks/results/api.json`` and ``api.md`` (and ``api-profile.md`` with --profile).

Every run starts ``recforge platform serve --config`` in a subprocess (uvicorn, one worker, bound
to 127.0.0.1, a fresh store: SQLite in a temporary directory, or a new database on a private
PostgreSQL 15 server), access and service logs on at INFO into a file, and stops it by its pid.

* **submissions**: one client thread with ``--clients`` keep-alive connections (one request in
  flight on each; prepared request bytes and minimal answer parsing, so the client, which
  shares the server's cores, stays lean; its CPU per job is reported, as is the CPU of the
  server's main thread alone, uvicorn's event loop: the submission path without the scheduling
  loop's own work) submits ``--jobs`` valid
  gang specs (1 master + 2 workers); jobs/s is the count over the
  time from the first request to the last answer. The same run measures the loop **off**
  (``--no-loop``: authenticate, validate, check queue and feasibility, store job + event, answer
  201) and **on** (the scheduling loop runs, with an 8-core local cluster kept busy by 1-core
  jobs of 0.5 s: it admits, launches and settles them throughout). Every answer must be 201 and
  the store must hold exactly the submitted jobs afterwards.
* **trivial**: ``--trivial-jobs`` one-replica ``/bin/true`` jobs of 1 core on an 8-core local
  cluster (8 slots), submitted through the API; completed jobs/s is their count over the time
  from the first submission to the last job's end (the store's timestamps), and the steady rate
  counts the middle 80 % of completions.

Figures are medians of ``--runs`` runs; each run records the 1-minute load average (the machine
is shared) and CPU seconds from ``/proc``: the server's (every thread) over each submissions
window and over a trivial run, and for trivial runs also the local host process's with its
reaped children (every job's command). CPU per job does not grow with the machine's load the way
wall-clock rates shrink with it.

Reference: Slurm's published sustained 500 batch jobs/s (other hardware, internal to its
controller); the clients here share the server's cores.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

RESULTS = Path(__file__).resolve().parent / "results"
_DB_IDS = itertools.count(1)
SLURM_JOBS_PER_S = 500.0
ADMIN_TOKEN = "bench-admin-token"
STORES = {
    "sqlite": "SQLite (WAL) in a temporary directory",
    "postgresql": "PostgreSQL 15, private server on 127.0.0.1 (fresh database per run)",
}


def _config(cpu: float, *, loop_jobs: bool = False) -> dict[str, Any]:
    return {
        "backends": {"local": {"heartbeat_interval": 5.0}},
        "jobs": {"tick_interval": 1.0},
        "clusters": [{"name": "local", "type": "local",
                      "capacity": {"cpu": cpu, "memory": "256Gi", "pods": 100_000}}],
        "groups": [{"name": "bench", "quotas": [{"cluster": "local",
                                                  "nominal": {"cpu": cpu, "memory": "256Gi"}}]}],
        "queues": [{"name": "bench-q", "group": "bench"}],
    }  # fmt: skip


def _gang(i: int, command: list[str], cpu: float = 0.5) -> dict[str, Any]:
    return {
        "name": f"bench-{i}",
        "queue": "bench-q",
        "command": command,
        "replica_specs": [
            {"role": "master", "resources": {"cpu": cpu, "memory": "256Mi"}},
            {"role": "worker", "replicas": 2, "resources": {"cpu": cpu, "memory": "512Mi"}},
        ],
        "labels": {"bench": "api"},
    }


def _single(i: int, command: list[str]) -> dict[str, Any]:
    return {"name": f"bench-{i}", "queue": "bench-q", "command": command,
            "replica_specs": [{"role": "master", "resources": {"cpu": 1}}]}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``recforge platform serve`` in a subprocess, stopped by its pid."""

    def __init__(self, workdir: Path, url: str, config: dict[str, Any], *, loop: bool) -> None:
        from recforge.platform.store import Store

        self.url = url
        store = Store(url)
        store.add_user("bench", "bench")
        self.token = store.issue_token("bench", label="bench")
        store.close()
        cfg = workdir / "platform.yaml"
        cfg.write_text(yaml.safe_dump(config))
        self.port = _free_port()
        state = Path(tempfile.mkdtemp(prefix="rf-bench-state-", dir="/tmp"))
        os.chmod(state, 0o711)  # replicas (an unprivileged user) work below it
        self.state = state
        self.log_path = workdir / "server.log"
        env = {**os.environ, "RECFORGE_ADMIN_TOKEN": ADMIN_TOKEN,
               "RECFORGE_STATE_DIR": str(state), "RECFORGE_STORE_URL": url}  # fmt: skip
        argv = [sys.executable, "-m", "recforge.cli.main", "platform", "serve", "--config",
                str(cfg), "--port", str(self.port), "--log-level", "INFO"]  # fmt: skip
        if not loop:
            argv.append("--no-loop")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if self._get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start within 60 s")
            time.sleep(0.05)

    def _get(self, path: str) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.state, ignore_errors=True)


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, *, children: bool = False, thread: int | None = None) -> float:
    """CPU seconds (user + system, every thread) ``pid`` has used; with ``children``, plus what
    its reaped children used (``/proc/<pid>/stat`` fields 14-17); with ``thread``, only that
    thread's (``/proc/<pid>/task/<tid>/stat``)."""
    where = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    raw = Path(where).read_text()
    f = raw[raw.rindex(")") + 2 :].split()
    used = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return used / _TICK


def _child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def _request(port: int, token: str, body: bytes) -> bytes:
    """One ``POST /jobs`` as raw HTTP/1.1 bytes (keep-alive), built before the clock starts."""
    return (b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (port, token.encode(), len(body), body))  # fmt: skip


class _Conn:
    """One keep-alive connection of the lean client: sends a prepared request, then reads one
    answer (status line, headers up to the blank line, ``Content-Length`` bytes of body)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.todo: list[int] = []
        self.sent_at = 0.0

    def send(self, data: bytes) -> None:
        self.sent_at = time.perf_counter()
        self.sock.sendall(data)

    def answer(self) -> tuple[int, bytes] | None:
        """Read what has arrived; the (status, body) once an answer is complete, else None."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self.buf[:head_end].lower()
        at = head.find(b"content-length:")
        if at < 0:
            raise RuntimeError(f"answer without content-length: {head[:200]!r}")
        line_end = head.find(b"\r\n", at)
        length = int(head[at + 15 : line_end if line_end >= 0 else None])
        if len(self.buf) < head_end + 4 + length:
            return None
        body = self.buf[head_end + 4 : head_end + 4 + length]
        self.buf = self.buf[head_end + 4 + length :]
        return int(head[9:12]), body


def _submit_all(server: Server, bodies: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    """POST every body over ``clients`` keep-alive connections, one request in flight on each,
    from ONE client thread (a selector; prepared request bytes, minimal answer parsing: the
    client shares the server's cores, so it is kept lean). Also the server's and the client's
    CPU seconds over the same window (figures the machine's load does not inflate, unlike
    wall-clock rates)."""
    import selectors

    requests = [_request(server.port, server.token, json.dumps(b).encode()) for b in bodies]
    conns = [_Conn(server.port) for _ in range(min(clients, len(requests)))]
    queue = iter(range(len(requests)))
    latencies: list[float] = []
    errors: list[str] = []
    sel = selectors.DefaultSelector()
    cpu_client0 = time.process_time()
    start = time.perf_counter()
    cpu0 = _cpu_seconds(server.proc.pid)
    # uvicorn's event loop (every HTTP request, the submission path) runs in the main thread,
    # whose tid is the pid; the scheduling loop and the backends' helpers have threads of their own.
    api0 = _cpu_seconds(server.proc.pid, thread=server.proc.pid)
    for c in conns:
        i = next(queue, None)
        if i is not None:
            c.todo.append(i)
            c.send(requests[i])
            sel.register(c.sock, selectors.EVENT_READ, c)
    open_conns = len(conns)
    while open_conns:
        for key, _ in sel.select(timeout=60):
            c = key.data
            got = c.answer()
            if got is None:
                continue
            latencies.append(time.perf_counter() - c.sent_at)
            i = c.todo.pop()
            if got[0] != 201:
                errors.append(f"job {i}: HTTP {got[0]} {got[1][:200]!r}")
            nxt = next(queue, None)
            if nxt is None:
                sel.unregister(c.sock)
                open_conns -= 1
            else:
                c.todo.append(nxt)
                c.send(requests[nxt])
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(server.proc.pid) - cpu0
    api = _cpu_seconds(server.proc.pid, thread=server.proc.pid) - api0
    cpu_client = time.process_time() - cpu_client0
    sel.close()
    for c in conns:
        c.sock.close()
    if errors:
        raise RuntimeError(f"{len(errors)} submissions failed, first: {errors[0]}")
    if len(latencies) != len(requests):
        raise RuntimeError(f"{len(latencies)} answers for {len(requests)} submissions")
    lat = sorted(latencies)
    return {
        "jobs": len(bodies),
        "seconds": round(elapsed, 4),
        "jobs_per_s": round(len(bodies) / elapsed, 1),
        "latency_ms_p50": round(1000 * lat[len(lat) // 2], 2),
        "latency_ms_p99": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2),
        "server_cpu_seconds": round(cpu, 3),
        "server_cpu_ms_per_job": round(1000 * cpu / len(bodies), 3),
        "jobs_per_server_cpu_second": round(len(bodies) / cpu, 1) if cpu > 0 else None,
        "api_thread_cpu_ms_per_job": round(1000 * api / len(bodies), 3),
        "client_cpu_ms_per_job": round(1000 * cpu_client / len(bodies), 3),
    }


def submissions_run(url: str, workdir: Path, n: int, clients: int, warmup: int, *, loop: bool,
                    profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """One submissions run (see the module docstring); checks the store afterwards."""
    from recforge.platform.store import Store

    config = _config(8.0)
    load = round(os.getloadavg()[0], 2)
    server = Server(workdir, url, config, loop=loop)
    sampler = None
    try:
        if loop:  # keep the 8 cores busy with 0.5 s jobs while the submissions run
            busy = [_single(-10_000 - i, ["/bin/sleep", "0.5"]) for i in range(40)]
            _submit_all(server, busy, 1)
        _submit_all(server, [_gang(-1 - i, ["/bin/true"]) for i in range(warmup)], 1)
        bodies = [_gang(i, ["/bin/true"]) for i in range(n)]
        if profile is not None:
            sampler = _py_spy(server.proc.pid, profile)
        res = _submit_all(server, bodies, clients)
        if loop:
            res["loop_admitted_during_run"] = None
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
        server.stop()
    store = Store(url)
    counts = store.count_jobs()
    store.close()
    stored = sum(counts.values())
    expected = n + warmup + (40 if loop else 0)
    if stored != expected or (not loop and set(counts) != {"PENDING"}):
        raise RuntimeError(f"store holds {counts}, expected {expected} jobs")
    res.update({"loop": loop, "stored": counts, "load_average_1min_before": load})
    return res


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (200/s, only the thread holding the GIL) into ``out``."""
    sampler = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid), "--format",
         "raw", "--output", str(out), "--rate", "200", "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # let the sampler attach before the clock starts
    return sampler


def trivial_run(url: str, workdir: Path, n: int, clients: int,
                profile: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Trivial jobs through the API and the local backend; completion rates from the store."""
    from recforge.platform.store import Store

    load = round(os.getloadavg()[0], 2)
    server = Server(workdir, url, _config(8.0), loop=True)
    sampler = _py_spy(server.proc.pid, profile) if profile is not None else None
    try:
        cpu0 = _cpu_seconds(server.proc.pid)
        sub = _submit_all(server, [_single(i, ["/bin/true"]) for i in range(n)], clients)
        store = Store(url)
        deadline = time.monotonic() + max(600.0, n)
        while store.count_jobs(["SUCCEEDED", "FAILED"]).get("SUCCEEDED", 0) < n:
            counts = store.count_jobs()
            if counts.get("FAILED"):
                raise RuntimeError(f"trivial jobs failed: {counts}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"trivial jobs did not finish: {counts}")
            time.sleep(0.2)
        server_cpu = _cpu_seconds(server.proc.pid) - cpu0
        # The local host (the server's one child) has reaped every job's command.
        host_cpu = sum(_cpu_seconds(p, children=True) for p in _child_pids(server.proc.pid))
        jobs = [j for j in store.iter_jobs(["SUCCEEDED"])]
        store.close()
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(timeout=60)
        server.stop()
    created = min(j.created_at for j in jobs)
    ends = sorted(float(j.finished_at or 0) for j in jobs)
    lo, hi = ends[len(ends) // 10], ends[(9 * len(ends)) // 10]
    return {
        "jobs": n,
        "submit_jobs_per_s": sub["jobs_per_s"],
        "seconds_first_submit_to_last_end": round(ends[-1] - created, 3),
        "completed_jobs_per_s": round(n / (ends[-1] - created), 1),
        "steady_completed_jobs_per_s": round(0.8 * n / (hi - lo), 1) if hi > lo else None,
        "server_cpu_ms_per_job": round(1000 * server_cpu / n, 3),
        "host_and_jobs_cpu_ms_per_job": round(1000 * host_cpu / n, 3),
        "load_average_1min_before": load,
    }


def _summarise_profile(raw: Path, top: int = 25) -> str:
    """Own and inclusive sample shares of the hottest frames from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count

    def table(d: dict[str, int]) -> str:
        rows = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return "\n".join(f"| {100 * c / total:5.1f} % | `{f[:150]}` |" for f, c in rows)

    return (
        f"{total:,} samples.\n\n"
        f"### Own time (the frame itself)\n\n| share | frame |\n|---:|---|\n{table(own)}\n\n"
        f"### Inclusive time (the frame and what it calls)\n\n| share | frame |\n|---:|---|\n"
        f"{table(incl)}\n"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--trivial-jobs", type=int, default=1000)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="small counts, 1 run (smoke test)")
    p.add_argument("--profile", action="store_true", help="sample the server with py-spy")
    p.add_argument("--profile-raw", type=Path, default=None,
                   help="also keep py-spy's raw stacks in this folder")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--stores", default="sqlite,postgresql",
                   help="comma-separated: sqlite, postgresql (a private PostgreSQL 15 server)")
    p.add_argument("--scenarios", default="submissions,trivial")
    args = p.parse_args()
    if args.quick:
        args.jobs, args.trivial_jobs, args.runs, args.warmup = 300, 200, 1, 10
    if min(args.jobs, args.clients, args.runs, args.trivial_jobs) < 1:
        p.error("--jobs, --trivial-jobs, --clients and --runs must be >= 1")
    stores = [x.strip() for x in args.stores.split(",") if x.strip()]
    scenarios = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    if set(stores) - set(STORES) or not stores:
        p.error(f"--stores: choose among {sorted(STORES)}")
    if set(scenarios) - {"submissions", "trivial"} or not scenarios:
        p.error("--scenarios: choose among submissions, trivial")

    pg = None
    results: dict[str, Any] = {}
    profile_md: dict[str, str] = {}
    trivial_profile = ""
    try:
        for kind in stores:
            if kind == "postgresql" and pg is None:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "platform"))
                from pg import start_postgres  # the tests' private-server helper

                pg = start_postgres()
            per: dict[str, Any] = {"store": STORES[kind]}
            load_before = _uptime()  # of this store's runs

            def fresh_url(workdir: Path, kind: str = kind, pg: Any = pg) -> str:
                if kind == "sqlite":
                    return f"sqlite:///{workdir / 'platform.db'}"
                return str(pg.create_database(f"bench{next(_DB_IDS)}_{os.getpid()}"))

            if "submissions" in scenarios:
                runs: list[dict[str, Any]] = []
                for r in range(args.runs):
                    for loop in (False, True):  # the same run measures both, back to back
                        workdir = Path(tempfile.mkdtemp(prefix="recforge-bench-api-"))
                        prof = (workdir / "profile.txt") if (args.profile and r == 0
                                                             and kind == "sqlite") else None
                        try:
                            res = submissions_run(fresh_url(workdir), workdir, args.jobs,
                                                  args.clients, args.warmup, loop=loop,
                                                  profile=prof)  # fmt: skip
                            if prof is not None and prof.exists():
                                profile_md["on" if loop else "off"] = _summarise_profile(prof)
                                if args.profile_raw is not None:
                                    args.profile_raw.mkdir(parents=True, exist_ok=True)
                                    shutil.copy(prof, args.profile_raw /
                                                f"loop-{'on' if loop else 'off'}.txt")
                        finally:
                            shutil.rmtree(workdir, ignore_errors=True)
                        res["run"] = r + 1
                        print(f"{kind} run {r + 1}/{args.runs} loop {'on ' if loop else 'off'}: "
                              f"{res['jobs_per_s']} jobs/s (p50 {res['latency_ms_p50']} ms, "
                              f"p99 {res['latency_ms_p99']} ms, load "
                              f"{res['load_average_1min_before']})", flush=True)  # fmt: skip
                        runs.append(res)
                off = statistics.median(x["jobs_per_s"] for x in runs if not x["loop"])
                on = statistics.median(x["jobs_per_s"] for x in runs if x["loop"])
                ratios = [b["jobs_per_s"] / a["jobs_per_s"]
                          for a, b in zip(runs[0::2], runs[1::2], strict=True)]  # fmt: skip
                per["submissions"] = {
                    "setup": _scenario_setup(args, load_before, jobs=args.jobs),
                    "runs": runs,
                    "median_jobs_per_s_loop_off": off,
                    "median_jobs_per_s_loop_on": on,
                    "median_ratio_on_over_off": round(statistics.median(ratios), 3),
                    "ratio_vs_slurm_loop_on": round(on / SLURM_JOBS_PER_S, 3),
                    "median_server_cpu_ms_loop_off": statistics.median(
                        x["server_cpu_ms_per_job"] for x in runs if not x["loop"]),
                    "median_server_cpu_ms_loop_on": statistics.median(
                        x["server_cpu_ms_per_job"] for x in runs if x["loop"]),
                }  # fmt: skip
            if "trivial" in scenarios and kind == "sqlite":
                truns = []
                for r in range(args.runs):
                    workdir = Path(tempfile.mkdtemp(prefix="recforge-bench-trivial-"))
                    prof = (workdir / "profile.txt") if args.profile and r == 0 else None
                    try:
                        res = trivial_run(fresh_url(workdir), workdir, args.trivial_jobs,
                                          args.clients, prof)  # fmt: skip
                        if prof is not None and prof.exists():
                            trivial_profile = _summarise_profile(prof)
                            if args.profile_raw is not None:
                                args.profile_raw.mkdir(parents=True, exist_ok=True)
                                shutil.copy(prof, args.profile_raw / "trivial.txt")
                    finally:
                        shutil.rmtree(workdir, ignore_errors=True)
                    print(f"{kind} trivial run {r + 1}/{args.runs}: "
                          f"{res['completed_jobs_per_s']} completed jobs/s (steady "
                          f"{res['steady_completed_jobs_per_s']}, load "
                          f"{res['load_average_1min_before']})", flush=True)  # fmt: skip
                    truns.append(res)
                per["trivial"] = {
                    "setup": _scenario_setup(args, load_before, jobs=args.trivial_jobs),
                    "runs": truns,
                    "median_completed_jobs_per_s": statistics.median(
                        x["completed_jobs_per_s"] for x in truns),
                    "median_steady_completed_jobs_per_s": statistics.median(
                        x["steady_completed_jobs_per_s"] or 0 for x in truns),
                    "median_server_cpu_ms_per_job": statistics.median(
                        x["server_cpu_ms_per_job"] for x in truns),
                    "median_host_and_jobs_cpu_ms_per_job": statistics.median(
                        x["host_and_jobs_cpu_ms_per_job"] for x in truns),
                }  # fmt: skip
            results[kind] = per
    finally:
        if pg is not None:
            pg.stop()

    import fastapi
    import uvicorn

    # Keep what this invocation did not measure (another store or scenario, e.g. the trivial
    # jobs when only submissions ran): each scenario's result carries its own setup.
    previous = args.out / "api.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        kept = old.get("results", {})
        top = old.get("setup", {})  # older files kept one setup for the whole invocation
        for per in kept.values():
            for name, jobs_key in (("submissions", "jobs_per_run"),
                                   ("trivial", "trivial_jobs_per_run")):  # fmt: skip
                if name in per and "setup" not in per[name] and jobs_key in top:
                    per[name]["setup"] = {"jobs_per_run": top[jobs_key],
                                          "clients": top.get("clients"), "runs": top.get("runs")}
        for kind, per in results.items():
            kept[kind] = {**kept.get(kind, {}), **per}
        results = {k: kept[k] for k in STORES if k in kept}
    result = {
        "benchmark": "platform throughput: REST submissions (loop off/on) and trivial jobs",
        "setup": {
            "server": f"recforge platform serve --config (uvicorn {uvicorn.__version__}, 1 "
                      f"worker, fastapi {fastapi.__version__})",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "note": "clients share the machine's cores with the server, and the machine is "
                    "shared with other work (see each run's 1-minute load average)",
        },
        "results": results,
        "reference": {"slurm_sustained_jobs_per_s": SLURM_JOBS_PER_S},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "api.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "api.md").write_text(_markdown(results))
    if profile_md:
        (args.out / "api-profile.md").write_text(
            "# Where the server's time goes (py-spy, `bench_api.py --profile`)\n\n"
            "py-spy samples (200/s, `--gil`: only the thread holding the GIL, so a sample is "
            "CPU time spent in Python; waits and GIL hand-overs do not show) of the server "
            "during the first SQLite submissions run.\n\n"
            + "".join(f"## Loop {k}\n\n{v}\n" for k, v in sorted(profile_md.items()))
        )
    if trivial_profile:
        (args.out / "api-trivial-profile.md").write_text(
            "# Where the server's time goes with trivial jobs (py-spy, `bench_api.py --profile`)"
            "\n\npy-spy samples (200/s, `--gil`: CPU time spent in Python) of the server during "
            f"the first trivial run ({args.trivial_jobs} `/bin/true` jobs: submission, "
            "admission, launch, settling).\n\n" + trivial_profile
        )
    print(f"-> {args.out / 'api.json'}")


def _uptime() -> str:
    """``uptime``'s line (the machine is shared: its load goes with every result)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _scenario_setup(args: argparse.Namespace, load_before: str, *, jobs: int) -> dict[str, Any]:
    return {"jobs_per_run": jobs, "clients": args.clients, "runs": args.runs,
            "warmup_jobs": args.warmup, "uptime_before": load_before, "uptime_after": _uptime(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": _commit()}  # fmt: skip


def _commit() -> str:
    """The repository's commit the run measured (``+changes`` when the tree differs from it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def _setup_line(setup: dict[str, Any] | None) -> str:
    if not setup or "date" not in setup:  # written before setups were kept per scenario
        return ""
    commit = f" at commit {setup['commit']}" if setup.get("commit") else ""
    return (f" Measured {setup['date']}{commit}, {setup['runs']} run(s); `uptime` before: "
            f"`{setup['uptime_before']}`; after: `{setup['uptime_after']}`.")


def _markdown(results: dict[str, Any]) -> str:
    out = [
        "# Platform throughput (REST API, scheduling loop, local backend)",
        "",
        "`benchmarks/bench_api.py`: medians of each scenario's runs; every run starts `recforge "
        "platform serve --config` (uvicorn, 1 worker) on 127.0.0.1 with logs on, and records "
        f"the 1-minute load average before it. Machine: {os.cpu_count()} CPUs shared with the "
        f"benchmark's client and with other work, Python {platform.python_version()}.",
        "",
    ]
    for res in results.values():
        out += [f"## {res['store']}", ""]
        sub = res.get("submissions")
        if sub:
            st = sub.get("setup") or {}
            client = ("one lean client thread" if any("client_cpu_ms_per_job" in x
                                                       for x in sub["runs"])
                      else "client threads (http.client)")  # fmt: skip
            out += [
                f"**Submissions** ({st.get('jobs_per_run', '?')} gang specs per run, "
                f"{st.get('clients', '?')} keep-alive connections, {client}): loop off = API "
                "only; loop on = the scheduling loop admitting, launching and settling 1-core "
                "jobs of 0.5 s on an 8-core local cluster throughout." + _setup_line(st),
                "",
                "| run | loop | jobs/s | p50 latency (ms) | p99 latency (ms) | server CPU ms/job "
                "| jobs per server CPU s | API thread CPU ms/job | client CPU ms/job "
                "| load avg before |",
                "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for x in sub["runs"]:
                out.append(f"| {x['run']} | {'on' if x['loop'] else 'off'} | {x['jobs_per_s']:.1f}"
                           f" | {x['latency_ms_p50']:.2f} | {x['latency_ms_p99']:.2f} | "
                           f"{x['server_cpu_ms_per_job']:.3f} | "
                           f"{x['jobs_per_server_cpu_second']} | "
                           f"{x.get('api_thread_cpu_ms_per_job', '-')} | "
                           f"{x.get('client_cpu_ms_per_job', '-')} | "
                           f"{x['load_average_1min_before']:.2f} |")  # fmt: skip
            out += [
                "",
                f"**Median: {sub['median_jobs_per_s_loop_off']:.1f} jobs/s with the loop off, "
                f"{sub['median_jobs_per_s_loop_on']:.1f} jobs/s with it on; on/off = "
                f"{sub['median_ratio_on_over_off']:.2f}** (median of the per-run ratios). "
                f"Server CPU per submission: {sub['median_server_cpu_ms_loop_off']:.3f} ms "
                f"with the loop off, {sub['median_server_cpu_ms_loop_on']:.3f} ms with it on "
                f"(medians; CPU-bound capacity {1000 / sub['median_server_cpu_ms_loop_off']:.0f}"
                f" and {1000 / sub['median_server_cpu_ms_loop_on']:.0f} jobs per CPU second).",
                "",
            ]
        tri = res.get("trivial")
        if tri:
            st = tri.get("setup") or {}
            out += [
                f"**Trivial jobs** ({st.get('jobs_per_run', '?')} one-replica `/bin/true` jobs "
                "of 1 core, 8 slots, submitted through the API, run as an unprivileged user "
                "and supervised by the local backend's host process):" + _setup_line(st),
                "",
                "| run | completed jobs/s (first submit to last end) | steady (middle 80 %) | "
                "submissions/s | server CPU ms/job | host + jobs CPU ms/job | "
                "load avg before |",
                "|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for i, x in enumerate(tri["runs"]):
                out.append(f"| {i + 1} | {x['completed_jobs_per_s']:.1f} | "
                           f"{x['steady_completed_jobs_per_s']} | {x['submit_jobs_per_s']:.1f} "
                           f"| {x['server_cpu_ms_per_job']:.2f} | "
                           f"{_host_cpu(x):.2f} "
                           f"| {x['load_average_1min_before']:.2f} |")  # fmt: skip
            out += ["", f"**Median: {tri['median_completed_jobs_per_s']:.1f} completed jobs/s "
                        f"(steady {tri['median_steady_completed_jobs_per_s']:.1f}).** CPU per "
                        f"job: {tri['median_server_cpu_ms_per_job']:.2f} ms in the server "
                        "(submission, admission, launch, settling), "
                        f"{_host_cpu(tri, 'median_'):.2f} ms in the "
                        "local host process and the job itself (medians).", ""]  # fmt: skip
    out += [
        "Reference: Slurm's published 500 batch jobs/s sustained (other hardware, internal to its "
        "controller); these figures include HTTP, JSON, authentication and the store's commits, "
        "with the clients on the same cores.",
        "",
    ]
    return "\n".join(out)


def _host_cpu(row: dict[str, Any], prefix: str = "") -> float:
    """CPU ms per job outside the server (rows before the host process named it otherwise)."""
    key = f"{prefix}host_and_jobs_cpu_ms_per_job"
    return float(row[key] if key in row else row[f"{prefix}spawner_and_sidecars_cpu_ms_per_job"])


if __name__ == "__main__":
    main()
