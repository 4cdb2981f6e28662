"""NCF-style sampled test negatives: distinct, never an item the user interacted with."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data import splitting
from recforge.data.interactions import Interactions


def _data(seed: int = 0) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = rng.random((30, 25)) < 0.3
    dense[0, :] = True  # user 0 rated every item but one
    dense[0, 7] = False
    dense[:, 3] |= True  # every user has at least two items
    dense[:, 4] |= True
    users, items = np.nonzero(dense)
    return Interactions.from_arrays(users, items, shape=dense.shape)


def test_negatives_are_distinct_unseen_items_and_short_users_are_counted() -> None:
    x = _data()
    split = splitting.carve_validation(splitting.leave_one_out(x, seed=1), mode="leave_one_out")
    out = splitting.sample_test_negatives(split, n_negatives=10, seed=2)
    neg = out.test_negatives
    assert neg is not None
    full = x.matrix.toarray() > 0
    for u in range(x.n_users):
        row = neg.indices[neg.indptr[u] : neg.indptr[u + 1]]
        assert len(set(row.tolist())) == row.size  # distinct
        assert not full[u, row].any()  # never an item of any part
        assert row.size == min(10, int((~full[u]).sum()))
    assert out.params["test_negatives"] == {"n": 10, "seed": 2, "short_users": 1}  # user 0
    again = splitting.sample_test_negatives(split, n_negatives=10, seed=2)
    assert out.fingerprint() == again.fingerprint()
    other = splitting.sample_test_negatives(split, n_negatives=10, seed=3)
    assert out.fingerprint() != other.fingerprint()


def test_draws_are_uniform_over_the_unseen_items() -> None:
    x = _data()
    split = splitting.leave_one_out(x, seed=0)
    counts = np.zeros(x.n_items)
    for seed in range(300):
        neg = splitting.sample_test_negatives(split, n_negatives=3, seed=seed).test_negatives
        assert neg is not None
        counts += np.bincount(neg.indices[neg.indptr[5] : neg.indptr[6]], minlength=x.n_items)
    free = np.flatnonzero(counts > 0)
    expected = 300 * 3 / free.size
    assert set(free.tolist()) == set(np.flatnonzero(x.matrix.toarray()[5] == 0).tolist())
    assert np.abs(counts[free] - expected).max() < 5 * np.sqrt(expected)


def test_bad_count_is_named() -> None:
    with pytest.raises(ValueError, match="n_negatives"):
        splitting.sample_test_negatives(splitting.leave_one_out(_data()), n_negatives=0)
