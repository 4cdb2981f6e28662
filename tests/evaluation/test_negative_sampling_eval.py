"""Sampled negatives: distinct, never a known positive, seeded, and drawn with the stated law."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from evaluation_helpers import interactions

from recforge.data import splitting
from recforge.data.interactions import Interactions
from recforge.evaluation.sampling import NegativeSampling, sample_negatives, sampled_split


def _rows(m: sp.csr_matrix) -> list[list[int]]:
    return [m.indices[m.indptr[u] : m.indptr[u + 1]].tolist() for u in range(m.shape[0])]


def _random_exclude(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    m = sp.random(n_users, n_items, density=density, random_state=seed, format="csr")
    m.data[:] = 1.0
    return m


@pytest.mark.parametrize("mode", ["uniform", "popularity"])
def test_negatives_are_distinct_counted_and_never_excluded(mode: str) -> None:
    ex = _random_exclude(300, 120, 0.3, seed=1).tolil()
    ex[0, :100] = 1.0  # a dense user: 20 free items (exact path)
    ex[1, :90] = 1.0
    ex = ex.tocsr()
    pop = np.arange(1, 121, dtype=np.float64)
    users = np.arange(0, 300, 2)  # only even users get negatives
    neg = sample_negatives(ex, users, 7, mode=mode, popularity=pop, seed=3)  # type: ignore[arg-type]
    rows = _rows(neg)
    excluded = _rows(ex)
    for u in range(300):
        if u % 2:
            assert rows[u] == []
            continue
        assert len(rows[u]) == 7 and len(set(rows[u])) == 7
        assert rows[u] == sorted(rows[u])
        assert not set(rows[u]) & set(excluded[u])


def test_same_seed_same_negatives_other_seed_other_negatives() -> None:
    ex = _random_exclude(200, 500, 0.05, seed=2)
    users = np.arange(200)
    a = sample_negatives(ex, users, 20, seed=11)
    b = sample_negatives(ex, users, 20, seed=11)
    c = sample_negatives(ex, users, 20, seed=12)
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


def test_too_small_pool_is_refused_naming_the_users() -> None:
    ex = interactions([[0, 1, 2, 3], [0]], 6)  # user 0 has 2 free items, user 1 has 5
    with pytest.raises(ValueError, match=r"1 user\(s\).*user 0 \(2 items\)"):
        sample_negatives(ex, np.array([0, 1]), 3)
    # Popularity mode: an item nobody trained on can never be drawn, so it is not in the pool.
    with pytest.raises(ValueError, match=r"user 1 \(4 items\)"):
        sample_negatives(ex, np.array([1]), 5, mode="popularity",
                         popularity=np.array([5.0, 1, 1, 1, 0, 1]))


def test_bad_settings_fail_before_work() -> None:
    ex = interactions([[0]], 5)
    with pytest.raises(ValueError, match="n_negatives"):
        sample_negatives(ex, np.array([0]), 0)
    with pytest.raises(ValueError, match="popularity"):
        sample_negatives(ex, np.array([0]), 2, mode="popularity")
    with pytest.raises(IndexError, match="out of range"):
        sample_negatives(ex, np.array([3]), 2)
    with pytest.raises(ValueError, match="extra"):
        NegativeSampling.model_validate({"n_negatives": 5, "replace": True})


@pytest.mark.parametrize("n_items, excluded, n", [(10, 3, 3), (400, 3, 5)])
def test_uniform_draws_every_free_item_equally_often(n_items: int, excluded: int, n: int) -> None:
    # (10, 3, 3): pool 7 < 4 n -> the exact dense path; (400, 3, 5): the rejection path.
    n_users = 20_000
    rows = np.repeat(np.arange(n_users), excluded)
    cols = np.tile(np.arange(excluded), n_users)
    ex = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    neg = sample_negatives(ex, np.arange(n_users), n, seed=5)
    counts = np.bincount(neg.indices, minlength=n_items)
    assert counts[:excluded].sum() == 0
    free = counts[excluded:]
    expected = n_users * n / (n_items - excluded)
    # Each count is binomial(n_users, n / pool): 5 standard deviations is a generous bound.
    sd = np.sqrt(expected * (1 - n / (n_items - excluded)))
    assert np.abs(free - expected).max() < 5 * sd


def _successive_inclusion(w: np.ndarray) -> np.ndarray:
    """P(item i among 2 draws without replacement, each in proportion to the weight left)."""
    p = w / w.sum()
    out = p.copy()
    for j in range(w.size):
        rest = w.copy()
        rest[j] = 0.0
        out += p[j] * rest / rest.sum()
    return out


@pytest.mark.parametrize("n_items", [6, 40])  # 6: exact dense path; 40: rejection path
def test_popularity_draws_follow_successive_sampling(n_items: int) -> None:
    n_users = 30_000
    pop = np.arange(1, n_items + 1, dtype=np.float64)
    pop[0] = 0.0  # never drawn
    ex = sp.csr_matrix((n_users, n_items))
    neg = sample_negatives(ex, np.arange(n_users), 2, mode="popularity", popularity=pop,
                           exponent=1.5, seed=9)
    freq = np.bincount(neg.indices, minlength=n_items) / n_users
    expected = _successive_inclusion(pop**1.5)
    sd = np.sqrt(expected * (1 - expected) / n_users)
    assert freq[0] == 0.0
    assert np.abs(freq - expected).max() < 5 * sd.max()


def test_sampled_split_excludes_every_known_positive_and_records_settings() -> None:
    x = Interactions(_random_exclude(120, 300, 0.08, seed=4))
    split = splitting.per_user_holdout(x, test_fraction=0.2, seed=0)
    split = splitting.carve_validation(split, fraction=0.2, seed=0)
    s = sampled_split(split, 30, seed=2)
    assert s.test_negatives is not None and s.validation_negatives is not None
    train, val, test = (_rows(p.matrix) for p in (split.train, split.validation, split.test))
    tneg, vneg = _rows(s.test_negatives), _rows(s.validation_negatives)
    for u in range(120):
        assert len(tneg[u]) == (30 if test[u] else 0)
        assert len(vneg[u]) == (30 if val[u] else 0)
        assert not set(tneg[u]) & (set(train[u]) | set(val[u]) | set(test[u]))
        assert not set(vneg[u]) & (set(train[u]) | set(val[u]))
    assert s.params["sampled_negatives"] == {
        "n_negatives": 30, "mode": "uniform", "exponent": 1.0, "seed": 2,
        "parts": ["test_negatives", "validation_negatives"],
    }
    assert s.fingerprint() != split.fingerprint()
    only_test = sampled_split(split, 30, seed=2, parts=("test",))
    assert only_test.validation_negatives is None
    assert (only_test.test_negatives != s.test_negatives).nnz == 0  # type: ignore[operator]
    with pytest.raises(ValueError, match="parts"):
        sampled_split(split, 30, parts=("train",))
