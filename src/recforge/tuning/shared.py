"""One search run by several processes at once, sharing one optuna study in a SQLite file.

Each process calls :func:`recforge.tuning.tune` with the same search, the same ``storage`` and
``study_name`` and its own :class:`SharedStudy`. A process *claims* the next trial under an
exclusive lock on ``<database>.lock``: it counts the study's trials that are finished (our
record stored) or running in the current *generation*, stops when they reach the budget, and
otherwise asks the study (optuna's TPE with the constant liar, seeded ``seed + index``) for
the next configuration, runs it, and stores the record with the result. So the budget's
trials are each claimed once, numbered by the study, and none is run twice.

A process that dies leaves its trial RUNNING. The platform then fails the gang and starts a
new attempt with a new generation: the first claim of that generation marks the old
generation's running trials FAIL without a record (*abandoned*; they are not counted and are
claimed again under new numbers), so no trial of the budget is lost.

The *lead* (one per search) waits, after the last claim, until every claimed trial is stored
and then returns the whole search, built from the stored trials in number order as a resumed
parallel search is. The others return once nothing is left to claim.

What differs from a search in one process: which configurations are tried depends on the order
in which the workers finish (as with ``n_jobs > 1``), so only a search with a single process
gives the sequence of :func:`tune` without sharing. The storage must be a SQLite file that
every process can lock (one host, or a file system with working ``flock``).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recforge._json import jsonable
from recforge.tuning.storage import RECORD_ATTR, TEST_ATTR, sqlite_storage

__all__ = ["CLAIM_ATTR", "SharedSearch", "SharedStudy", "storage_lock"]

#: user attribute of a claimed trial: {"generation": ..., "worker": ...}
CLAIM_ATTR = "recforge_claim"
#: user attribute of a trial abandoned by a previous generation (its worker died)
ABANDONED_ATTR = "recforge_abandoned"


@dataclass(frozen=True)
class SharedStudy:
    """This process's part in a shared search.

    ``index`` numbers the processes from 0 (it offsets the sampler's seed so that workers do
    not propose the same random configurations); ``lead`` waits for every trial and returns the
    whole search (one lead per search); ``generation`` tells attempts apart (a platform job's
    attempt number); ``wait_timeout`` bounds the lead's wait for the others' trials.
    """

    index: int = 0
    lead: bool = True
    generation: str = "1"
    poll_seconds: float = 0.5
    wait_timeout: float | None = None

    @property
    def worker(self) -> str:
        return f"shared worker {self.index}"


def _lock_path(storage: str) -> Path:
    prefix = "sqlite:///"
    if not storage.startswith(prefix):
        raise ValueError("a shared search needs a SQLite storage (sqlite:///FILE), got "
                         f"{storage!r}")
    return Path(storage[len(prefix):] + ".lock")


@contextmanager
def storage_lock(storage: str) -> Iterator[None]:
    """Hold the exclusive lock of the shared SQLite study ``storage``."""
    with _lock_path(storage).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class SharedSearch:
    """Claims, stores and counts the trials of one study shared by several processes."""

    def __init__(self, storage: str, study_name: str, sampler: Any, total: int,
                 distributions: dict[str, Any], shared: SharedStudy) -> None:  # fmt: skip
        import optuna

        self.storage = storage
        self.total = total
        self.distributions = distributions
        self.shared = shared
        with storage_lock(self.storage):
            self.study = optuna.load_study(study_name=study_name, storage=sqlite_storage(storage),
                                           sampler=sampler)  # fmt: skip

    def _counts(self, abandon: bool) -> tuple[int, int]:
        """(stored, running in this generation); ``abandon`` fails older generations' runs."""
        from optuna.trial import TrialState

        stored = running = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.FAIL) and RECORD_ATTR in t.user_attrs:
                stored += 1
            elif t.state == TrialState.RUNNING:
                claim = t.user_attrs.get(CLAIM_ATTR) or {}
                if claim.get("generation") == self.shared.generation:
                    running += 1
                elif abandon:
                    storage = self.study._storage
                    storage.set_trial_user_attr(t._trial_id, ABANDONED_ATTR, claim)
                    storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        return stored, running

    def claim(self) -> Any | None:
        """The next trial of the budget for this process, or None when all are claimed."""
        with storage_lock(self.storage):
            stored, running = self._counts(abandon=True)
            if stored + running >= self.total:
                return None
            trial = self.study.ask(fixed_distributions=self.distributions)
            trial.set_user_attr(CLAIM_ATTR, {"generation": self.shared.generation,
                                             "worker": self.shared.worker})  # fmt: skip
            return trial

    def best(self) -> float | None:
        """The best objective among the stored successful trials (None before the first)."""
        values = [float(t.user_attrs[RECORD_ATTR]["objective"])
                  for t in self.study.get_trials(deepcopy=False)
                  if RECORD_ATTR in t.user_attrs and t.user_attrs[RECORD_ATTR]["status"] == "ok"]
        return max(values) if values else None

    def store(self, trial: Any, record: dict[str, Any], test_result: dict[str, Any] | None) -> None:
        """Store a finished trial: the record first, then the objective (which finishes it)."""
        trial.set_user_attr(RECORD_ATTR, jsonable(record))
        if test_result is not None:
            trial.set_user_attr(TEST_ATTR, jsonable(test_result))
        self.study.tell(trial, float(record["objective"]))

    def wait_all(self) -> None:
        """Return when every trial of the budget is stored (the lead, after its last claim)."""
        deadline = None if self.shared.wait_timeout is None else (
            time.monotonic() + self.shared.wait_timeout)
        while True:
            stored, running = self._counts(abandon=False)
            if stored >= self.total:
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"shared search: {stored} of {self.total} trials stored, "
                                   f"{running} still running after {self.shared.wait_timeout:g}s")
            time.sleep(self.shared.poll_seconds)
