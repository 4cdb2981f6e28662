"""P3alpha and RP3beta: hand-computed walks, pruning order, and a dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.graph import P3alpha, RP3beta


def interactions(dense: np.ndarray) -> Interactions:
    users, items = np.nonzero(dense)
    return Interactions.from_arrays(users, items, dense[users, items], shape=dense.shape)


# u0={0,1}, u1={0,1,2}, u2={1,2}; item popularity (2, 3, 2).
R = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=np.float32)
# P_iu @ P_ui with zero diagonal, worked out by hand:
W_FULL = np.array([[0, 5 / 12, 1 / 6], [5 / 18, 0, 5 / 18], [1 / 6, 5 / 12, 0]])


def test_p3alpha_full_walk_by_hand() -> None:
    m = P3alpha(top_k=10).fit(interactions(R))
    np.testing.assert_allclose(m.W_.toarray(), W_FULL, rtol=1e-6)
    s = m.score(np.array([0]))
    np.testing.assert_allclose(s[0], R[0] @ W_FULL, rtol=1e-6)


def test_alpha_applies_to_both_transitions_after_normalising() -> None:
    m = P3alpha(top_k=10, alpha=2.0).fit(interactions(R))
    # W[0,1] = (1/2)^2 (1/2)^2 [via u0] + (1/2)^2 (1/3)^2 [via u1]
    assert m.W_[0, 1] == pytest.approx(1 / 16 + 1 / 36, rel=1e-6)
    m0 = P3alpha(top_k=10, alpha=0.0).fit(interactions(R))
    # alpha = 0 turns every transition into 1: W counts common users.
    np.testing.assert_allclose(m0.W_.toarray(), [[0, 2, 1], [2, 0, 2], [1, 2, 0]], rtol=1e-6)


def test_p3alpha_row_then_column_top_k_with_ties() -> None:
    m = P3alpha(top_k=1).fit(interactions(R))
    # Rows keep (0,1)=5/12, (1,0)=5/18 [tie with (1,2): lower index], (2,1)=5/12;
    # column 1 then ties (0,1) and (2,1): row 0 stays.
    expected = np.zeros((3, 3))
    expected[0, 1], expected[1, 0] = 5 / 12, 5 / 18
    np.testing.assert_allclose(m.W_.toarray(), expected, rtol=1e-6)
    mn = P3alpha(top_k=1, normalize_similarity=True).fit(interactions(R))
    np.testing.assert_allclose(mn.W_.toarray(), (expected > 0).astype(float), rtol=1e-6)


def test_rp3beta_penalises_target_popularity_before_the_row_cut() -> None:
    m = RP3beta(top_k=1, beta=3.0).fit(interactions(R))
    # W * pop(j)^-3 with pop = (2, 3, 2): row 0 -> (0, 5/324, 1/48): keeps column 2, which
    # a cut before the penalty (5/12 > 1/6) would have dropped.
    # Row 1 -> (5/144, 0, 5/144): tie, keeps column 0; row 2 -> (1/48, 5/324, 0): column 0.
    # Column 0 then keeps row 1 (5/144 > 1/48).
    expected = np.zeros((3, 3))
    expected[0, 2], expected[1, 0] = 1 / 48, 5 / 144
    np.testing.assert_allclose(m.W_.toarray(), expected, rtol=1e-6)


def test_rp3beta_with_beta_zero_is_p3alpha() -> None:
    train = random_interactions(1)
    a = P3alpha(top_k=6, alpha=0.7, normalize_similarity=True).fit(train)
    b = RP3beta(top_k=6, alpha=0.7, beta=0.0, normalize_similarity=True).fit(train)
    np.testing.assert_allclose(a.W_.toarray(), b.W_.toarray(), rtol=1e-6)


def test_unused_items_get_no_weight_and_ratings_shape_p_ui_only() -> None:
    r = np.array([[2, 1, 0, 0], [1, 0, 1, 0]], dtype=np.float32)
    m = RP3beta(top_k=10, beta=0.5).fit(interactions(r))
    assert not m.W_[:, 3].toarray().any() and not m.W_[3].toarray().any()
    # P_ui uses the stored values: u0 -> (2/3, 1/3); P_iu is binary: item 0 -> (1/2, 1/2).
    # W[0,1] = 1/2 * 1/3 = 1/6, times pop(1)^-0.5 = 1.
    assert m.W_[0, 1] == pytest.approx(1 / 6, rel=1e-6)
    # Scoring uses the binarised profile.
    np.testing.assert_allclose(m.score(np.array([0]))[0], (r[0] > 0) @ m.W_.toarray(), rtol=1e-6)


# ----------------------------------------------------------------------------- dense reference
def reference_rp3(
    r: np.ndarray, top_k: int, alpha: float, beta: float, normalize: bool
) -> np.ndarray:
    """The paper's recipe written out with dense numpy arrays and explicit loops."""
    binary = (r != 0).astype(np.float64)
    p_ui = r / np.maximum(r.sum(1, keepdims=True), 1e-300)
    p_iu = binary.T / np.maximum(binary.T.sum(1, keepdims=True), 1e-300)
    p_ui = np.where(p_ui != 0, np.abs(p_ui) ** alpha, 0.0)
    p_iu = np.where(p_iu != 0, p_iu**alpha, 0.0)
    w = p_iu @ p_ui
    np.fill_diagonal(w, 0.0)
    pop = binary.sum(0)
    w = w * np.where(pop > 0, np.maximum(pop, 1) ** -beta, 0.0)[None, :]
    n = w.shape[0]
    rows = np.zeros_like(w)
    for i in range(n):
        for j in sorted(range(n), key=lambda c: (-w[i, c], c))[:top_k]:
            rows[i, j] = w[i, j]
    if normalize:
        sums = rows.sum(1, keepdims=True)
        rows = np.divide(rows, sums, out=np.zeros_like(rows), where=sums > 0)
    out = np.zeros_like(rows)
    for j in range(n):
        for i in sorted(range(n), key=lambda c: (-rows[c, j], c))[:top_k]:
            out[i, j] = rows[i, j]
    return out


def random_interactions(seed: int, n_users: int = 50, n_items: int = 40) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.15) * rng.uniform(0.5, 5.0, (n_users, n_items))
    dense[:, -1] = 0.0  # an item nobody used
    return interactions(dense.astype(np.float32))


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (P3alpha, {"top_k": 5, "alpha": 1.0, "normalize_similarity": False}),
        (P3alpha, {"top_k": 3, "alpha": 0.4, "normalize_similarity": True}),
        (RP3beta, {"top_k": 7, "alpha": 1.3, "beta": 0.6, "normalize_similarity": True}),
        (RP3beta, {"top_k": 2, "alpha": 0.8, "beta": 1.9, "normalize_similarity": False}),
        (RP3beta, {"top_k": 100, "alpha": 1.0, "beta": 0.3, "normalize_similarity": True}),
    ],
)
def test_matches_dense_reference_in_small_blocks(cls: type, params: dict) -> None:
    train = random_interactions(len(str(params)))
    expected = reference_rp3(
        train.matrix.toarray().astype(np.float64),
        params["top_k"],
        params["alpha"],
        params.get("beta", 0.0),
        params["normalize_similarity"],
    )
    for budget in (0.005, 64.0):
        m = cls(memory_budget_mb=budget, **params).fit(train)
        got = m.W_.toarray()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
        np.testing.assert_array_equal(got != 0, expected != 0)


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("cls", [P3alpha, RP3beta])
def test_estimator_contract(cls: type) -> None:
    m = cls(top_k=0, alpha=-1)
    assert set(vars(m)) == set(m.get_params())
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        m.fit(random_interactions(2))
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        cls(alpha=-1).fit(random_interactions(2))
    m = cls(top_k=4)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.score(np.array([0]))
    before = set(vars(m))
    m.fit(random_interactions(2))
    added = set(vars(m)) - before
    assert added and all(a.endswith("_") for a in added)
    s = m.score(np.array([3, 1]))
    assert s.shape == (2, 40) and s.dtype == np.float32
    prof = random_interactions(2).matrix[[3, 1]] * 7.0
    np.testing.assert_allclose(m.score_profiles(sp.csr_matrix(prof)), s, rtol=1e-6)
    assert np.all(np.diff(m.W_.tocsc().indptr) <= 4)
    assert np.all(np.diff(m.W_.indptr) <= 4)
    assert get_model_class(cls.name) is cls


def test_rp3beta_rejects_negative_beta_and_search_spaces() -> None:
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        RP3beta(beta=-0.5).fit(random_interactions(3))
    assert "beta" not in P3alpha().get_params()
    assert P3alpha.search_space == {
        "top_k": {"type": "int", "low": 5, "high": 800},
        "alpha": {"type": "float", "low": 0.0, "high": 2.0, "log": False},
        "normalize_similarity": {"type": "categorical", "choices": [True, False]},
    }
    assert RP3beta.search_space["beta"] == {"type": "float", "low": 0.0, "high": 2.0, "log": False}
    assert set(RP3beta.search_space) == {"top_k", "alpha", "beta", "normalize_similarity"}
