"""PureSVD, EASE and IALS against reference computations on small matrices."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class, make_model
from recforge.models.ease import EASE, _symmetrize_from_upper
from recforge.models.iterative import EarlyStopping
from recforge.models.mf import IALS, PureSVD


def _interactions(dense: np.ndarray) -> Interactions:
    return Interactions(sp.csr_matrix(dense.astype(np.float32)))


def _planted(n_users: int = 60, n_items: int = 40, seed: int = 0) -> np.ndarray:
    """Two user blocks, each preferring its own half of the items."""
    rng = np.random.default_rng(seed)
    half_u, half_i = n_users // 2, n_items // 2
    p = np.full((n_users, n_items), 0.04)
    p[:half_u, :half_i] = 0.5
    p[half_u:, half_i:] = 0.5
    return (rng.random((n_users, n_items)) < p).astype(np.float32)


def test_registry_resolves_models() -> None:
    assert get_model_class("PureSVD") is PureSVD
    assert get_model_class("EASE") is EASE
    assert get_model_class("IALS") is IALS
    assert isinstance(make_model("EASE", l2_norm=3.0), EASE)


# ----------------------------------------------------------------------------- PureSVD
def test_puresvd_matches_numpy_truncated_svd() -> None:
    rng = np.random.default_rng(1)
    # rank-3 block structure plus sparse noise: a clear spectral gap after 3 components
    blocks = np.kron(np.eye(3), np.ones((20, 10)))
    noise = rng.random(blocks.shape) < 0.03
    r = np.logical_xor(blocks > 0, noise).astype(np.float64)
    model = PureSVD(num_factors=3, seed=0).fit(_interactions(r))
    u, s, vt = np.linalg.svd(r, full_matrices=False)
    reference = (u[:, :3] * s[:3]) @ vt[:3]
    got = model.score(np.arange(r.shape[0]))
    assert got.dtype == np.float32 and got.shape == r.shape
    np.testing.assert_allclose(got, reference, atol=2e-3)
    np.testing.assert_allclose(model.singular_values_, s[:3], rtol=1e-4)
    assert model.n_factors_ == 3 and not model.clipped_


def test_puresvd_clips_factors_and_reconstructs_full_rank() -> None:
    r = (np.random.default_rng(2).random((12, 7)) < 0.4).astype(np.float64)
    model = PureSVD(num_factors=50).fit(_interactions(r))
    assert model.clipped_ and model.n_factors_ == 7
    np.testing.assert_allclose(model.score(np.arange(12)), r, atol=1e-4)


def test_puresvd_profiles_equal_user_scores() -> None:
    r = _planted()
    model = PureSVD(num_factors=5).fit(_interactions(r))
    users = np.array([3, 40, 7])
    np.testing.assert_allclose(
        model.score_profiles(sp.csr_matrix(r[users])), model.score(users), atol=1e-5
    )
    with pytest.raises(ValueError, match="num_factors"):
        PureSVD(num_factors=0).fit(_interactions(r))
    with pytest.raises(ValueError, match="item columns"):
        model.score_profiles(sp.csr_matrix(np.ones((2, 5))))


# ----------------------------------------------------------------------------- EASE
def _ease_reference(r: np.ndarray, lam: float) -> np.ndarray:
    p = np.linalg.inv(r.T @ r + lam * np.eye(r.shape[1]))
    b = -p / np.diag(p)[np.newaxis, :]
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("lam", [0.5, 20.0])
def test_ease_matches_dense_float64_formula(lam: float) -> None:
    rng = np.random.default_rng(3)
    r = (rng.random((120, 45)) < 0.15).astype(np.float64)
    model = EASE(l2_norm=lam).fit(_interactions(r))
    ref = _ease_reference(r, lam)
    assert model.item_similarity_.dtype == np.float32
    np.testing.assert_allclose(model.item_similarity_, ref, atol=2e-5 * max(1.0, np.abs(ref).max()))
    np.testing.assert_allclose(model.score(np.arange(120)), r @ ref, atol=1e-4)
    np.testing.assert_allclose(model.score_profiles(sp.csr_matrix(r[:5])), r[:5] @ ref, atol=1e-4)


def test_ease_binarises_values() -> None:
    r = (np.random.default_rng(4).random((30, 12)) < 0.3).astype(np.float64)
    weighted = r * np.random.default_rng(5).integers(1, 6, size=r.shape)
    a = EASE(l2_norm=2.0).fit(_interactions(weighted)).item_similarity_
    np.testing.assert_allclose(a, _ease_reference(r, 2.0), atol=1e-5)


def test_ease_gram_blocks_and_symmetrize() -> None:
    rng = np.random.default_rng(6)
    x = sp.csr_matrix((rng.random((50, 23)) < 0.3).astype(np.float32))
    dense = x.toarray().astype(np.float64)
    # block_bytes small enough to force several row blocks
    np.testing.assert_allclose(EASE._gram(x, block_bytes=12 * 23 * 4), dense.T @ dense)
    a = rng.random((11, 11)).astype(np.float32)
    expected = np.triu(a) + np.triu(a, 1).T
    _symmetrize_from_upper(a, block=4)
    np.testing.assert_array_equal(a, expected)


def test_ease_refuses_over_budget_and_bad_l2() -> None:
    r = _interactions(_planted())
    with pytest.raises(MemoryError, match="memory_budget_mb"):
        EASE(memory_budget_mb=0.001).fit(r)
    with pytest.raises(ValueError, match="l2_norm"):
        EASE(l2_norm=0.0).fit(r)
    assert EASE.estimated_memory_mb(1024) == pytest.approx(12.0)


# ----------------------------------------------------------------------------- IALS
def _block_preference(scores: np.ndarray, seen: np.ndarray) -> float:
    """Share of users whose mean unseen own-block score beats the other block's."""
    n_users, n_items = scores.shape
    own = np.zeros_like(seen, dtype=bool)
    own[: n_users // 2, : n_items // 2] = True
    own[n_users // 2 :, n_items // 2 :] = True
    wins = []
    for u in range(n_users):
        mask = seen[u] == 0
        wins.append(scores[u, mask & own[u]].mean() > scores[u, mask & ~own[u]].mean())
    return float(np.mean(wins))


@pytest.mark.parametrize("use_implicit", [True, False])
def test_ials_loss_decreases_and_recovers_blocks(use_implicit: bool) -> None:
    r = _planted()
    train = _interactions(r)
    model = IALS(factors=4, regularization=0.01, alpha=5.0, iterations=8, use_implicit=use_implicit)
    losses: list[float] = []

    def record_loss(m: Any) -> float:  # called after every epoch by the training loop
        losses.append(m.training_loss(train))
        return -losses[-1]

    model.fit(train, validation=record_loss,
              early_stopping=EarlyStopping(validate_every=1, patience=100))
    assert len(losses) == 8 and [h.epoch for h in model.history_] == list(range(1, 9))
    assert model.backend_ == ("implicit" if use_implicit else "numpy")
    assert all(b <= a * (1 + 1e-6) for a, b in pairwise(losses))
    assert losses[-1] < 0.8 * losses[0]
    assert _block_preference(model.score(np.arange(r.shape[0])), r) > 0.95


def test_ials_numpy_agrees_with_implicit() -> None:
    r = _planted(seed=7)
    train = _interactions(r)
    a = IALS(factors=6, alpha=3.0, iterations=10, use_implicit=True).fit(train)
    b = IALS(factors=6, alpha=3.0, iterations=10, use_implicit=False).fit(train)
    assert b.training_loss(train) == pytest.approx(a.training_loss(train), rel=0.02)
    sa, sb = a.score(np.arange(60)), b.score(np.arange(60))
    top_a = np.argsort(-np.where(r > 0, -np.inf, sa), axis=1)[:, :5]
    top_b = np.argsort(-np.where(r > 0, -np.inf, sb), axis=1)[:, :5]
    overlap = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top_a, top_b, strict=True)])
    assert overlap > 0.8


def test_ials_state_roundtrip_and_determinism() -> None:
    train = _interactions(_planted())
    model = IALS(factors=4, iterations=6, use_implicit=False)
    seen: dict[int, Any] = {}

    def snapshot(m: Any) -> float:
        seen[m.epochs_done_] = (m.get_state(), m.score(np.arange(10)).copy())
        return float(m.epochs_done_ == 3)  # epoch 3 is the "best" validation

    model.fit(train, validation=snapshot,
              early_stopping=EarlyStopping(validate_every=1, patience=100))
    assert sorted(seen) == list(range(1, 7)) and model.epochs_run_ == 6
    state_three, at_three = seen[3]
    assert not np.allclose(seen[6][1], at_three)
    # the loop restored the best (epoch 3) state
    assert model.epochs_best_ == 3 and model.epochs_done_ == 3
    np.testing.assert_array_equal(model.score(np.arange(10)), at_three)
    model.set_state(seen[6][0])
    np.testing.assert_array_equal(model.score(np.arange(10)), seen[6][1])
    model.set_state(state_three)
    np.testing.assert_array_equal(model.score(np.arange(10)), at_three)
    refit = IALS(factors=4, iterations=3, use_implicit=False).fit(train)
    np.testing.assert_allclose(refit.score(np.arange(10)), at_three, rtol=1e-5, atol=1e-6)


def test_ials_fold_in_profiles_rank_own_block() -> None:
    r = _planted()
    model = IALS(factors=4, alpha=5.0, iterations=10).fit(_interactions(r))
    scores = model.score_profiles(sp.csr_matrix(r))
    assert scores.shape == r.shape
    assert _block_preference(scores, r) > 0.95
    assert np.all(model.score_profiles(sp.csr_matrix((1, 40), dtype=np.float32)) == 0)


def test_ials_rejects_bad_params() -> None:
    train = _interactions(_planted())
    with pytest.raises(ValueError, match="factors"):
        IALS(factors=0).fit(train)
    with pytest.raises(ValueError, match="regularization"):
        IALS(regularization=-1.0).fit(train)
    with pytest.raises(IndexError, match="out of range"):
        IALS(factors=2, iterations=1).fit(train).score(np.array([60]))
