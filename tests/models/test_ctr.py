"""CTR's confidence-weighted ALS (the collaborative half of CVAE and CDL) vs numpy references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.models.torch.ctr import CTRWeights, als_sweeps, ctr_loss, update_items, update_users


def _data(n_users: int = 30, n_items: int = 40, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    r = sp.random(n_users, n_items, density=0.12, random_state=seed, format="csr")
    r.data[:] = 1.0
    r = r.tolil()
    r[3, :] = 0  # a user without items
    r[:, 7] = 0  # an item without users
    r = sp.csr_matrix(r)
    r.eliminate_zeros()
    v = rng.normal(size=(n_items, k))
    theta = rng.normal(size=(n_items, k))
    return r, v, theta


def _confidence(r: sp.csr_matrix, w: CTRWeights) -> np.ndarray:
    dense = r.toarray()
    return np.where(dense > 0, w.a, w.b)


def test_user_step_is_the_closed_form_of_each_row():
    r, v, _ = _data()
    w = CTRWeights(a=1.0, b=0.01, lambda_u=0.1, lambda_v=10.0)
    u = update_users(r, v, w)
    dense, c = r.toarray(), _confidence(r, w)
    k = v.shape[1]
    for i in range(r.shape[0]):
        a_i = v.T @ (c[i][:, None] * v) + w.lambda_u * np.eye(k)
        ref = np.linalg.solve(a_i, v.T @ (c[i] * dense[i]))
        np.testing.assert_allclose(u[i], ref, rtol=1e-10, atol=1e-12)
    assert np.all(u[3] == 0)  # no items: the minimiser is 0


def test_item_step_includes_the_content_prior():
    r, v, theta = _data()
    w = CTRWeights(a=1.0, b=0.01, lambda_u=0.1, lambda_v=10.0)
    u = update_users(r, v, w)
    v_new = update_items(sp.csr_matrix(r.T), u, theta, w)
    dense, c = r.toarray(), _confidence(r, w)
    k = u.shape[1]
    for j in range(r.shape[1]):
        a_j = u.T @ (c[:, j][:, None] * u) + w.lambda_v * np.eye(k)
        ref = np.linalg.solve(a_j, u.T @ (c[:, j] * dense[:, j]) + w.lambda_v * theta[j])
        np.testing.assert_allclose(v_new[j], ref, rtol=1e-10, atol=1e-12)


def test_short_rows_woodbury_and_long_rows_direct_agree_with_the_reference():
    # k = 8: rows with fewer than 4 entries take the Woodbury path, the others the direct one
    rng = np.random.default_rng(5)
    k, n_cols = 8, 30
    counts = [0, 1, 2, 3, 4, 6, 12, 30]
    rows = [rng.choice(n_cols, c, replace=False) for c in counts]
    r = sp.csr_matrix((np.ones(sum(counts)), np.concatenate(rows).astype(int),
                       np.concatenate([[0], np.cumsum(counts)])), shape=(len(counts), n_cols))
    r.sort_indices()
    other = rng.normal(size=(n_cols, k))
    prior = rng.normal(size=(len(counts), k))
    w = CTRWeights(a=1.0, b=0.05, lambda_u=0.3, lambda_v=3.0)
    from recforge.models.torch import ctr

    base = w.b * (other.T @ other) + w.lambda_v * np.eye(k)
    got = ctr._solve_rows(r, other, base, w.a, w.a - w.b, prior)
    for i, idx in enumerate(rows):
        o = other[idx]
        ref = np.linalg.solve(base + (w.a - w.b) * o.T @ o, w.a * o.sum(0) + prior[i])
        np.testing.assert_allclose(got[i], ref, rtol=1e-10, atol=1e-12)


def test_rated_only_negative_term_ignores_unrated_items():
    r, v, _ = _data()
    w = CTRWeights(unrated="rated")
    u = update_users(r, v, w)
    rated = np.diff(r.tocsc().indptr) > 0
    dense = r.toarray()
    k = v.shape[1]
    i = int(np.flatnonzero(np.diff(r.indptr))[0])
    vr = v[rated]
    a_i = w.b * vr.T @ vr + w.lambda_u * np.eye(k)
    items = dense[i] > 0
    a_i += (w.a - w.b) * v[items].T @ v[items]
    np.testing.assert_allclose(u[i], np.linalg.solve(a_i, w.a * v[items].sum(0)), rtol=1e-10)
    assert not np.allclose(u, update_users(r, v, CTRWeights()))


def test_loss_matches_the_dense_definition_and_never_increases():
    r, v, theta = _data()
    w = CTRWeights(a=1.0, b=0.05, lambda_u=0.5, lambda_v=2.0)
    u = np.random.default_rng(1).normal(size=(r.shape[0], v.shape[1]))
    dense, c = r.toarray(), _confidence(r, w)
    ref = (0.5 * np.sum(c * (dense - u @ v.T) ** 2) + 0.5 * w.lambda_u * np.sum(u * u)
           + 0.5 * w.lambda_v * np.sum((v - theta) ** 2))
    assert ctr_loss(r, u, v, theta, w) == pytest.approx(ref, rel=1e-10)
    losses = []
    for _ in range(6):
        u, v, sweeps, loss = als_sweeps(r, u, v, theta, w, max_iter=1)
        assert sweeps == 1
        losses.append(loss)
    assert all(b <= a + 1e-9 * abs(a) for a, b in itertools.pairwise(losses))


def test_sweeps_stop_at_the_tolerance_and_leave_inputs_alone():
    r, v, theta = _data()
    w = CTRWeights()
    u0 = np.zeros((r.shape[0], v.shape[1]))
    v0 = v.copy()
    _, _, sweeps, _ = als_sweeps(r, u0, v, theta, w, max_iter=200, tol=1e-6)
    assert 1 < sweeps < 200
    np.testing.assert_array_equal(v, v0)
    assert np.all(u0 == 0)


def test_planted_preference_is_recovered():
    # two user groups, two item groups; content codes separate the item groups
    n_users, n_items, k = 40, 30, 2
    group_u = np.arange(n_users) % 2
    group_i = np.arange(n_items) % 2
    rng = np.random.default_rng(3)
    liked = (group_u[:, None] == group_i[None, :]) & (rng.random((n_users, n_items)) < 0.3)
    r = sp.csr_matrix(liked.astype(np.float64))
    theta = np.stack([group_i == 0, group_i == 1], axis=1).astype(np.float64)
    u, v, _, _ = als_sweeps(r, np.zeros((n_users, k)), theta.copy(), theta, CTRWeights(),
                            max_iter=20)
    scores = u @ v.T
    same = scores[group_u[:, None] == group_i[None, :]].mean()
    other = scores[group_u[:, None] != group_i[None, :]].mean()
    assert same > other + 0.1


def test_bad_weights_and_shapes_are_named():
    with pytest.raises(ValueError, match="lambda_u"):
        CTRWeights(lambda_u=0.0)
    with pytest.raises(ValueError, match=r"a \(0\.01\) must be >= b"):
        CTRWeights(a=0.01, b=1.0)
    with pytest.raises(ValueError, match="unrated"):
        CTRWeights(unrated="some")  # type: ignore[arg-type]
    r, v, theta = _data()
    with pytest.raises(ValueError, match="item factors"):
        als_sweeps(r, np.zeros((r.shape[0], 5)), v[:-1], theta, CTRWeights())
    with pytest.raises(ValueError, match="max_iter"):
        als_sweeps(r, np.zeros((r.shape[0], 5)), v, theta, CTRWeights(), max_iter=0)
