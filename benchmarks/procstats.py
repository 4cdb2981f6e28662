"""Process statistics for the benchmarks (Linux /proc; standard library only, so the helper
scripts that run inside other libraries' environments can import it too)."""

from __future__ import annotations

import os
import resource

__all__ = ["cpu_seconds", "load_average", "reset_peak", "status_mb"]


def status_mb(key: str, pid: str | int = "self") -> float:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``...) in MB; 0 if it ended."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:  # the process ended while we looked
        return 0.0
    return float("nan")


def reset_peak() -> bool:
    """Reset this process's VmHWM so that it covers only what follows (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as one string (the machine is shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())
