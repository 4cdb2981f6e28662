"""Peak-memory measurement for one trial.

Preferred method ``"rss"`` (Linux): reset the process's peak resident set size by writing
``5`` to ``/proc/self/clear_refs``, run the trial, then read ``VmHWM`` from
``/proc/self/status``. It sees every allocation (numpy, BLAS workspaces, native extensions such
as implicit) but is process-wide, so it is exact for one trial per process (worker processes,
or in-process sequential tuning). ``peak_mb`` is the peak minus the RSS when the trial started,
i.e. what the trial added at its worst moment. The first trial in a process also pays for
one-off imports and JIT compilation (e.g. the evaluator's numba kernels).

Fallback ``"tracemalloc"`` (when ``clear_refs`` is not writable): the traced peak of Python and
numpy allocations; it misses memory that native libraries allocate themselves and slows
allocation-heavy Python code.
"""

from __future__ import annotations

import tracemalloc
from types import TracebackType

__all__ = ["PeakMemory"]

_STATUS = "/proc/self/status"
_CLEAR = "/proc/self/clear_refs"


def _status_kb(field: str) -> int | None:
    try:
        with open(_STATUS, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open(_CLEAR, "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return _status_kb("VmHWM") is not None


class PeakMemory:
    """Context manager: ``with PeakMemory() as pm: ...`` then ``pm.peak_mb`` / ``pm.method``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.method = "none"
        self.peak_mb: float | None = None
        self.peak_rss_mb: float | None = None
        self._start_kb = 0
        self._started_tracemalloc = False

    def __enter__(self) -> PeakMemory:
        if not self.enabled:
            return self
        if _reset_peak_rss():
            self.method = "rss"
            self._start_kb = _status_kb("VmRSS") or 0
        else:
            self.method = "tracemalloc"
            if not tracemalloc.is_tracing():
                tracemalloc.start()
                self._started_tracemalloc = True
            tracemalloc.reset_peak()
            self._start_kb = tracemalloc.get_traced_memory()[0] // 1024
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.method == "rss":
            peak = _status_kb("VmHWM") or 0
            self.peak_rss_mb = peak / 1024
            self.peak_mb = max(0, peak - self._start_kb) / 1024
        elif self.method == "tracemalloc":
            peak = tracemalloc.get_traced_memory()[1] // 1024
            self.peak_mb = max(0, peak - self._start_kb) / 1024
            if self._started_tracemalloc:
                tracemalloc.stop()
