"""``recforge platform serve --config`` as a real subprocess, for tests and test scenarios.

The server binds 127.0.0.1 on a free port, keeps its state in a private directory and is stopped
by its pid (SIGTERM, SIGKILL for a crash). Run as root, it runs replicas as an unprivileged user
(``nobody`` unless the config says otherwise), and that user cannot run this venv's interpreter
(it lives under /root here): job commands use :data:`JOB_PYTHON`, and files a job writes go to a
directory from :func:`shared_dir`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from recforge.platform.client import PlatformClient

PY = sys.executable
#: an interpreter every OS user may run (Debian's python3), for commands of jobs that run as an
#: unprivileged user; the suite's own venv interpreter is private to root on the CI image.
JOB_PYTHON = "/usr/bin/python3" if os.geteuid() == 0 else sys.executable
ADMIN_TOKEN = "serve-admin-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shared_dir(prefix: str = "rf-shared-") -> Path:
    """A directory any OS user may write (jobs running as ``nobody`` leave markers there); the
    caller removes it."""
    if not os.access(JOB_PYTHON, os.X_OK):
        raise RuntimeError(f"{JOB_PYTHON} is missing: install python3 (Debian) for job commands")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o1777)
    return path


@dataclass
class Server:
    """A running ``serve`` process."""

    url: str
    proc: subprocess.Popen[bytes]
    state_dir: Path
    log: Path
    config: Path
    argv: list[str]
    env: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str = "admin") -> PlatformClient:
        return PlatformClient(self.url, self.tokens[who] if who != "admin" else ADMIN_TOKEN)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve did not answer within {timeout:g}s:\n{self.text()}")
            time.sleep(0.1)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 60.0, *, keep_state: bool = False) -> int:
        """SIGTERM by pid (SIGKILL after ``timeout``); the exit status. The state directory is
        removed unless ``keep_state``."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if not keep_state:
            remove(self.state_dir)
        return self.proc.returncode

    def kill9(self) -> None:
        """A crash: SIGKILL, no clean-up at all."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Start the same server again (same port, state and store)."""
        log = self.log.open("ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.wait_ready()


def start_server(
    workdir: Path,
    config: dict[str, Any] | Path,
    *,
    store_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    """Start ``serve`` on ``config`` (a file used as written, or a dict written to one);
    returns once ``/healthz`` answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(config, Path):
        cfg = config
    else:
        cfg = workdir / "platform.yaml"
        cfg.write_text(yaml.safe_dump(config))
    port = free_port()
    # Replicas run as an unprivileged user and work below the state directory, so its parents
    # must be traversable (pytest's own temporary directories are private to root).
    state = Path(tempfile.mkdtemp(prefix="rf-state-", dir="/tmp"))
    os.chmod(state, 0o711)
    argv = [PY, "-m", "recforge.cli.main", "platform", "serve", "--config", str(cfg),
            "--port", str(port)]  # fmt: skip
    env = {**os.environ, "RECFORGE_ADMIN_TOKEN": ADMIN_TOKEN, "RECFORGE_STATE_DIR": str(state),
           **(extra_env or {})}  # fmt: skip
    if store_url is not None:
        env["RECFORGE_STORE_URL"] = store_url
    log_path = workdir / "server.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    server = Server(f"http://127.0.0.1:{port}", proc, state, log_path, cfg, argv, env)
    try:
        server.wait_ready()
    except Exception:
        server.stop()
        raise
    return server


def wait_until(pred: Any, timeout: float, what: str, explain: Any = None) -> Any:
    """Poll ``pred`` until it returns something truthy (generous deadlines, no fixed sleeps);
    on timeout the error carries ``explain()`` (what was seen instead) when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f": {explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{seen}")
        time.sleep(0.05)


def process_running(pid: int) -> bool:
    """``pid`` exists and is not a zombie (state from ``/proc/<pid>/stat``)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return raw[raw.rindex(")") + 2] not in "ZX"


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def spark_scenario(script: str, name: str, tmp: Path) -> dict[str, Any]:
    """Run ``scenario_<name>`` of test file ``script`` (its ``__main__`` prints the result as
    JSON) inside a private, loopback-only network namespace, where Spark may bind; missing
    tools (unshare, ip, java, pyspark's spark-submit) FAIL the calling test, never skip it."""
    import pytest

    missing = [t for t in ("unshare", "ip", "java") if shutil.which(t) is None]
    if not Path(PY).with_name("spark-submit").exists():
        missing.append(str(Path(PY).with_name("spark-submit")))
    if missing:
        pytest.fail(f"Spark tests cannot run: missing {missing} (install recforge[spark] and "
                    "Java 17)", pytrace=False)  # fmt: skip
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c",
         f'ip link set lo up && exec "{PY}" "{script}" {name} "{tmp}"'],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"scenario failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
