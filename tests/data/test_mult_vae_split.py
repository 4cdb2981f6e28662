"""The Mult-VAE preprocessing (``mult_vae`` split) on synthetic ML-20M-shaped ratings, against
an independent pandas rendering of the original steps (paper-protocols §2.6)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recforge.data.audit import audit_split
from recforge.data.interactions import Interactions
from recforge.data.io import build_interactions
from recforge.data.mult_vae_split import mult_vae_split
from recforge.data.split_methods import SplitParamsError, make_split, validate_split_params
from recforge.experiments.spec import parse_spec

SEED = 98765


def synthetic(n_users: int = 400, n_items: int = 300, seed: int = 1) -> pd.DataFrame:
    """Half-star ratings, sorted by user then item like ML-20M's ratings.csv; some users have
    fewer than 5 ratings >= 4, some items are rated by few users only."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        k = int(rng.integers(2, 40))
        pop = rng.zipf(1.3, size=k * 3) % n_items + 1
        items = np.unique(pop)[:k]
        for i in items.tolist():
            rows.append((u * 3, i * 7, float(rng.integers(1, 11)) / 2, 1_000_000 + u))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "ts"])


def to_interactions(df: pd.DataFrame) -> Interactions:
    return build_interactions(
        df.user.to_numpy(), df.item.to_numpy(), ratings=df.rating.to_numpy(),
        timestamps=df.ts.to_numpy(), user_ids=np.unique(df.user), item_ids=np.unique(df.item),
        name="synthetic-20m",
    )


def reference(df: pd.DataFrame, n_heldout: int) -> dict[str, set[tuple[int, int]]]:
    """The original preprocessing, step by step, written from its description."""
    raw = df[df.rating > 3.5]
    counts = raw.groupby("user").size()
    raw = raw[raw.user.isin(counts.index[counts >= 5])]
    unique_uid = raw.groupby("user").size().index
    rs = np.random.RandomState(SEED)
    unique_uid = unique_uid[rs.permutation(unique_uid.size)]
    n = unique_uid.size
    tr_users = unique_uid[: n - 2 * n_heldout]
    vd_users = unique_uid[n - 2 * n_heldout: n - n_heldout]
    te_users = unique_uid[n - n_heldout:]
    train = raw[raw.user.isin(tr_users)]
    sids = pd.unique(train.item)

    def proportion(data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        rs = np.random.RandomState(SEED)
        tr, te = [], []
        for _, group in data.groupby("user"):
            k = len(group)
            if k >= 5:
                idx = np.zeros(k, dtype=bool)
                idx[rs.choice(k, size=int(0.2 * k), replace=False).astype("int64")] = True
                tr.append(group[~idx])
                te.append(group[idx])
            else:
                tr.append(group)
        return pd.concat(tr), pd.concat(te)

    vd = raw[raw.user.isin(vd_users) & raw.item.isin(sids)]
    te = raw[raw.user.isin(te_users) & raw.item.isin(sids)]
    vd_tr, vd_te = proportion(vd)
    te_tr, te_te = proportion(te)

    def pairs(d: pd.DataFrame) -> set[tuple[int, int]]:
        return set(zip(d.user.tolist(), d.item.tolist(), strict=True))

    return {"train": pairs(train), "validation_profiles": pairs(vd_tr),
            "validation": pairs(vd_te), "test_profiles": pairs(te_tr), "test": pairs(te_te)}


def pairs_of(x: Interactions) -> set[tuple[int, int]]:
    u, i = x.to_arrays()
    return set(zip(x.user_ids[u].tolist(), x.item_ids[i].tolist(), strict=True))


def test_matches_the_original_preprocessing_exactly() -> None:
    df = synthetic()
    split = mult_vae_split(to_interactions(df), n_heldout_users=60, seed=SEED)
    ref = reference(df, 60)
    for part, expected in ref.items():
        assert pairs_of(getattr(split, part)) == expected, part


def test_counts_and_proportions() -> None:
    df = synthetic()
    x = to_interactions(df)
    split = mult_vae_split(x, n_heldout_users=60, seed=SEED)
    kept = df[df.rating >= 4]
    per_user = kept.groupby("user").size()
    active = per_user[per_user >= 5]
    p = split.params
    assert p["dropped_low_ratings"] == int((df.rating < 4).sum())
    assert p["dropped_users"] == int((per_user < 5).sum())
    assert p["n_train_users"] == active.size - 120
    assert int((split.train.user_counts() > 0).sum()) == active.size - 120
    for part in ("validation", "test"):
        target = getattr(split, part)
        fold_in = getattr(split, f"{part}_profiles")
        users = np.flatnonzero((target.user_counts() + fold_in.user_counts()) > 0)
        assert users.size == 60
        n = target.user_counts()[users] + fold_in.user_counts()[users]
        expected = np.where(n >= 5, np.floor(0.2 * n + 1e-9), 0).astype(int)
        np.testing.assert_array_equal(target.user_counts()[users], expected)
    # every interaction is accounted for: kept, or counted under one of the drop reasons
    total = sum(getattr(split, part).nnz for part in
                ("train", "validation", "validation_profiles", "test", "test_profiles"))
    assert total + p["dropped_low_ratings"] + p["dropped_user_interactions"] + p[
        "dropped_heldout_on_unseen_items"] == x.nnz
    # held-out parts only hold items some training user has
    train_items = set(np.flatnonzero(split.train.item_counts() > 0).tolist())
    for part in ("validation", "validation_profiles", "test", "test_profiles"):
        assert set(np.flatnonzero(getattr(split, part).item_counts() > 0).tolist()) <= \
            train_items
    assert split.train.shape == x.shape
    assert set(split.train.matrix.data.tolist()) == {1.0}  # kept as implicit 1s
    assert split.train.ratings is not None and split.train.ratings.min() >= 4


def test_seed_decides_and_repeats() -> None:
    x = to_interactions(synthetic())
    a = mult_vae_split(x, n_heldout_users=60, seed=SEED)
    b = mult_vae_split(x, n_heldout_users=60, seed=SEED)
    c = mult_vae_split(x, n_heldout_users=60, seed=SEED + 1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert pairs_of(a.test) != pairs_of(c.test)


def test_no_leakage_in_the_audit() -> None:
    split = mult_vae_split(to_interactions(synthetic()), n_heldout_users=60, seed=SEED)
    report = audit_split(split)
    assert report.ok, report.to_dict()
    for part in ("validation", "test"):
        assert not pairs_of(getattr(split, part)) & pairs_of(getattr(split, f"{part}_profiles"))
        assert not pairs_of(getattr(split, part)) & pairs_of(split.train)
    # train, validation and test users are disjoint
    roles = [set(np.flatnonzero((getattr(split, a).user_counts()
                                 + (getattr(split, b).user_counts() if b else 0)) > 0).tolist())
             for a, b in (("train", None), ("validation", "validation_profiles"),
                          ("test", "test_profiles"))]
    assert not roles[0] & roles[1] and not roles[0] & roles[2] and not roles[1] & roles[2]


def test_bad_input_is_refused_clearly() -> None:
    x = to_interactions(synthetic())
    with pytest.raises(ValueError, match="held-out users requested but only"):
        mult_vae_split(x, n_heldout_users=10_000)
    implicit = Interactions.from_arrays(np.array([0, 1]), np.array([1, 0]))
    with pytest.raises(ValueError, match="needs the ratings"):
        mult_vae_split(implicit, n_heldout_users=1)
    with pytest.raises(SplitParamsError, match="n_heldout_users"):
        validate_split_params("mult_vae", {"n_heldout_users": 0})


def test_named_split_in_specs_and_make_split() -> None:
    spec = parse_spec({
        "name": "t8", "dataset": {"name": "movielens-20m"},
        "split": {"method": "mult_vae", "params": {"n_heldout_users": 10000}},
        "models": [{"model": "TopPopular"}],
    })
    assert spec.split.method == "mult_vae"
    x = to_interactions(synthetic())
    via_table = make_split(x, "mult_vae", {"n_heldout_users": 60}, seed=SEED)
    assert via_table.fingerprint() == mult_vae_split(x, 60, SEED).fingerprint()
    assert via_table.method == "mult_vae" and via_table.params["seed"] == SEED
