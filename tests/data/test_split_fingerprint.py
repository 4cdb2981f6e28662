"""``Split.fingerprint`` changes whenever any part of a split changes, and only then.

The fingerprint is recorded in every result as the identity of the split a number was measured
on, so two splits that differ anywhere -- in a positive part, in a part's row structure (the same
items under other users), in the candidate negatives (including a repeated negative), or in
which part holds what -- must get different fingerprints.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.split import Split, negatives_from_lists

N_ITEMS = 6


def _part(rows: list[list[int]], n_items: int, value: float = 1.0) -> Interactions:
    users = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    items = np.array([i for r in rows for i in r], dtype=np.int64)
    m = sp.csr_matrix((np.full(items.size, value, dtype=np.float32), (users, items)),
                      shape=(len(rows), n_items))
    m.sort_indices()
    return Interactions(m)


def _neg(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    return negatives_from_lists(rows, n_items)


BASE: dict[str, list[list[int]]] = {
    "train": [[0, 1], [2, 3], [4], []],
    "test": [[2], [4], [5], []],
    "validation": [[3], [0], [], []],
    "test_profiles": [[], [], [], [0, 1]],
    "validation_profiles": [[], [], [], [2]],
    "test_negatives": [[4, 5], [1], [0, 1], [3]],
    "validation_negatives": [[5], [5], [1], [4]],
}
NEGATIVES = ("test_negatives", "validation_negatives")


def _split(parts: dict[str, list[list[int]] | None], n_items: int = N_ITEMS,
           value: float = 1.0, **kw: object) -> Split:
    built = {
        name: (None if rows is None else _neg(rows, n_items) if name in NEGATIVES
               else _part(rows, n_items, value))
        for name, rows in parts.items()
    }
    return Split(**built, **kw)  # type: ignore[arg-type]


def _with(name: str, rows: list[list[int]] | None) -> dict[str, list[list[int]] | None]:
    parts: dict[str, list[list[int]] | None] = {k: [list(r) for r in v] for k, v in BASE.items()}
    parts[name] = rows
    return parts


def test_equal_content_gives_equal_fingerprints() -> None:
    a, b = _split(dict(BASE)), _split(dict(BASE))
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 64
    # Only structure counts (documented): labels and stored values do not.
    c = _split(dict(BASE), value=4.0, method="other", params={"seed": 3})
    assert c.fingerprint() == a.fingerprint()


# One change per case, each in one part only.
CHANGES = {
    # an item added / removed / replaced
    "train item added": ("train", [[0, 1, 5], [2, 3], [4], []]),
    "train item removed": ("train", [[0], [2, 3], [4], []]),
    "test item replaced": ("test", [[2], [4], [0], []]),
    "validation item replaced": ("validation", [[3], [1], [], []]),
    "test profile item added": ("test_profiles", [[], [], [], [0, 1, 3]]),
    "validation profile item replaced": ("validation_profiles", [[], [], [], [3]]),
    # same items, other users: only the row pointers differ
    "train rows moved": ("train", [[0, 1], [2], [3, 4], []]),
    "test rows swapped": ("test", [[4], [2], [5], []]),
    "validation row moved": ("validation", [[3], [], [0], []]),
    "test profile row moved": ("test_profiles", [[], [], [0, 1], []]),
    # negatives: replaced, added, moved between users, repeated
    "test negative replaced": ("test_negatives", [[4, 3], [1], [0, 1], [3]]),
    "test negative added": ("test_negatives", [[4, 5], [1, 0], [0, 1], [3]]),
    "test negatives moved": ("test_negatives", [[4], [5, 1], [0, 1], [3]]),
    "test negative repeated": ("test_negatives", [[4, 5, 5], [1], [0, 1], [3]]),
    "validation negative replaced": ("validation_negatives", [[5], [3], [1], [4]]),
    "validation negatives moved": ("validation_negatives", [[5, 5], [], [1], [4]]),
    # a part present vs absent, and empty vs absent
    "no validation": ("validation", None),
    "no test profiles": ("test_profiles", None),
    "no validation profiles": ("validation_profiles", None),
    "no test negatives": ("test_negatives", None),
    "no validation negatives": ("validation_negatives", None),
    "empty test negatives": ("test_negatives", [[], [], [], []]),
}


@pytest.mark.parametrize("case", list(CHANGES))
def test_any_change_changes_the_fingerprint(case: str) -> None:
    name, rows = CHANGES[case]
    base = _split(dict(BASE)).fingerprint()
    assert _split(_with(name, rows)).fingerprint() != base, case


def test_all_changed_splits_are_pairwise_distinct() -> None:
    prints = {case: _split(_with(*CHANGES[case])).fingerprint() for case in CHANGES}
    for a, b in itertools.combinations(prints, 2):
        assert prints[a] != prints[b], (a, b)


def test_which_part_holds_the_pairs_matters() -> None:
    base = dict(BASE)
    swapped = dict(BASE, test=BASE["validation"], validation=BASE["test"])
    assert _split(swapped).fingerprint() != _split(base).fingerprint()
    neg_swapped = dict(BASE, test_negatives=BASE["validation_negatives"],
                       validation_negatives=BASE["test_negatives"])
    assert _split(neg_swapped).fingerprint() != _split(base).fingerprint()
    prof_swapped = dict(BASE, test_profiles=BASE["validation_profiles"],
                        validation_profiles=BASE["test_profiles"])
    assert _split(prof_swapped).fingerprint() != _split(base).fingerprint()


def test_the_shape_matters() -> None:
    """The same pairs in a larger id space (an extra user or item) are another split."""
    base = _split(dict(BASE)).fingerprint()
    more_users = {k: [*v, []] for k, v in BASE.items()}
    assert _split(more_users).fingerprint() != base
    assert _split(dict(BASE), n_items=N_ITEMS + 1).fingerprint() != base
