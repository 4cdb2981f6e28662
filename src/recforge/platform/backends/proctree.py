"""Linux process facts from ``/proc``: start times, descendants, resident memory, killing a tree.

Only the standard library: the sidecar imports this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from pathlib import Path

__all__ = [
    "alive",
    "become_subreaper",
    "children",
    "descendants",
    "kill_tree",
    "proc_stat",
    "process_start_time",
    "tree_rss_bytes",
]

_PAGE = os.sysconf("SC_PAGE_SIZE")
_PR_SET_CHILD_SUBREAPER = 36


def proc_stat(pid: int) -> tuple[str, int] | None:
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
    st = proc_stat(pid)
    return None if st is None else st[1]


def alive(pid: int, start_time: int) -> bool:
    """The very process we launched is still running (not exited, not a zombie, pid not reused)."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time and st[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live children of ``pid``."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), parents first."""
    out: list[int] = []
    todo = children(pid)
    seen = {pid}
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.add(p)
        out.append(p)
        todo += children(p)
    return out


def tree_rss_bytes(pids: list[int]) -> int:
    """Resident memory of ``pids`` summed (pages shared between them count once per process,
    so this is at least what a memory cgroup would charge)."""
    total = 0
    for p in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
    return total


def kill_tree(root: int, sig: int = signal.SIGKILL, *, include_root: bool = False) -> list[int]:
    """Send ``sig`` to every descendant of ``root`` (and ``root`` itself if asked); the pids."""
    victims = descendants(root) + ([root] if include_root else [])
    for p in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)
    return victims


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux ``PR_SET_CHILD_
    SUBREAPER``), so a process that daemonises stays in its replica's tree; False if refused."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
