"""MF FunkSVD (models/funksvd.py): the minibatch rule against a plain reference, a planted
low-rank matrix reconstructed, the negative quota, the shared loop, seeds and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models._funksvd_numba import funk_svd_epoch
from recforge.models._sgd_numba import ADAM_BETAS, EPS, SGD_MODES
from recforge.models.funksvd import FunkSVD
from recforge.models.iterative import EarlyStopping


def _low_rank(seed: int = 0, n_users: int = 30, n_items: int = 20, rank: int = 3) -> np.ndarray:
    """A dense positive rank-``rank`` matrix ``U V^T`` (every entry is a stored rating)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.3, 1.2, (n_users, rank))
    v = rng.uniform(0.3, 1.2, (n_items, rank))
    return (u @ v.T).astype(np.float32)


def _reference_epoch(users: np.ndarray, items: np.ndarray, targets: np.ndarray, batch: int,
                     x: np.ndarray, y: np.ndarray, bu: np.ndarray, bi: np.ndarray,
                     mu: list[float], mode: str, lr: float, reg: tuple[float, float, float],
                     use_bias: bool) -> float:
    """The documented minibatch rule in plain Python: gradients at the batch's start."""
    params = {"x": x, "y": y, "bu": bu, "bi": bi}
    state: dict[tuple[str, int, int], list[float]] = {}
    b1, b2 = ADAM_BETAS
    total = 0.0
    mu_arr = np.array([[mu[0]]])
    for t, start in enumerate(range(0, users.size, batch), start=1):
        grads: dict[tuple[str, int, int], float] = {}
        for s in range(start, min(users.size, start + batch)):
            u, i, r = int(users[s]), int(items[s]), float(targets[s])
            pred = float(x[u] @ y[i]) + (bu[u, 0] + bi[i, 0] + mu_arr[0, 0] if use_bias else 0.0)
            e = r - pred
            total += e * e
            for f in range(x.shape[1]):
                grads[("x", u, f)] = grads.get(("x", u, f), 0.0) + reg[0] * x[u, f] - e * y[i, f]
                grads[("y", i, f)] = grads.get(("y", i, f), 0.0) + reg[1] * y[i, f] - e * x[u, f]
            if use_bias:
                grads[("bu", u, 0)] = grads.get(("bu", u, 0), 0.0) + reg[2] * bu[u, 0] - e
                grads[("bi", i, 0)] = grads.get(("bi", i, 0), 0.0) + reg[2] * bi[i, 0] - e
                grads[("mu", 0, 0)] = grads.get(("mu", 0, 0), 0.0) - e
        for (name, row, col), g in grads.items():
            c = state.setdefault((name, row, col), [0.0, 0.0])
            if mode == "adagrad":
                c[0] += g * g
                step = g / (math.sqrt(c[0]) + EPS)
            elif mode == "adam":
                c[0] = b1 * c[0] + (1 - b1) * g
                c[1] = b2 * c[1] + (1 - b2) * g * g
                step = (c[0] / (1 - b1**t)) / (math.sqrt(c[1] / (1 - b2**t)) + EPS)
            else:
                step = g
            target = mu_arr if name == "mu" else params[name]
            target[row, col] -= lr * step
    mu[0] = float(mu_arr[0, 0])
    return total


@pytest.mark.parametrize("mode", SGD_MODES)
@pytest.mark.parametrize(("batch", "use_bias"), [(1, True), (4, True), (7, False)])
def test_kernel_follows_the_documented_minibatch_rule(mode: str, batch: int,
                                                      use_bias: bool) -> None:
    rng = np.random.default_rng(1)
    n_users, n_items, k = 6, 5, 3
    n = 60
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    targets = rng.uniform(0, 3, n)
    p = np.zeros((n_users + n_items + 1, k + 1))
    p[: n_users + n_items, :k] = rng.standard_normal((n_users + n_items, k)) * 0.3
    x, y = p[:n_users, :k].copy(), p[n_users:-1, :k].copy()
    bu, bi, mu = np.zeros((n_users, 1)), np.zeros((n_items, 1)), [0.0]
    want = _reference_epoch(users, items, targets, batch, x, y, bu, bi, mu, mode, 0.03,
                            (1e-2, 2e-2, 3e-2), use_bias)
    c2 = np.zeros(p.size)
    total, t = funk_svd_epoch(users, items, targets, batch, p, n_users, k, use_bias, 0.03,
                              1e-2, 2e-2, 3e-2, SGD_MODES.index(mode), np.zeros(p.size), c2,
                              np.zeros_like(p), np.zeros(p.shape[0], dtype=np.bool_),
                              np.zeros(p.shape[0], dtype=np.int64), 0, *ADAM_BETAS, EPS)
    assert t == math.ceil(n / batch)
    assert total == pytest.approx(want, rel=1e-9)
    np.testing.assert_allclose(p[:n_users, :k], x, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p[n_users:-1, :k], y, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p[:n_users, k], bu[:, 0], atol=1e-12)
    np.testing.assert_allclose(p[n_users:-1, k], bi[:, 0], atol=1e-12)
    assert p[-1, 0] == pytest.approx(mu[0], abs=1e-12)


@pytest.mark.parametrize(("sgd_mode", "use_bias"),
                         [("sgd", False), ("adagrad", True), ("adam", True), ("adam", False)])
def test_reconstructs_a_planted_low_rank_matrix(sgd_mode: str, use_bias: bool) -> None:
    r = _low_rank()
    lr = {"sgd": 0.02, "adagrad": 0.05, "adam": 0.01}[sgd_mode]
    model = FunkSVD(factors=3, learning_rate=lr, sgd_mode=sgd_mode,  # type: ignore[arg-type]
                    use_bias=use_bias, reg_user=0.0, reg_item=0.0, batch_size=4, epochs=150,
                    seed=2)
    model.fit(Interactions(sp.csr_matrix(r)))
    assert get_model_class("FunkSVD") is FunkSVD
    pred = model.score(np.arange(r.shape[0]))
    rmse = float(np.sqrt(np.mean((pred - r) ** 2)))
    assert rmse < 0.05 * float(r.std())
    # one factor cannot: the planted rank is 3
    small = FunkSVD(factors=1, learning_rate=lr, sgd_mode=sgd_mode,  # type: ignore[arg-type]
                    use_bias=False, reg_user=0.0, reg_item=0.0, batch_size=4, epochs=150,
                    seed=2).fit(Interactions(sp.csr_matrix(r)))
    small_rmse = float(np.sqrt(np.mean((small.score(np.arange(r.shape[0])) - r) ** 2)))
    assert small_rmse > 3 * rmse


def test_negative_quota_pushes_unseen_items_below_seen_ones() -> None:
    rng = np.random.default_rng(0)
    r = (rng.random((40, 30)) < 0.3).astype(np.float32)
    r[0, :] = 1.0  # a user with every item cannot give zeros and is not drawn for them
    train = Interactions(sp.csr_matrix(r))
    args = {"factors": 8, "learning_rate": 0.01, "epochs": 60, "batch_size": 8, "seed": 1}
    plain = FunkSVD(negative_quota=0.0, **args).fit(train)
    quota = FunkSVD(negative_quota=0.4, **args).fit(train)
    s_plain = plain.score(np.arange(40))
    s_quota = quota.score(np.arange(40))
    seen = r > 0
    # without zeros every prediction drifts to the all-ones target; with them unseen ones fall
    assert s_plain[~seen].mean() > 0.8
    assert s_quota[~seen].mean() < 0.5 < s_quota[seen].mean()


def test_early_stopping_restores_the_best_validated_epoch() -> None:
    r = _low_rank(seed=3)
    calls: list[float] = []
    scored: list[np.ndarray] = []

    def neg_rmse(m: FunkSVD) -> float:
        s = m.score(np.arange(r.shape[0]))
        scored.append(s)
        calls.append(-float(np.sqrt(np.mean((s - r) ** 2))))
        return calls[-1]

    model = FunkSVD(factors=3, learning_rate=0.01, epochs=40, batch_size=4, seed=0)
    model.fit(Interactions(sp.csr_matrix(r)), validation=neg_rmse,
              early_stopping=EarlyStopping(validate_every=4, patience=2))
    assert len(calls) == len([h for h in model.history_ if h.validation is not None]) >= 2
    assert model.best_validation_ == max(calls)
    best = [h.epoch for h in model.history_ if h.validation is not None].index(model.epochs_best_)
    np.testing.assert_array_equal(model.score(np.arange(r.shape[0])), scored[best])
    assert "_p" not in vars(model)


def test_same_seed_same_scores_other_seed_other_and_bad_params() -> None:
    dense = Interactions(sp.csr_matrix(_low_rank()))
    with pytest.raises(ValueError, match="negative_quota > 0 but every user has every item"):
        FunkSVD(negative_quota=0.1).fit(dense)
    r = _low_rank()
    r[r < np.median(r)] = 0.0
    train = Interactions(sp.csr_matrix(r))
    args = {"factors": 3, "epochs": 2, "negative_quota": 0.2}
    a = FunkSVD(seed=4, **args).fit(train)
    b = FunkSVD(seed=4, **args).fit(train)
    c = FunkSVD(seed=5, **args).fit(train)
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    assert not np.array_equal(a.score(users), c.score(users))
    with pytest.raises(ValueError, match="sgd_mode"):
        FunkSVD(sgd_mode="rmsprop").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative_quota"):
        FunkSVD(negative_quota=1.0).fit(train)
    with pytest.raises(ValueError, match="batch_size"):
        FunkSVD(batch_size=0).fit(train)
    with pytest.raises(ValueError, match="reg_item"):
        FunkSVD(reg_item=-1e-3).fit(train)


def test_search_space_is_the_journal_one() -> None:
    space = FunkSVD.space_for({})
    assert space["factors"] == {"type": "int", "low": 1, "high": 200}
    assert space["negative_quota"] == {"type": "float", "low": 0.0, "high": 0.5}
    assert space["batch_size"]["choices"] == [2**e for e in range(11)]
    assert space["use_bias"]["choices"] == [True, False]
    assert "epochs" not in space


def test_target_ratings_fits_the_ratings_and_values_the_stored_ones() -> None:
    r = _low_rank(seed=4)
    users, items = np.nonzero(r)
    data = Interactions.from_arrays(users, items, ratings=r[users, items], shape=r.shape)
    assert np.all(data.matrix.data == 1.0)  # the loaders' convention: ratings kept aside
    args = {"factors": 3, "learning_rate": 0.01, "reg_user": 0.0, "reg_item": 0.0,
            "batch_size": 4, "epochs": 150, "seed": 0}
    on_ratings = FunkSVD(target="ratings", **args).fit(data).score(np.arange(r.shape[0]))
    on_values = FunkSVD(target="values", **args).fit(data).score(np.arange(r.shape[0]))
    assert float(np.sqrt(np.mean((on_ratings - r) ** 2))) < 0.05 * float(r.std())
    assert float(np.abs(on_values - 1.0).max()) < 0.05
    with pytest.raises(ValueError, match="target='ratings' but the training data"):
        FunkSVD(target="ratings").fit(Interactions(sp.csr_matrix(r)))
    with pytest.raises(ValueError, match="unknown target"):
        FunkSVD(target="stars").fit(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", [0, 1, 2])
def test_adapted_row_is_adapted_entry_by_entry_bit_for_bit(mode: int) -> None:
    """FunkSVD's row step (mode chosen once per row) does exactly what the scalar rule does."""
    from recforge.models._sgd_numba import adapted, adapted_row

    rng = np.random.default_rng(mode)
    n, slot0, t, lr = 9, 4, 3, 0.05
    param, grad = rng.standard_normal(n), rng.standard_normal(n)
    c1, c2 = np.abs(rng.standard_normal(20)), np.abs(rng.standard_normal(20))
    start = param.copy()
    want, w1, w2 = param.copy(), c1.copy(), c2.copy()
    for f in range(n):
        want[f] -= lr * adapted(grad[f], slot0 + f, mode, w1, w2, t, 0.9, 0.999, 1e-8)
    adapted_row(param, grad, slot0, mode, c1, c2, t, 0.9, 0.999, 1e-8, lr)
    assert np.array_equal(param, want) and np.array_equal(c1, w1) and np.array_equal(c2, w2)
    assert np.all(param != start)  # every entry took a step
