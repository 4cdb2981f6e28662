"""Leakage and popularity-skew audit of a :class:`~recforge.data.split.Split`.

:func:`audit_split` checks the parts of a split against each other and fails loudly
(:class:`LeakageError`) on anything that would let evaluation see training signal or vice
versa. It also reports, without failing, how item popularity differs between the parts -- the
kind of skew that made the paper distrust SpectralCF's released split.

Errors (each listed with a count and a few ``(user, item)`` examples in *external* ids):

* ``train_test_overlap`` -- a pair in both train and test;
* ``validation_test_overlap`` -- a validation pair that is also a test pair;
* ``validation_train_overlap`` -- a validation pair still in train; only a warning
  ("optimistic validation") when the split's params say ``add_back=True`` (MCRec protocol);
* ``negative_is_positive`` -- a listed negative that is a positive of the same part (a test
  negative that is a test item, a validation negative that is a validation item); a negative
  that is a positive of the *other* part is only a warning (``negative_is_other_positive``)
  (``positive_negatives="warn"`` demotes it, e.g. for NCF ML-1M where 156 users have it);
* ``negative_in_train`` -- a listed negative that the user has in train or in a fold-in profile;
  a warning by default (``train_negatives="warn"``: CMN CiteULike-a has 1,115 of them and the
  evaluator drops seen items anyway), an error with ``train_negatives="error"``;
* ``duplicated_negatives`` -- the same negative listed twice for one user;
* ``foldin_target_overlap`` -- a held-out user's pair in both its fold-in profile and target.

Warnings only: an empty test part, held-out users (users with fold-in profiles) that also
have train interactions, and ``cold_start_users`` -- test (validation) users without a single
train interaction, in splits that give them no fold-in profile: every model scores them from
nothing (a time split makes many; ``filter_test_users: drop_cold_start`` removes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge._json import jsonable
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.stats import gini, rank_correlations

__all__ = ["AuditIssue", "AuditReport", "LeakageError", "audit_split", "gini"]

_POSITIVE_PARTS = ("train", "validation", "test", "test_profiles", "validation_profiles")


@dataclass(frozen=True)
class AuditIssue:
    """One problem found by the audit.

    ``count`` is the number of offending entries; ``examples`` holds up to a few
    ``(external user id, external item id)`` pairs.
    """

    code: str
    severity: Literal["error", "warning"]
    message: str
    count: int
    users: int
    examples: list[tuple[Any, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "count": self.count,
            "users": self.users,
            "examples": [list(e) for e in self.examples],
        }


@dataclass
class AuditReport:
    """Result of :func:`audit_split`: messages, the structured issues and statistics."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    issues: list[AuditIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
            "issues": [i.to_dict() for i in self.issues],
            "stats": jsonable(self.stats),
        }


class LeakageError(ValueError):
    """A split failed the audit; ``report`` holds every problem found."""

    def __init__(self, report: AuditReport, header: str) -> None:
        self.report = report
        lines = [f"{header}: {len(report.errors)} problem(s)"]
        lines += [f"  - {m}" for m in report.errors]
        super().__init__("\n".join(lines))


# ---------------------------------------------------------------------------- pair helpers
def _keys(m: sp.csr_matrix, n_items: int) -> np.ndarray:
    """user * n_items + item for every stored entry, in storage order (duplicates kept)."""
    users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return users * n_items + np.asarray(m.indices, dtype=np.int64)


def _part_keys(part: Interactions | None) -> np.ndarray:
    if part is None:
        return np.zeros(0, dtype=np.int64)
    return _keys(part.matrix, part.n_items)  # canonical CSR: sorted and unique


class _Auditor:
    def __init__(self, split: Split, n_examples: int) -> None:
        self.split = split
        self.n_items = split.train.n_items
        self.n_examples = n_examples
        self.report = AuditReport()

    def _examples(self, keys: np.ndarray) -> list[tuple[Any, Any]]:
        ids_u, ids_i = self.split.train.user_ids, self.split.train.item_ids
        out = []
        for k in np.unique(keys)[: self.n_examples]:
            u, i = divmod(int(k), self.n_items)
            out.append((ids_u[u].item(), ids_i[i].item()))
        return out

    def add(self, code: str, severity: Literal["error", "warning"], what: str, keys: Any) -> None:
        keys = np.asarray(keys, dtype=np.int64)
        if keys.size == 0:
            return
        users = int(np.unique(keys // self.n_items).size)
        examples = self._examples(keys)
        shown = ", ".join(f"(user {u!r}, item {i!r})" for u, i in examples)
        message = f"{code}: {keys.size} {what} ({users} users); e.g. {shown}"
        issue = AuditIssue(code, severity, message, int(keys.size), users, examples)
        self.report.issues.append(issue)
        (self.report.errors if severity == "error" else self.report.warnings).append(message)

    def warn(self, code: str, message: str, count: int) -> None:
        message = f"{code}: {message}"
        self.report.issues.append(AuditIssue(code, "warning", message, count, 0))
        self.report.warnings.append(message)


def _add_back(params: dict[str, Any]) -> bool:
    validation = params.get("validation")
    nested = isinstance(validation, dict) and validation.get("add_back") is True
    return params.get("add_back") is True or nested


def audit_split(
    split: Split,
    *,
    raise_on_error: bool = True,
    train_negatives: Literal["warn", "error"] = "warn",
    positive_negatives: Literal["warn", "error"] = "error",
    n_examples: int = 5,
) -> AuditReport:
    """Check ``split`` for leakage and measure popularity skew; see the module docstring.

    Raises :class:`LeakageError` listing every error when ``raise_on_error`` (default);
    otherwise returns the report with ``errors`` filled. ``stats`` holds:

    * ``parts``: interactions / users / items per part, entries / distinct pairs / users per
      negatives part;
    * ``users_without_train``: users with test (validation) items but no train interaction;
    * ``popularity``: Gini coefficient (see :func:`gini`) of item popularity in each positive
      part, over the items that occur in at least one positive part of the split (items no
      part touches are left out so the catalogue size does not inflate the coefficient), the
      gap ``gini[test] - gini[train]``, and Spearman rho / Kendall tau-b between per-item
      train and test (validation) counts over the same items.
    """
    options = {"train_negatives": train_negatives, "positive_negatives": positive_negatives}
    for name, value in options.items():
        if value not in ("warn", "error"):
            raise ValueError(f"{name} must be 'warn' or 'error', got {value!r}")
    a = _Auditor(split, n_examples)
    keys = {name: _part_keys(getattr(split, name)) for name in _POSITIVE_PARTS}

    def both(x: str, y: str) -> np.ndarray:
        return np.intersect1d(keys[x], keys[y], assume_unique=True)

    a.add("train_test_overlap", "error", "pairs in both train and test", both("train", "test"))
    a.add(
        "validation_test_overlap",
        "error",
        "validation pairs also in test",
        both("validation", "test"),
    )
    if _add_back(split.params):
        a.add(
            "optimistic_validation",
            "warning",
            "validation pairs also in train (add_back=True: optimistic validation)",
            both("validation", "train"),
        )
    else:
        a.add(
            "validation_train_overlap",
            "error",
            "validation pairs also in train",
            both("validation", "train"),
        )
    a.add(
        "foldin_target_overlap",
        "error",
        "test pairs also in the test fold-in profiles",
        both("test_profiles", "test"),
    )
    a.add(
        "foldin_target_overlap",
        "error",
        "validation pairs also in the validation fold-in profiles",
        both("validation_profiles", "validation"),
    )

    own_positives = {"test_negatives": keys["test"], "validation_negatives": keys["validation"]}
    other_positives = {"test_negatives": keys["validation"], "validation_negatives": keys["test"]}
    seen = np.union1d(keys["train"], np.union1d(keys["test_profiles"], keys["validation_profiles"]))
    neg_stats: dict[str, Any] = {}
    for name in ("test_negatives", "validation_negatives"):
        neg = getattr(split, name)
        if neg is None:
            continue
        nk = _keys(neg, a.n_items)
        uniq, counts = np.unique(nk, return_counts=True)
        neg_stats[name] = {
            "entries": int(nk.size),
            "distinct": int(uniq.size),
            "users": int(np.unique(nk // a.n_items).size),
        }
        part = name.removesuffix("_negatives")
        a.add(
            "negative_is_positive",
            "warning" if positive_negatives == "warn" else "error",
            f"{name} entries that are {part} items of the user",
            nk[np.isin(nk, own_positives[name])],
        )
        # A test negative that is a validation item (or the reverse) is no leak: the model of
        # that phase never trained on it and ranks it as non-relevant, as the paper's
        # evaluators did with validation items at test time.
        other = "validation" if part == "test" else "test"
        a.add(
            "negative_is_other_positive",
            "warning",
            f"{name} entries that are {other} items of the user (ranked as non-relevant)",
            nk[np.isin(nk, other_positives[name])],
        )
        a.add(
            "negative_in_train",
            "error" if train_negatives == "error" else "warning",
            f"{name} entries that are train (or fold-in) items of the user",
            nk[np.isin(nk, seen)],
        )
        a.add(
            "duplicated_negatives",
            "error",
            f"repeated {name} entries (same item listed again for a user)",
            np.repeat(uniq, counts - 1),
        )

    if split.test.nnz == 0:
        a.warn("empty_test", "the test part holds no interactions", 0)
    train_users = split.train.user_counts() > 0
    for name, profiles in (("test", split.test_profiles),
                           ("validation", split.validation_profiles)):
        part = getattr(split, name)
        if part is None or profiles is not None:
            continue
        users = part.user_counts() > 0
        cold = int((users & ~train_users).sum())
        if cold:
            a.warn(
                "cold_start_users",
                f"{cold} of {int(users.sum())} {name} users have no train interaction; they "
                "are evaluated on scores made from nothing (split.filter_test_users: "
                "drop_cold_start removes them)",
                cold,
            )
    for name in ("test_profiles", "validation_profiles"):
        part = getattr(split, name)
        if part is not None:
            both_users = int(((part.user_counts() > 0) & train_users).sum())
            if both_users:
                a.warn(
                    "heldout_users_in_train",
                    f"{both_users} users with {name} also have train interactions",
                    both_users,
                )

    a.report.stats = _stats(split, neg_stats)
    if raise_on_error and a.report.errors:
        header = f"split audit failed (method={split.method!r})"
        raise LeakageError(a.report, header)
    return a.report


def _stats(split: Split, neg_stats: dict[str, Any]) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    item_counts: dict[str, np.ndarray] = {}
    train_users = split.train.user_counts() > 0
    without_train: dict[str, int] = {}
    for name in _POSITIVE_PARTS:
        part = getattr(split, name)
        if part is None:
            continue
        ucounts = part.user_counts()
        item_counts[name] = part.item_counts()
        parts[name] = {
            "interactions": part.nnz,
            "users": int((ucounts > 0).sum()),
            "items": int((item_counts[name] > 0).sum()),
        }
        if name in ("test", "validation"):
            without_train[name] = int(((ucounts > 0) & ~train_users).sum())
    parts.update(neg_stats)

    touched = np.zeros(split.train.n_items, dtype=bool)
    for c in item_counts.values():
        touched |= c > 0
    popularity: dict[str, Any] = {
        "items": int(touched.sum()),
        "gini": {name: gini(c[touched]) for name, c in item_counts.items()},
    }
    popularity["gini_gap_test_train"] = popularity["gini"]["test"] - popularity["gini"]["train"]
    for name in ("test", "validation"):
        if name in item_counts:
            popularity[f"train_{name}"] = rank_correlations(
                item_counts["train"][touched], item_counts[name][touched]
            )
    return {"parts": parts, "users_without_train": without_train, "popularity": popularity}
