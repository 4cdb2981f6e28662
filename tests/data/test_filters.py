"""Filters return the filtered data plus a report of everything they removed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp

from recforge.data.filters import (
    FilterReport,
    compact,
    deduplicate,
    k_core,
    rating_equals,
    rating_threshold,
)
from recforge.data.interactions import Interactions


def rated() -> Interactions:
    # users 0..2, items 0..3
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([0, 1, 2, 0, 3, 3])
    r = np.array([5, 3, 4, 5, 1, 2], dtype=np.float32)
    ts = np.arange(6) * 10
    return Interactions.from_arrays(users, items, r, ratings=r, timestamps=ts,
                                    user_ids=np.array([10, 11, 12]),
                                    item_ids=np.array(["a", "b", "c", "d"]))


def test_rating_threshold_keeps_at_least_threshold() -> None:
    x = rated()
    y, rep = rating_threshold(x, 4, compact=False)
    assert y.shape == x.shape
    assert sorted(y.ratings.tolist()) == [4, 5, 5]
    assert (rep.removed_interactions, rep.removed_users, rep.removed_items) == (3, 1, 2)
    assert (rep.kept_interactions, rep.kept_users, rep.kept_items) == (3, 2, 2)
    assert rep.parameters == {"min_rating": 4}
    s = str(rep)
    assert "\n" not in s
    assert s.startswith("rating_threshold(min_rating=4): removed 3 interactions, 1 users, 2 items")
    # timestamps stay aligned with the kept ratings
    assert y.timestamps.tolist() == [0, 20, 30]


def test_rating_equals_five_star_rule() -> None:
    y, rep = rating_equals(rated(), 5)
    assert y.nnz == 2 and set(y.ratings.tolist()) == {5.0}
    assert rep.name == "rating_equals" and rep.removed_interactions == 4


def test_rating_filters_need_ratings() -> None:
    x = Interactions.from_arrays(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="needs ratings"):
        rating_threshold(x, 1)


def test_k_core_iterates_to_fixed_point() -> None:
    # A chain where one pass is not enough: removing user 2 drops item 2 below 2,
    # which then drops user 1 below 2, ...
    users = np.array([0, 0, 1, 1, 2, 3, 3, 4, 4])
    items = np.array([0, 1, 0, 1, 2, 1, 2, 0, 1])
    x = Interactions.from_arrays(users, items)
    y, rep = k_core(x, 2, compact=False)
    assert y.user_counts().tolist() == [2, 2, 0, 0, 2]
    assert y.item_counts().tolist() == [3, 3, 0]
    assert rep.details["iterations"] >= 2
    assert (rep.removed_interactions, rep.removed_users, rep.removed_items) == (3, 2, 1)


def test_k_core_matches_naive_loop() -> None:
    rng = np.random.default_rng(0)
    m = sp.random(60, 40, density=0.08, format="csr", random_state=rng)
    m.data[:] = 1
    x = Interactions(matrix=m.astype(np.float32))
    y, _ = k_core(x, min_user=3, min_item=4, compact=False)
    dense = m.toarray() > 0
    while True:
        keep_u = dense.sum(1) >= 3
        keep_i = dense.sum(0) >= 4
        new = dense & keep_u[:, None] & keep_i[None, :]
        if (new == dense).all():
            break
        dense = new
    np.testing.assert_array_equal(y.matrix.toarray() > 0, dense)
    uc, ic = y.user_counts(), y.item_counts()
    assert ((uc == 0) | (uc >= 3)).all() and ((ic == 0) | (ic >= 4)).all()


def test_k_core_bad_arguments() -> None:
    with pytest.raises(ValueError, match="needs k"):
        k_core(rated(), min_user=2)
    with pytest.raises(ValueError, match=">= 0"):
        k_core(rated(), -1)


def test_compact_drops_empty_rows_and_columns_keeping_alignment() -> None:
    x = rated()
    y, _ = rating_threshold(x, 4, compact=False)
    z, rep = compact(y)
    assert z.shape == (2, 2)
    assert z.user_ids.tolist() == [10, 11] and z.item_ids.tolist() == ["a", "c"]
    np.testing.assert_array_equal(z.matrix.toarray(), [[5, 4], [5, 0]])
    assert z.ratings.tolist() == [5, 4, 5] and z.timestamps.tolist() == [0, 20, 30]
    assert (rep.removed_users, rep.removed_items, rep.removed_interactions) == (1, 2, 0)


def test_filters_compact_by_default_and_ids_map_back() -> None:
    x = rated()  # users 10, 11, 12; items a, b, c, d
    y, rep = rating_threshold(x, 4)
    assert y.shape == (2, 2)
    assert y.user_ids.tolist() == [10, 11] and y.item_ids.tolist() == ["a", "c"]
    u, i = y.to_arrays()
    pairs = set(zip(y.user_ids[u].tolist(), y.item_ids[i].tolist(), strict=True))
    assert pairs == {(10, "a"), (10, "c"), (11, "a")}
    assert sorted(y.ratings.tolist()) == [4, 5, 5] and y.timestamps.tolist() == [0, 20, 30]
    assert (rep.kept_users, rep.kept_items, rep.removed_users, rep.removed_items) == (2, 2, 1, 2)
    assert rep.details["shape"] == [2, 2]
    # k_core: every remaining row and column meets the threshold, none is empty
    users = np.array([0, 0, 1, 1, 2, 3, 3, 4, 4])
    items = np.array([0, 1, 0, 1, 2, 1, 2, 0, 1])
    z, krep = k_core(Interactions.from_arrays(users, items, item_ids=np.array([7, 8, 9])), 2)
    assert z.shape == (3, 2) and z.item_ids.tolist() == [7, 8]
    assert (z.user_counts() >= 2).all() and (z.item_counts() >= 2).all()
    assert krep.details["shape"] == [3, 2]
    eq, _ = rating_equals(x, 5)
    assert eq.shape == (2, 1) and eq.item_ids.tolist() == ["a"]


def test_drop_cold_start_users_reports_what_it_drops() -> None:
    from recforge.data.filters import drop_cold_start_users
    from recforge.data.split import Split

    # users 0, 1 have train; user 2 is only in test, user 3 only in validation
    shape = (4, 3)
    train = Interactions.from_arrays(np.array([0, 1]), np.array([0, 1]), shape=shape)
    test = Interactions.from_arrays(np.array([0, 2, 2]), np.array([1, 0, 2]), shape=shape)
    val = Interactions.from_arrays(np.array([1, 3]), np.array([2, 2]), shape=shape)
    out, rep = drop_cold_start_users(Split(train=train, test=test, validation=val))
    assert out.test.to_arrays()[0].tolist() == [0]
    assert out.validation is not None and out.validation.to_arrays()[0].tolist() == [1]
    assert (rep.removed_interactions, rep.removed_users, rep.kept_interactions) == (3, 2, 2)
    assert rep.details == {"test_users": 1, "validation_users": 1}
    assert rep.removed_items == 1  # item 0 no longer appears in test or validation
    assert out.params["dropped_cold_start"] == rep.details
    with pytest.raises(ValueError, match="fold-in profiles"):
        drop_cold_start_users(Split(train=train, test=test, test_profiles=val))


def test_deduplicate_pandas_keeps_latest() -> None:
    df = pd.DataFrame({"u": [1, 1, 2, 1], "i": [5, 5, 5, 5], "t": [30, 10, 1, 20]})
    out, rep = deduplicate(df, "u", "i", "t")
    assert out["t"].tolist() == [30, 1]  # original order kept, latest of (1, 5) survives
    assert isinstance(rep, FilterReport)
    assert rep.removed_interactions == 2 and rep.details["duplicated_pairs"] == 1
    first, _ = deduplicate(df, "u", "i", "t", keep="first")
    assert first["t"].tolist() == [10, 1]


def test_deduplicate_polars_without_timestamp_keeps_last_row() -> None:
    df = pl.DataFrame({"u": [1, 1, 2], "i": [5, 5, 5], "r": [1, 2, 3]})
    out, rep = deduplicate(df, "u", "i")
    assert isinstance(out, pl.DataFrame)
    assert out["r"].to_list() == [2, 3]
    assert rep.kept_interactions == 2
    with pytest.raises(ValueError, match="columns found"):
        deduplicate(df, "user", "i")
