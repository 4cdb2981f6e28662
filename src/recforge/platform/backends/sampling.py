"""Resource samples the sidecar takes with every heartbeat (standard library only).

One sample of a replica's whole process tree (below its sidecar)::

    {"t": unix time, "interval": heartbeat interval (s), "cpu_seconds": user+system CPU of the
     live tree, "cpu_percent": since the previous sample (100 = one core), "rss_mib": resident
     memory, "limit_mib": the replica's memory limit or null, "processes": count,
     "output_bytes": size of the replica's log so far (its progress output)}

Memory and CPU come from the replica's cgroup v2 when it has one (what the kernel charges,
including exited children), else from ``/proc`` for the live tree. The samples go to a JSON-lines
file next to the heartbeat file (``replica-<i>.samples``), the newest :data:`KEEP` of them,
rewritten atomically, so the platform reads a bounded series without a database write per beat.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from recforge._json import dumps
from recforge.platform.backends import proctree

__all__ = ["KEEP", "Sampler", "read_samples", "samples_path"]

KEEP = 360  # at 5 s heartbeats: the last half hour
_TICK = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024


def samples_path(heartbeat_file: str | os.PathLike[str]) -> Path:
    """Where a replica's samples go, given its heartbeat file."""
    return Path(heartbeat_file).with_suffix(".samples")


def read_samples(path: str | os.PathLike[str], since: float | None = None) -> list[dict[str, Any]]:
    """The samples in ``path`` (oldest first), those after ``since`` when given; [] if none."""
    out: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            s = json.loads(line)
            if since is None or s["t"] > since:
                out.append(s)
    return out


def _tree_cpu_seconds(pids: list[int]) -> float:
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{p}/stat").read_text()
            rest = raw[raw.rindex(")") + 2 :].split()
            total += int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
    return total / _TICK


class Sampler:
    """Samples the tree below ``root_pid`` (or its cgroup directory) into ``path``."""

    def __init__(self, root_pid: int, path: Path, *, interval: float, limit_mib: int | None,
                 cgroup: Path | None = None, output_fd: int | None = 1) -> None:  # fmt: skip
        self.root_pid = root_pid
        self.path = path
        self.interval = interval
        self.limit_mib = limit_mib
        self.cgroup = cgroup
        self.output_fd = output_fd
        self.series: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._last: tuple[float, float] | None = None  # (monotonic time, cpu seconds)

    def _cgroup_usage(self) -> tuple[float, float] | None:
        if self.cgroup is None:
            return None
        try:
            mem = int((self.cgroup / "memory.current").read_text())
            stat = dict(line.split() for line in (self.cgroup / "cpu.stat").read_text()
                        .splitlines())  # fmt: skip
            return int(stat["usage_usec"]) / 1e6, mem / _MIB
        except (OSError, ValueError, KeyError):
            return None

    def sample(self, pids: list[int] | None = None) -> dict[str, Any]:
        """Take one sample of ``pids`` (default: the tree below ``root_pid``), keep it and
        rewrite the file (errors only skip the write)."""
        if pids is None:
            pids = proctree.descendants(self.root_pid)
        usage = self._cgroup_usage()
        if usage is None:
            cpu, rss = _tree_cpu_seconds(pids), proctree.tree_rss_bytes(pids) / _MIB
        else:
            cpu, rss = usage
        now = time.monotonic()
        percent = None
        if self._last is not None and now > self._last[0]:
            percent = round(100.0 * max(0.0, cpu - self._last[1]) / (now - self._last[0]), 1)
        self._last = (now, cpu)
        output = None
        if self.output_fd is not None:
            with contextlib.suppress(OSError):
                output = os.fstat(self.output_fd).st_size
        s = {"t": time.time(), "interval": self.interval, "cpu_seconds": round(cpu, 3),
             "cpu_percent": percent, "rss_mib": round(rss, 1), "limit_mib": self.limit_mib,
             "processes": len(pids), "output_bytes": output}  # fmt: skip
        self.series.append(s)
        with contextlib.suppress(OSError):
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(dumps(x, indent=None) + "\n" for x in self.series))
            os.replace(tmp, self.path)
        return s
