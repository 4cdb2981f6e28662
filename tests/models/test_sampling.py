"""Negative sampling: never a training item, the asked distribution, seeded, exact when dense."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.torch.sampling import NegativeSampler, minibatches


def _random_train(n_users: int = 50, n_items: int = 30, density: float = 0.3,
                  seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    return Interactions(sp.csr_matrix(dense))


def _seen(train: Interactions) -> np.ndarray:
    return train.matrix.toarray() > 0


def test_negatives_are_never_training_items() -> None:
    train = _random_train(density=0.6)
    s = NegativeSampler(train, np.random.default_rng(1))
    users = np.repeat(np.arange(50), 40)
    neg = s.negatives(users, 5)
    assert neg.shape == (2000, 5) and neg.dtype == np.int64
    assert not _seen(train)[users[:, None], neg].any()
    assert s.is_positive(*train.to_arrays()).all()


def test_uniform_is_uniform_over_the_complement() -> None:
    # user 0 has items 0..9 of 20, so each of items 10..19 should get ~1/10 of the draws
    m = sp.csr_matrix((np.ones(10, np.float32), (np.zeros(10, int), np.arange(10))), shape=(1, 20))
    s = NegativeSampler(m, np.random.default_rng(0))
    draws = s.negatives(np.zeros(20_000, dtype=np.int64), 1).ravel()
    counts = np.bincount(draws, minlength=20)
    assert counts[:10].sum() == 0
    assert np.all(np.abs(counts[10:] / 20_000 - 0.1) < 0.01)


def test_popularity_mode_follows_item_counts() -> None:
    # item j has j+1 training users among users 1..20; user 0 has no items
    rows, cols = [], []
    for j in range(6):
        rows += list(range(1, j + 2))
        cols += [j] * (j + 1)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(21, 6))
    s = NegativeSampler(m, np.random.default_rng(3), mode="popularity")
    draws = s.negatives(np.zeros(42_000, dtype=np.int64), 1).ravel()
    freq = np.bincount(draws, minlength=6) / draws.size
    np.testing.assert_allclose(freq, np.arange(1, 7) / 21, atol=0.01)
    flat = NegativeSampler(m, np.random.default_rng(3), mode="popularity", exponent=0.0)
    freq0 = np.bincount(flat.negatives(np.zeros(30_000, np.int64)).ravel(), minlength=6) / 30_000
    np.testing.assert_allclose(freq0, 1 / 6, atol=0.01)


def test_allowed_mask_and_dense_rows() -> None:
    train = _random_train(density=0.3, seed=4)
    allowed = np.ones(30, dtype=bool)
    allowed[::3] = False
    s = NegativeSampler(train, np.random.default_rng(0), allowed=allowed)
    neg = s.negatives(np.arange(50), 50)
    assert allowed[neg].all() and not _seen(train)[np.arange(50)[:, None], neg].any()
    # a user with all but one item: rejection almost always fails, the exact draw still works
    dense = np.ones((2, 500), dtype=np.float32)
    dense[0, 321] = 0
    dense[1, [7, 400]] = 0
    s2 = NegativeSampler(sp.csr_matrix(dense), np.random.default_rng(0))
    neg2 = s2.negatives(np.array([0, 1, 1, 0]), 200)
    assert set(neg2[0]) == {321} and set(neg2[3]) == {321}
    assert set(neg2[1]) | set(neg2[2]) == {7, 400}


def test_users_without_negatives_fail_clearly() -> None:
    full = sp.csr_matrix(np.ones((3, 4), dtype=np.float32))
    s = NegativeSampler(full, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"3 user.*no item left"):
        s.negatives(np.array([0, 1, 2]))
    with pytest.raises(IndexError, match="out of range"):
        s.negatives(np.array([3]))
    with pytest.raises(ValueError, match="mode"):
        NegativeSampler(full, np.random.default_rng(0), mode="hard")  # type: ignore[arg-type]


def test_training_forms_and_seeding() -> None:
    train = _random_train()
    seen = _seen(train)
    s = NegativeSampler(train, np.random.default_rng(7))
    u, pos, neg = s.pairwise(n_negatives=4)
    assert u.size == pos.size == neg.size == 4 * train.nnz
    assert seen[u, pos].all() and not seen[u, neg].any()
    uu, ii, lab = s.pointwise(n_negatives=4)
    assert uu.size == 5 * train.nnz and lab.dtype == np.float32
    assert seen[uu[lab == 1], ii[lab == 1]].all() and not seen[uu[lab == 0], ii[lab == 0]].any()
    assert int(lab.sum()) == train.nnz
    users = s.sample_users(1024)
    tu, tp, tn = s.user_triples(users)
    assert seen[tu, tp].all() and not seen[tu, tn].any()
    again = NegativeSampler(train, np.random.default_rng(7)).pairwise(n_negatives=4)
    np.testing.assert_array_equal(again[2], neg)


def test_sample_users_without_replacement() -> None:
    train = _random_train()
    active = np.flatnonzero(train.user_counts() > 0)
    s = NegativeSampler(train, np.random.default_rng(3))
    distinct = s.sample_users(active.size, replace=False)
    assert sorted(distinct.tolist()) == active.tolist()
    part = s.sample_users(active.size // 2, replace=False)
    assert len(set(part.tolist())) == part.size and np.isin(part, active).all()
    # More users asked for than there are: drawn with replacement instead of failing.
    more = s.sample_users(active.size + 5, replace=False)
    assert more.size == active.size + 5 and np.isin(more, active).all()


def test_minibatches_cover_once() -> None:
    batches = list(minibatches(10, 4, np.random.default_rng(0)))
    assert [b.size for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    assert [b.size for b in minibatches(10, 4, None, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="batch_size"):
        next(minibatches(10, 0))
