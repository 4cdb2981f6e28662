"""A replica's memory limit covers its whole process tree.

Two ways, chosen once per machine (:func:`memory_mode`), recorded in each launch's handle:

* ``cgroup-v2`` where the unified hierarchy is mounted at ``/sys/fs/cgroup`` with the memory
  controller and the service may create ``/sys/fs/cgroup/recforge``: every replica gets its own
  cgroup with ``memory.max`` (and no swap); the kernel kills the whole group
  (``memory.oom.group``) and ``memory.events`` tells the sidecar it happened.
* ``tree`` otherwise (cgroup v1 hosts, containers without a writable cgroup): the sidecar sums
  the resident memory of every process below it (:mod:`.proctree`; it is their subreaper, so a
  process that daemonises stays counted) every :data:`SAMPLE_SECONDS` and kills the whole tree
  when the sum passes the limit. Shared pages count once per process, so this is stricter than
  a cgroup; a spike shorter than one sample can pass unseen.

Only the standard library: the sidecar imports this module.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from recforge.platform.backends import proctree

__all__ = ["CGROUP_ROOT", "SAMPLE_SECONDS", "CgroupLimit", "TreeWatch", "memory_mode",
           "over_limit"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
SAMPLE_SECONDS = 0.1
_MIB = 1024 * 1024


def memory_mode(root: Path = CGROUP_ROOT) -> str:
    """``"cgroup-v2"`` if per-replica memory cgroups can be made under ``root``, else
    ``"tree"``."""
    return "cgroup-v2" if CgroupLimit.parent(root) is not None else "tree"


class CgroupLimit:
    """One replica's memory cgroup (cgroup v2)."""

    def __init__(self, path: Path, limit_mib: int) -> None:
        self.path = path
        self.limit_mib = limit_mib

    @staticmethod
    def parent(root: Path = CGROUP_ROOT) -> Path | None:
        """``root/recforge`` with the memory controller available to its children, or None."""
        try:
            if "memory" not in (root / "cgroup.controllers").read_text().split():
                return None
            base = root / "recforge"
            base.mkdir(exist_ok=True)
            if "memory" not in (root / "cgroup.subtree_control").read_text().split():
                (root / "cgroup.subtree_control").write_text("+memory")
            if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                (base / "cgroup.subtree_control").write_text("+memory")
            return base
        except OSError:
            return None

    @classmethod
    def create(cls, name: str, limit_mib: int, root: Path = CGROUP_ROOT) -> CgroupLimit:
        base = cls.parent(root)
        if base is None:
            raise OSError(f"no writable cgroup v2 memory controller under {root}")
        path = base / name
        path.mkdir(exist_ok=True)
        (path / "memory.max").write_text(str(limit_mib * _MIB))
        with contextlib.suppress(OSError):  # absent without swap accounting
            (path / "memory.swap.max").write_text("0")
        (path / "memory.oom.group").write_text("1")
        return cls(path, limit_mib)

    def join(self) -> None:
        """Move the calling process into the cgroup (run in the child before ``exec``)."""
        (self.path / "cgroup.procs").write_text("0")

    def oom_killed(self) -> bool:
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


class TreeWatch(threading.Thread):
    """Kills every process below ``root_pid`` once their resident memory passes the limit.

    ``reason`` tells afterwards what happened (None while within the limit).
    """

    def __init__(
        self,
        root_pid: int,
        limit_mib: int,
        *,
        interval: float = SAMPLE_SECONDS,
        on_kill: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="recforge-memory", daemon=True)
        self.root_pid = root_pid
        self.limit = limit_mib * _MIB
        self.limit_mib = limit_mib
        self.interval = interval
        self.on_kill = on_kill
        self.stop_event = threading.Event()
        self.reason: str | None = None

    def check(self) -> bool:
        """One sample; True (and the tree killed) if the limit was passed."""
        self.reason = over_limit(proctree.descendants(self.root_pid), self.limit_mib)
        if self.reason is None:
            return False
        proctree.kill_tree(self.root_pid)
        if self.on_kill is not None:
            self.on_kill()
        return True

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            if self.check():
                return


def over_limit(pids: list[int], limit_mib: int) -> str | None:
    """Why ``pids`` together break a tree-accounted limit of ``limit_mib``, or None."""
    used = proctree.tree_rss_bytes(pids)
    if used <= limit_mib * _MIB:
        return None
    return (f"memory limit {limit_mib} MiB exceeded: the replica's {len(pids)} process(es) "
            f"used {used / _MIB:.0f} MiB")  # fmt: skip


def own_cgroup_name(job: int, attempt: int, replica: int) -> str:
    """The cgroup directory of one replica."""
    return f"job-{job}-a{attempt}-r{replica}-{os.getpid()}"
