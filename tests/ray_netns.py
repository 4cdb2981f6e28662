"""A local Ray head inside a private, loopback-only network namespace, for tests and benchmarks.

Ray binds every address it finds, so the head runs in its own network namespace
(``unshare -n``, then ``ip link set lo up``) with ``ray start --head --block`` and is stopped by
its pid (never ``ray stop``). Code that talks to it runs in the same namespace:
``in_namespace(head, [python, script, ...])`` (``nsenter -t <pid> -n``); inside, the head is
``127.0.0.1:6379`` and the dashboard ``http://127.0.0.1:8265``. The session fixture ``ray_head``
(tests/conftest.py) starts one head for the whole test session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
DASHBOARD = "http://127.0.0.1:8265"  # fixed ports are safe: the namespace is private
GCS_ADDRESS = "127.0.0.1:6379"


class RayUnavailable(RuntimeError):
    """The namespace tools or Ray are missing, or the head did not come up (message says)."""


@dataclass
class RayHead:
    pid: int  # the `ray start --block` process, inside the namespace
    netns: str  # its network namespace id (for cleanup by pid)
    temp_dir: Path
    proc: subprocess.Popen[bytes] | None = None


def _netns(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def in_namespace(
    head: RayHead, args: list[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` inside the head's network namespace; output captured as text."""
    return subprocess.run(
        ["nsenter", "-t", str(head.pid), "-n", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_ray_head(num_cpus: int = 2, num_gpus: int = 0) -> RayHead:
    """Start a head in a new loopback-only namespace; raises :class:`RayUnavailable`."""
    missing = [t for t in ("unshare", "nsenter", "ip") if shutil.which(t) is None]
    ray_cli = Path(PY).with_name("ray")
    if missing or not ray_cli.exists():
        raise RayUnavailable(f"Ray cannot run here: missing {missing or [str(ray_cli)]}")
    temp_dir = Path(tempfile.mkdtemp(prefix="rf-ray-", dir="/tmp"))  # short: socket path limit
    script = (
        "ip link set lo up && exec "
        f"{ray_cli} start --head --block --port=6379 --num-cpus={num_cpus} --num-gpus={num_gpus} "
        "--dashboard-host=127.0.0.1 --dashboard-port=8265 --include-dashboard=true "
        f"--disable-usage-stats --temp-dir={temp_dir}"
    )
    log = open(temp_dir / "head.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", script],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    head = RayHead(proc.pid, "", temp_dir, proc)
    probe = (
        "import time, urllib.request\n"
        "for _ in range(600):\n"
        "    try:\n"
        f"        urllib.request.urlopen('{DASHBOARD}/api/version', timeout=1); break\n"
        "    except Exception: time.sleep(0.1)\n"
        "else: raise SystemExit(1)\n"
    )
    try:
        deadline = time.monotonic() + 60  # generous: unshare is slow on a loaded machine
        while _netns(proc.pid) in (None, _netns(os.getpid())):  # wait for unshare to happen
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("unshare -n did not start")
            time.sleep(0.02)
        head.netns = _netns(proc.pid) or ""
        ready = in_namespace(head, [PY, "-c", probe], timeout=120)
        if ready.returncode != 0 or proc.poll() is not None:
            raise RuntimeError("the Ray dashboard did not come up")
    except Exception as exc:
        stop_ray_head(head)
        text = (temp_dir / "head.log").read_text(errors="replace")[-3000:]
        raise RayUnavailable(f"Ray cannot run here: {exc}\n{text}") from None
    return head


def stop_ray_head(head: RayHead) -> None:
    """SIGTERM the blocking `ray start` (it stops what it started), then kill stragglers by pid."""
    proc = head.proc
    if proc is not None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    if head.netns:
        for entry in os.listdir("/proc"):
            if entry.isdigit() and _netns(int(entry)) == head.netns:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(entry), signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
            proc.kill()
            proc.wait(timeout=5)
    shutil.rmtree(head.temp_dir, ignore_errors=True)
