"""The supervisor of a service job: replicas, readiness, restarts, scale, one stable address.

It is the service job's only platform replica (``python .../backends/supervisor.py <plan>``,
run under the sidecar like any replica, so heartbeats, logs, memory limit and cancel work as for
a batch job). It needs the standard library only (and recforge's stdlib-only ``_json``, from the
tree the file lives in) and is run as a file, so the job's interpreter (the run-as user's, see
``backends.local.job_python``) need not have recforge's dependencies installed. It

* listens on ``127.0.0.1:<port>`` (the service's address, the same for the whole attempt) and
  passes each connection to a ready replica, round robin (plain TCP: any protocol);
* starts ``desired`` replicas of the server command, each with its own ``PORT`` on 127.0.0.1 and
  ``RECFORGE_SERVICE_REPLICA``, their output in the job's log prefixed ``[replica <slot>]``;
* checks readiness every period (HTTP GET of a path answering 2xx/3xx, or a command exiting 0);
  only ready replicas get connections;
* restarts a replica that exits, after the restart policy's backoff (reset once it is ready);
* reads the wanted count from ``control.json`` (written by the platform's scale call) and starts
  or stops replicas to match;
* on SIGTERM stops taking connections, sends SIGTERM to every replica, waits ``grace_seconds``,
  SIGKILLs what is left and exits 0.

Its state (address, replicas, restarts) is ``status.json`` in ``<cwd>/.recforge-service/
job-<id>-a<attempt>/`` (cwd = the attempt's working directory), which the platform reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as a file (see above): import recforge from the tree it lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from recforge._json import dumps  # stdlib only, like this module

__all__ = ["encode_plan", "restart_delays", "state_dir"]

STATUS_FILE = "status.json"
CONTROL_FILE = "control.json"
_TICK = 0.2


def restart_delays(restart: Any) -> list[float]:
    """The backoff before restart n = 1, 2, ... of a service's replica, from its
    :class:`~recforge.platform.model.service.RestartPolicy` (computed by the platform, so the
    formula stays in one place; it is constant from the 65th on, as its exponent is capped)."""
    return [float(restart.delay(n)) for n in range(1, 66)]


def encode_plan(plan: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(dumps(plan, indent=None).encode()).decode()


def state_dir(workdir: str | os.PathLike[str], job_id: int, attempt: int) -> Path:
    """Where the supervisor of ``job_id``'s ``attempt`` keeps status and control files."""
    return Path(workdir) / ".recforge-service" / f"job-{job_id}-a{attempt}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(data, indent=None))
    os.replace(tmp, path)


@dataclass
class Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    ready: bool = False
    failures: int = 0  # consecutive, reset when ready
    restarts: int = 0
    not_before: float = 0.0
    last_exit: int | None = None
    stopping: bool = False
    checked_at: float = 0.0
    pump: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, plan: dict[str, Any], where: Path) -> None:
        self.command: list[str] = plan["command"]
        self.desired: int = int(plan["replicas"])
        self.limit: int = int(plan["max_replicas"])
        self.readiness: dict[str, Any] = plan["readiness"]
        self.delays: list[float] = [float(d) for d in plan["restart_delays"]]
        self.grace: float = float(plan["grace_seconds"])
        self.port: int = int(plan.get("port") or 0)
        self.where = where
        self.slots: dict[int, Slot] = {}
        self.stopping = asyncio.Event()
        self._rr = itertools.count()
        self.server: asyncio.Server | None = None

    # -- replicas -----------------------------------------------------------------------------
    async def _start(self, slot: Slot) -> None:
        slot.port = _free_port()
        env = {**os.environ, "PORT": str(slot.port), "RECFORGE_SERVICE_REPLICA": str(slot.index)}
        try:
            slot.proc = await asyncio.create_subprocess_exec(
                *self.command, env=env, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
        except OSError as exc:
            print(f"RECFORGE_SERVICE replica {slot.index} cannot start: {exc}", flush=True)
            self._failed(slot, 127)
            return
        slot.ready = False
        slot.pump = asyncio.create_task(self._pump(slot.index, slot.proc))
        print(f"RECFORGE_SERVICE replica {slot.index} started pid {slot.proc.pid} "
              f"port {slot.port}", flush=True)  # fmt: skip

    @staticmethod
    async def _pump(index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            sys.stdout.write(f"[replica {index}] {raw.decode(errors='replace').rstrip()}\n")
            sys.stdout.flush()

    def _failed(self, slot: Slot, code: int | None) -> None:
        slot.failures += 1
        slot.restarts += 1
        slot.ready = False
        slot.last_exit = code
        delay = self.delays[min(slot.failures, len(self.delays)) - 1]
        slot.not_before = time.monotonic() + delay
        slot.proc = None
        print(f"RECFORGE_SERVICE replica {slot.index} exited with code {code}; restart "
              f"{slot.restarts} in {delay:g}s", flush=True)  # fmt: skip

    async def _stop(self, slot: Slot, grace: float) -> None:
        proc = slot.proc
        slot.stopping = True
        slot.ready = False
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if slot.pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(slot.pump, 2)
        if proc is not None:
            print(f"RECFORGE_SERVICE replica {slot.index} stopped (exit {proc.returncode})",
                  flush=True)  # fmt: skip

    async def _ready(self, slot: Slot) -> bool:
        timeout = float(self.readiness["timeout_seconds"])
        env = {**os.environ, "PORT": str(slot.port)}
        try:
            if self.readiness.get("command"):
                p = await asyncio.create_subprocess_exec(
                    *self.readiness["command"], env=env, stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                try:
                    return await asyncio.wait_for(p.wait(), timeout) == 0
                except TimeoutError:
                    p.kill()
                    await p.wait()
                    return False
            return await asyncio.wait_for(self._http_ok(slot.port), timeout)
        except (OSError, TimeoutError, ValueError):
            return False

    async def _http_ok(self, port: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            path = self.readiness["http_path"]
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            await writer.drain()
            status = (await reader.readline()).split()
            return len(status) >= 2 and 200 <= int(status[1]) < 400
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def manage(self) -> None:
        control = self.where / CONTROL_FILE
        while not self.stopping.is_set():
            with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
                wanted = int(json.loads(control.read_text())["replicas"])
                self.desired = max(0, min(self.limit, wanted))
            for index in [i for i in self.slots if i >= self.desired]:
                slot = self.slots.pop(index)
                await self._stop(slot, self.grace)
            now = time.monotonic()
            for index in range(self.desired):
                slot = self.slots.setdefault(index, Slot(index))
                if slot.proc is None:
                    if now >= slot.not_before:
                        await self._start(slot)
                    continue
                if slot.proc.returncode is not None:
                    self._failed(slot, slot.proc.returncode)
                    continue
                period = float(self.readiness["period_seconds"])
                if now - slot.checked_at >= period or not slot.ready:
                    slot.checked_at = now
                    ok = await self._ready(slot)
                    if ok and not slot.ready:
                        print(f"RECFORGE_SERVICE replica {slot.index} ready", flush=True)
                    slot.ready = ok and slot.proc is not None and slot.proc.returncode is None
                    if slot.ready:
                        slot.failures = 0
            self.write_status("running")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), _TICK)

    def write_status(self, state: str) -> None:
        _write_json(self.where / STATUS_FILE, {
            "state": state,
            "address": f"127.0.0.1:{self.port}",
            "desired": self.desired,
            "max_replicas": self.limit,
            "ready": sum(1 for s in self.slots.values() if s.ready),
            "replicas": [
                {"slot": s.index, "pid": s.proc.pid if s.proc else None, "port": s.port,
                 "ready": s.ready, "restarts": s.restarts, "last_exit": s.last_exit,
                 "restart_in": max(0.0, s.not_before - time.monotonic()) if s.proc is None
                 else None}
                for s in sorted(self.slots.values(), key=lambda s: s.index)
            ],
            "updated_at": time.time(),
        })  # fmt: skip

    # -- the address --------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = None
        deadline = time.monotonic() + 10
        while target is None and time.monotonic() < deadline and not self.stopping.is_set():
            ready = [s for s in sorted(self.slots.values(), key=lambda s: s.index) if s.ready]
            if ready:
                target = ready[next(self._rr) % len(ready)]
            else:
                await asyncio.sleep(0.05)
        if target is None:
            writer.close()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", target.port)
        except OSError:
            target.ready = False
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(OSError, RuntimeError):
                    if dst.can_write_eof():
                        dst.write_eof()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        for w in (up_w, writer):
            w.close()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = int(sock.getsockname()[1])
        self.server = await asyncio.start_server(self._client, sock=sock)
        self.write_status("starting")
        print(f"RECFORGE_SERVICE_ADDRESS 127.0.0.1:{self.port}", flush=True)
        await self.manage()
        print("RECFORGE_SERVICE stopping", flush=True)
        self.server.close()
        await asyncio.gather(*(self._stop(s, self.grace) for s in self.slots.values()))
        self.write_status("stopped")
        return 0


def main(blob: str) -> int:
    plan = json.loads(base64.urlsafe_b64decode(blob.encode()))
    job = os.environ.get("RECFORGE_JOB_ID", "0")
    attempt = os.environ.get("RECFORGE_ATTEMPT", "1")
    where = state_dir(os.getcwd(), int(job), int(attempt))
    where.mkdir(parents=True, exist_ok=True)
    return asyncio.run(Supervisor(plan, where).run())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python supervisor.py <plan>", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
