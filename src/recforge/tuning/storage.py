"""Searches that survive interruption: every finished trial is kept in an optuna storage.

:func:`recforge.tuning.tune` given ``storage`` (an optuna storage URL, e.g.
``sqlite:///out/studies.db``) and ``study_name`` adds each finished trial to that study the
moment it is told, with the full trial record (and the test evaluation of a new best) in the
trial's user attributes. Called again with the same arguments, ``tune`` first *replays* the
stored trials: it asks the seeded sampler for each one in order, checks that the sampler
proposes the stored parameters, and tells it the stored objective without fitting anything.
The sampler then stands exactly where the interrupted search stood, so the continued search,
and its result, are the ones an uninterrupted search with the same seed gives (sequential
searches; parallel ones re-enter the stored trials as history, their order being timing
dependent anyway). A trial that was running when the process stopped was never stored and runs
again.

The study also stores the search's *signature* (model, fixed parameters, space, objective,
seed, split fingerprint, ...); a study made by a different search is refused, never mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recforge._json import jsonable

__all__ = ["ResumeError", "StoredTrial", "StudyStore", "sqlite_storage"]

RECORD_ATTR = "recforge_record"
TEST_ATTR = "recforge_test_result"
SIGNATURE_ATTR = "recforge_signature"


def sqlite_storage(url: str) -> Any:
    """An optuna storage for ``url``; a SQLite file waits up to 120 s for another process's
    write lock (several processes may share one study) instead of failing after sqlite's 5 s."""
    import optuna

    if not url.startswith("sqlite:"):
        return url
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})


class ResumeError(RuntimeError):
    """A stored search cannot be continued (other settings, or it does not replay)."""


@dataclass(frozen=True)
class StoredTrial:
    """One finished trial as stored: the sampled values, our record and its test result."""

    sampled: dict[str, Any]
    record: dict[str, Any]
    test_result: dict[str, Any] | None


class StudyStore:
    """The persistent copy of one search (one optuna study in ``storage``)."""

    def __init__(self, storage: str, study_name: str, signature: dict[str, Any]) -> None:
        import optuna

        self.storage = storage
        self.study_name = study_name
        self.signature = jsonable(signature)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(
            storage=sqlite_storage(storage), study_name=study_name, direction="maximize",
            load_if_exists=True,
        )
        stored = self.study.user_attrs.get(SIGNATURE_ATTR)
        if stored is None:
            self.study.set_user_attr(SIGNATURE_ATTR, self.signature)
        elif stored != self.signature:
            differ = sorted(k for k in set(stored) | set(self.signature)
                            if stored.get(k) != self.signature.get(k))
            raise ResumeError(
                f"study {study_name!r} in {storage} was made by a different search "
                f"(differs in {', '.join(differ)}); use another storage or study name"
            )

    def finished(self) -> list[StoredTrial]:
        """The stored trials in the order they were told (complete records only)."""
        from optuna.trial import TrialState

        out = []
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            record = t.user_attrs.get(RECORD_ATTR)
            if t.state in (TrialState.COMPLETE, TrialState.FAIL) and record is not None:
                out.append(StoredTrial(dict(t.params), record, t.user_attrs.get(TEST_ATTR)))
        return out

    def append(self, sampled: dict[str, Any], distributions: dict[str, Any],
               record: dict[str, Any], objective: float, failed: bool,
               test_result: dict[str, Any] | None) -> None:
        """Store one finished trial (one transaction: it is there whole or not at all)."""
        from optuna.trial import TrialState, create_trial

        attrs = {RECORD_ATTR: jsonable(record)}
        if test_result is not None:
            attrs[TEST_ATTR] = jsonable(test_result)
        self.study.add_trial(create_trial(
            state=TrialState.FAIL if failed else TrialState.COMPLETE,
            value=None if failed else objective,
            params=sampled,
            distributions={k: distributions[k] for k in sampled},
            user_attrs=attrs,
        ))
