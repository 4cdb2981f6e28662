"""The leakage audit on every kind of profile a user can have: train rows, test fold-in
profiles and validation fold-in profiles (held-out-user splits).

The audit's rule (recforge.data.audit docstring): a listed negative that the user "has in train
or in a fold-in profile" is ``negative_in_train`` -- a warning by default, an error with
``train_negatives="error"``. Each case below plants exactly one such negative and expects it to
be found, counted once and named in external ids, whichever profile holds it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.audit import LeakageError, audit_split
from recforge.data.interactions import Interactions
from recforge.data.split import Split, negatives_from_lists

N_USERS, N_ITEMS = 4, 6
USER_IDS = np.array(["ann", "bob", "cid", "dee"])
ITEM_IDS = np.array([100, 101, 102, 103, 104, 105])

# ann, bob: train users.  cid: held out for test (profile {0, 1}, target {3}).
# dee: held out for validation (profile {2}, target {4}).
TRAIN = {0: [0, 1], 1: [1, 2]}
TEST = {0: [3], 1: [4], 2: [3]}
VALIDATION = {0: [2], 3: [4]}
TEST_PROFILES = {2: [0, 1]}
VALIDATION_PROFILES = {3: [2]}
# Clean negatives: never a positive of the user anywhere.
TEST_NEG = {0: [5], 1: [5], 2: [5]}
VAL_NEG = {0: [5], 3: [5]}


def _part(rows: dict[int, list[int]]) -> Interactions:
    users = np.array([u for u, items in rows.items() for _ in items], dtype=np.int64)
    items = np.array([i for its in rows.values() for i in its], dtype=np.int64)
    return Interactions.from_arrays(
        users, items, shape=(N_USERS, N_ITEMS), user_ids=USER_IDS, item_ids=ITEM_IDS
    )


def _neg(rows: dict[int, list[int]]) -> sp.csr_matrix:
    return negatives_from_lists([rows.get(u, []) for u in range(N_USERS)], N_ITEMS)


def _split(test_neg: dict[int, list[int]], val_neg: dict[int, list[int]]) -> Split:
    return Split(
        train=_part(TRAIN), test=_part(TEST), validation=_part(VALIDATION),
        test_profiles=_part(TEST_PROFILES), validation_profiles=_part(VALIDATION_PROFILES),
        test_negatives=_neg(test_neg), validation_negatives=_neg(val_neg),
        method="held_out_users",
    )


def _plus(rows: dict[int, list[int]], user: int, item: int) -> dict[int, list[int]]:
    out = {u: list(v) for u, v in rows.items()}
    out.setdefault(user, []).append(item)
    return out


def test_the_clean_split_has_no_negative_in_train() -> None:
    report = audit_split(_split(TEST_NEG, VAL_NEG), train_negatives="error")
    assert report.ok, report.errors
    assert not [i for i in report.issues if i.code == "negative_in_train"]


# (negatives part, user, item, which profile holds (user, item))
PLANTED = [
    ("test_negatives", 0, 0, "train"),
    ("validation_negatives", 0, 1, "train"),
    ("test_negatives", 2, 0, "test_profiles"),
    ("validation_negatives", 2, 1, "test_profiles"),
    ("validation_negatives", 3, 2, "validation_profiles"),
    ("test_negatives", 3, 2, "validation_profiles"),
]


@pytest.mark.parametrize(("negatives", "user", "item", "holder"), PLANTED,
                         ids=[f"{n}-in-{h}-u{u}" for n, u, _i, h in PLANTED])
def test_a_negative_in_any_profile_is_found(
    negatives: str, user: int, item: int, holder: str
) -> None:
    test_neg, val_neg = TEST_NEG, VAL_NEG
    if negatives == "test_negatives":
        test_neg = _plus(TEST_NEG, user, item)
    else:
        val_neg = _plus(VAL_NEG, user, item)
    split = _split(test_neg, val_neg)
    assert item in getattr(split, holder).matrix[user].indices  # the plant is where we say

    report = audit_split(split)  # default: a warning
    assert report.ok
    found = [i for i in report.issues if i.code == "negative_in_train"]
    assert len(found) == 1, report.warnings
    assert (found[0].severity, found[0].count, found[0].users) == ("warning", 1, 1)
    assert found[0].examples == [(str(USER_IDS[user]), int(ITEM_IDS[item]))]
    assert negatives in found[0].message

    with pytest.raises(LeakageError, match="negative_in_train: 1 ") as info:
        audit_split(split, train_negatives="error")
    assert info.value.report.errors == [found[0].message]


def test_every_planted_negative_is_counted_at_once() -> None:
    test_neg, val_neg = dict(TEST_NEG), dict(VAL_NEG)
    for negatives, user, item, _holder in PLANTED:
        if negatives == "test_negatives":
            test_neg = _plus(test_neg, user, item)
        else:
            val_neg = _plus(val_neg, user, item)
    report = audit_split(_split(test_neg, val_neg))
    counts = {i.message.split(" entries")[0].split()[-1]: i.count
              for i in report.issues if i.code == "negative_in_train"}
    assert counts == {"test_negatives": 3, "validation_negatives": 3}


def test_heldout_users_of_either_profile_kind_in_train_are_warned() -> None:
    for name, rows in (("test_profiles", {0: [4]}), ("validation_profiles", {1: [0]})):
        base = {"test_profiles": TEST_PROFILES, "validation_profiles": VALIDATION_PROFILES}
        kw = {k: _part({**v, **rows} if k == name else v) for k, v in base.items()}
        split = Split(train=_part(TRAIN), test=_part(TEST), validation=_part(VALIDATION),
                      method="held_out_users", **kw)
        report = audit_split(split)
        assert report.ok
        assert report.warnings == [
            f"heldout_users_in_train: 1 users with {name} also have train interactions"
        ]
