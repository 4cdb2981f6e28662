"""Tests for recforge.data.splitting: counts, rounding, partitions and seed reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.data.splitting import (
    carve_validation,
    global_holdout,
    held_out_users,
    leave_one_out,
    per_user_holdout,
    predefined_split,
    temporal_split,
)


def make(counts: list[int], n_items: int = 30, seed: int = 0, ts: bool = True) -> Interactions:
    """Users with the given numbers of distinct items, ratings and distinct timestamps."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(counts)), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    return Interactions.from_arrays(
        users,
        items,
        shape=(len(counts), n_items),
        ratings=rng.integers(1, 6, users.size),
        timestamps=rng.permutation(users.size) * 10 if ts else None,
        user_ids=np.array([f"u{u}" for u in range(len(counts))]),
    )


def pairs(x: Interactions) -> set[tuple[int, int]]:
    u, i = x.to_arrays()
    return set(zip(u.tolist(), i.tolist(), strict=True))


def side(x: Interactions) -> dict[tuple[int, int], tuple[float, int]]:
    u, i = x.to_arrays()
    assert x.ratings is not None and x.timestamps is not None
    return {
        (a, b): (r, t)
        for a, b, r, t in zip(
            u.tolist(), i.tolist(), x.ratings.tolist(), x.timestamps.tolist(), strict=True
        )
    }


def assert_partition(x: Interactions, *parts: Interactions) -> None:
    seen: set[tuple[int, int]] = set()
    for p in parts:
        assert p.shape == x.shape
        assert np.array_equal(p.user_ids, x.user_ids)
        assert not (pairs(p) & seen)
        seen |= pairs(p)
    assert seen == pairs(x)


COUNTS = [1, 2, 3, 4, 5, 8, 10, 13]


# ---------------------------------------------------------------------------- per-user holdout
def test_per_user_holdout_rounds_train_count_like_the_paper() -> None:
    x = make(COUNTS)
    s = per_user_holdout(x, 0.2, seed=1)
    # train = round(0.8 n), minus one when that keeps everything and n >= 2
    assert s.train.user_counts().tolist() == [1, 1, 2, 3, 4, 6, 8, 10]
    assert s.test.user_counts().tolist() == [0, 1, 1, 1, 1, 2, 2, 3]
    assert_partition(x, s.train, s.test)
    assert s.method == "per_user_holdout"
    assert s.params == {"test_fraction": 0.2, "seed": 1, "rounding": "round"}


def test_per_user_holdout_rounds_halves_to_even_and_supports_floor_ceil() -> None:
    x = make([3, 5, 7, 9])
    # train shares 1.5, 2.5, 3.5, 4.5 -> Python round: 2, 2, 4, 4
    assert per_user_holdout(x, 0.5).train.user_counts().tolist() == [2, 2, 4, 4]
    assert per_user_holdout(x, 0.5, rounding="floor").train.user_counts().tolist() == [1, 2, 3, 4]
    assert per_user_holdout(x, 0.5, rounding="ceil").train.user_counts().tolist() == [2, 3, 4, 5]
    # 1 - 0.7 is not 0.3 in floating point; the share is still 0.3: round(3.0) = 3 of 10
    assert per_user_holdout(make([10]), 0.7).train.user_counts().tolist() == [3]


def test_per_user_holdout_keeps_side_arrays_aligned() -> None:
    x = make(COUNTS)
    s = per_user_holdout(x, 0.3, seed=4)
    full = side(x)
    for part in (s.train, s.test):
        assert all(full[k] == v for k, v in side(part).items())


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_per_user_holdout_rejects_bad_fraction(bad: float) -> None:
    with pytest.raises(ValueError, match="test_fraction must be strictly between 0 and 1"):
        per_user_holdout(make(COUNTS), bad)


def test_per_user_holdout_rejects_unknown_rounding() -> None:
    with pytest.raises(ValueError, match="rounding must be"):
        per_user_holdout(make(COUNTS), 0.2, rounding="up")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- global holdout
def test_global_holdout_exact_count_and_bernoulli() -> None:
    x = make(COUNTS)  # nnz 46
    s = global_holdout(x, 0.2, seed=3)
    assert s.train.nnz == round(46 * 0.8) == 37 and s.test.nnz == 9
    assert_partition(x, s.train, s.test)
    b = global_holdout(make([20] * 30), 0.25, seed=3, sampling="bernoulli")
    assert 0.15 < b.test.nnz / 600 < 0.35 and b.test.nnz != 150
    assert b.params["sampling"] == "bernoulli"
    with pytest.raises(ValueError, match="sampling must be"):
        global_holdout(x, 0.2, sampling="poisson")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- leave one out
def test_leave_one_out_random_one_item_per_eligible_user() -> None:
    x = make(COUNTS)
    s = leave_one_out(x, seed=5)
    assert s.test.user_counts().tolist() == [0, 1, 1, 1, 1, 1, 1, 1]
    assert_partition(x, s.train, s.test)
    loose = leave_one_out(x, seed=5, min_interactions=1)
    assert loose.test.user_counts().tolist() == [1] * 8
    assert loose.train.user_counts()[0] == 0
    with pytest.raises(ValueError, match="min_interactions must be >= 1"):
        leave_one_out(x, min_interactions=0)


def test_leave_one_out_latest_picks_max_timestamp_ties_to_largest_item() -> None:
    users = np.array([0, 0, 0, 1, 1, 1, 2])
    items = np.array([4, 1, 7, 2, 5, 3, 0])
    ts = np.array([30, 50, 10, 9, 9, 8, 1])  # user 1: items 2 and 5 tie at 9
    x = Interactions.from_arrays(users, items, shape=(3, 8), timestamps=ts)
    s = leave_one_out(x, mode="latest", seed=0)
    assert pairs(s.test) == {(0, 1), (1, 5)}
    assert pairs(leave_one_out(x, mode="latest", seed=99).test) == pairs(s.test)
    assert s.params["mode"] == "latest"


def test_leave_one_out_latest_needs_timestamps_and_known_mode() -> None:
    with pytest.raises(ValueError, match="needs timestamps"):
        leave_one_out(make(COUNTS, ts=False), mode="latest")
    with pytest.raises(ValueError, match="mode must be 'random' or 'latest'"):
        leave_one_out(make(COUNTS), mode="oldest")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- temporal
def test_temporal_split_cutoff_and_fraction() -> None:
    x = make(COUNTS)  # timestamps 0, 10, ..., 450, all distinct
    assert x.timestamps is not None
    s = temporal_split(x, cutoff=300)
    assert pairs(s.test) == pairs(x.select(x.timestamps >= 300))
    assert s.test.nnz == 16  # timestamps 300..450
    f = temporal_split(x, test_fraction=0.25)  # round(46 * 0.25) = 12 latest interactions
    assert f.test.nnz == 12 and f.params["cutoff"] == 340
    assert_partition(x, f.train, f.test)
    tied = Interactions.from_arrays(
        np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), timestamps=np.array([1, 5, 5, 5])
    )
    t = temporal_split(tied, test_fraction=0.5)  # ties at the cut-off all go to test
    assert t.test.nnz == 3 and t.params["realised_test_fraction"] == 0.75


def test_temporal_split_argument_errors() -> None:
    with pytest.raises(ValueError, match="exactly one of"):
        temporal_split(make(COUNTS))
    with pytest.raises(ValueError, match="exactly one of"):
        temporal_split(make(COUNTS), cutoff=3, test_fraction=0.2)
    with pytest.raises(ValueError, match="needs timestamps"):
        temporal_split(make(COUNTS, ts=False), cutoff=3)


# ---------------------------------------------------------------------------- held-out users
def test_held_out_users_roles_and_foldin_target_counts() -> None:
    x = make([6, 10, 12, 5, 4, 20, 15, 9, 0], n_items=25, seed=2)
    s = held_out_users(x, n_test_users=2, n_validation_users=2, seed=7)
    assert s.validation is not None and s.validation_profiles is not None
    assert s.test_profiles is not None
    train_users = set(np.flatnonzero(s.train.user_counts()))
    test_users = set(np.flatnonzero(s.test.user_counts() + s.test_profiles.user_counts()))
    val_users = set(
        np.flatnonzero(s.validation.user_counts() + s.validation_profiles.user_counts())
    )
    assert len(test_users) == 2 and len(val_users) == 2
    assert not (train_users & test_users) and not (train_users & val_users)
    assert not (test_users & val_users)
    assert 8 not in train_users | test_users | val_users  # the user without interactions
    # train keeps all interactions of its users
    for u in train_users:
        assert s.train.user_counts()[u] == x.user_counts()[u]
    # fold-in/target only on items some training user has
    train_items = set(np.flatnonzero(s.train.item_counts()))
    for part in (s.test, s.test_profiles, s.validation, s.validation_profiles):
        assert set(np.flatnonzero(part.item_counts())) <= train_items
    # per held-out user: target = floor(0.2 n) when n >= 5, else 0
    for tgt, prof in ((s.test, s.test_profiles), (s.validation, s.validation_profiles)):
        n = tgt.user_counts() + prof.user_counts()
        expected = np.where(n >= 5, np.floor(n * 0.2 + 1e-9), 0)
        assert tgt.user_counts().tolist() == expected.astype(int).tolist()
    kept = [s.train, s.test, s.test_profiles, s.validation, s.validation_profiles]
    assert sum(p.nnz for p in kept) + s.params["dropped_interactions"] == x.nnz
    union = set().union(*(pairs(p) for p in kept))
    assert len(union) == sum(p.nnz for p in kept) and union <= pairs(x)


def test_held_out_users_without_item_restriction_is_a_partition() -> None:
    x = make([6, 10, 12, 5, 4, 20, 15, 9], n_items=25, seed=2)
    s = held_out_users(x, 3, 0, seed=1, restrict_items_to_train=False)
    assert s.validation is None and s.test_profiles is not None
    assert s.params["dropped_interactions"] == 0
    assert_partition(x, s.train, s.test, s.test_profiles)


def test_held_out_users_rejects_too_many_users() -> None:
    with pytest.raises(ValueError, match="only 8 users have interactions"):
        held_out_users(make(COUNTS), 5, 3)


# ---------------------------------------------------------------------------- validation
def test_carve_validation_per_user_counts_and_keeps_test() -> None:
    x = make([10, 2, 1, 3, 20])
    base = per_user_holdout(x, 0.2, seed=0)  # train counts 8, 1, 1, 2, 16
    assert base.train.user_counts().tolist() == [8, 1, 1, 2, 16]
    s = carve_validation(base, 0.1, seed=3)
    assert s.validation is not None
    # round(0.9 n) kept: 8 -> 7, 1 -> 1, 2 -> round(1.8)=2 -> 1, 16 -> round(14.4)=14
    assert s.validation.user_counts().tolist() == [1, 0, 0, 1, 2]
    assert_partition(base.train, s.train, s.validation)
    assert s.test is base.test and s.method == base.method
    assert s.params["validation"] == {
        "mode": "per_user",
        "fraction": 0.1,
        "seed": 3,
        "rounding": "round",
    }
    assert s.params["add_back"] is False and s.params["test_fraction"] == 0.2


def test_carve_validation_global_and_leave_one_out() -> None:
    base = per_user_holdout(make(COUNTS), 0.2, seed=0)  # train nnz 35
    g = carve_validation(base, 0.2, seed=1, mode="global")
    assert g.validation is not None
    assert g.train.nnz == round(35 * 0.8) == 28 and g.validation.nnz == 7
    loo = carve_validation(base, seed=1, mode="leave_one_out")
    assert loo.validation is not None
    eligible = base.train.user_counts() >= 2
    assert loo.validation.user_counts().tolist() == eligible.astype(int).tolist()
    assert_partition(base.train, loo.train, loo.validation)


def test_carve_validation_temporal_sits_between_train_and_test() -> None:
    x = make(COUNTS)  # 46 interactions, distinct timestamps 0..450
    base = temporal_split(x, test_fraction=0.25)  # 34 train, the 12 latest are test
    s = carve_validation(base, 0.2, mode="temporal")  # round(34 * 0.2) = 7 latest of train
    assert s.validation is not None and s.validation.nnz == 7
    assert s.train.timestamps is not None and s.validation.timestamps is not None
    assert s.train.timestamps.max() < s.validation.timestamps.min()
    assert s.validation.timestamps.max() < base.params["cutoff"]
    assert s.params["validation"]["cutoff"] == int(s.validation.timestamps.min())
    assert_partition(base.train, s.train, s.validation)
    assert s.test is base.test


def test_carve_validation_leave_latest_takes_each_users_latest() -> None:
    x = make(COUNTS)
    base = leave_one_out(x, mode="latest")
    s = carve_validation(base, mode="leave_latest")
    assert s.validation is not None and s.train.timestamps is not None
    tr = base.train
    u, _ = tr.to_arrays()
    assert tr.timestamps is not None
    for user in range(tr.n_users):
        mine = tr.timestamps[u == user]
        got = s.validation.timestamps[s.validation.to_arrays()[0] == user]
        if mine.size >= 2:
            assert got.tolist() == [mine.max()]
        else:
            assert got.size == 0
    assert s.params["validation"]["mode"] == "leave_latest"


def test_carve_validation_add_back_keeps_validation_in_train() -> None:
    base = per_user_holdout(make(COUNTS), 0.2, seed=0)
    s = carve_validation(base, 0.1, seed=2, add_back=True)
    assert s.validation is not None and s.validation.nnz > 0
    assert s.train is base.train
    assert pairs(s.validation) <= pairs(s.train)
    assert s.params["add_back"] is True


def test_carve_validation_argument_errors() -> None:
    base = per_user_holdout(make(COUNTS), 0.2, seed=0)
    with pytest.raises(ValueError, match="needs a fraction"):
        carve_validation(base)
    with pytest.raises(ValueError, match="takes no fraction"):
        carve_validation(base, 0.1, mode="leave_one_out")
    with pytest.raises(ValueError, match="mode must be"):
        carve_validation(base, 0.1, mode="by_time")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="takes no fraction"):
        carve_validation(base, 0.1, mode="leave_latest")
    no_time = per_user_holdout(make(COUNTS, ts=False), 0.2, seed=0)
    with pytest.raises(ValueError, match="needs timestamps"):
        carve_validation(no_time, 0.1, mode="temporal")
    with pytest.raises(ValueError, match="already has a validation part"):
        carve_validation(carve_validation(base, 0.1), 0.1)


# ---------------------------------------------------------------------------- predefined
def test_predefined_split_checks_shapes_ids_and_packs_negatives() -> None:
    x = make(COUNTS)
    parts = per_user_holdout(x, 0.2, seed=0)
    negs = [[1, 1, 2]] + [[] for _ in range(7)]
    s = predefined_split(parts.train, parts.test, test_negatives=negs, params={"source": "t"})
    assert s.method == "predefined" and s.params == {"source": "t"}
    assert s.test_negatives is not None
    assert s.test_negatives.indices.tolist() == [1, 1, 2]  # duplicates kept for the audit
    other = make(COUNTS, n_items=31)
    with pytest.raises(ValueError, match=r"test has shape \(8, 31\), train \(8, 30\)"):
        predefined_split(parts.train, other)
    renamed = Interactions(parts.test.matrix, user_ids=np.arange(8), item_ids=parts.test.item_ids)
    with pytest.raises(ValueError, match=r"test\.user_ids differ from train\.user_ids"):
        predefined_split(parts.train, renamed)
    with pytest.raises(ValueError, match="test_negatives has lists for 2 users"):
        predefined_split(parts.train, parts.test, test_negatives=[[1], [2]])
    with pytest.raises(ValueError, match="outside"):
        predefined_split(parts.train, parts.test, test_negatives=[[40]] + [[]] * 7)


# ---------------------------------------------------------------------------- reproducibility
SEEDED = {
    "per_user_holdout": lambda x, seed: per_user_holdout(x, 0.3, seed=seed),
    "global_holdout": lambda x, seed: global_holdout(x, 0.3, seed=seed),
    "leave_one_out": lambda x, seed: leave_one_out(x, seed=seed),
    "held_out_users": lambda x, seed: held_out_users(x, 3, 2, seed=seed),
    "carve_per_user": lambda x, seed: carve_validation(
        per_user_holdout(x, 0.2, seed=0), 0.2, seed=seed
    ),
    "carve_global": lambda x, seed: carve_validation(
        per_user_holdout(x, 0.2, seed=0), 0.2, seed=seed, mode="global"
    ),
    "carve_loo": lambda x, seed: carve_validation(
        per_user_holdout(x, 0.2, seed=0), seed=seed, mode="leave_one_out"
    ),
}


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_same_seed_same_fingerprint_other_seed_differs(name: str) -> None:
    x = make([12, 15, 9, 20, 11, 14, 10, 16, 13, 18], n_items=40, seed=3)
    build = SEEDED[name]
    a: Split = build(x, 11)
    assert build(x, 11).fingerprint() == a.fingerprint()
    assert build(x, 12).fingerprint() != a.fingerprint()
    params = a.params.get("validation", a.params)
    assert params["seed"] == 11


def test_seed_is_positional_and_must_be_an_int() -> None:
    x = make(COUNTS)
    assert per_user_holdout(x, 0.2, 5).fingerprint() == per_user_holdout(x, seed=5).fingerprint()
    for bad in (None, 1.5, True, "3"):
        with pytest.raises(TypeError, match="seed must be an int"):
            per_user_holdout(x, 0.2, seed=bad)  # type: ignore[arg-type]
    assert global_holdout(x, 0.2, seed=np.int64(3)).params["seed"] == 3
