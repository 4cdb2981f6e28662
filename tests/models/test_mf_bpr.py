"""MF BPR (models/mf_bpr.py): a planted preference ranked first, the loop, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.iterative import EarlyStopping
from recforge.models.mf_bpr import MFBPR


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two user groups, each with its own ten items; every user has seen 7 of their 10.

    Returns the training matrix and, per user, whether an item is an unseen own-group item.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 20
    r = np.zeros((n_users, n_items), dtype=np.float32)
    own = np.zeros_like(r, dtype=bool)
    for u in range(n_users):
        block = np.arange(10) + (0 if u < n_users // 2 else 10)
        own[u, block] = True
        r[u, rng.choice(block, 7, replace=False)] = 1.0
    return r, own & (r == 0)


@pytest.mark.parametrize("sgd_mode", ["sgd", "adagrad", "adam"])
def test_ranks_the_planted_preference_first(sgd_mode: str) -> None:
    r, unseen_own = _planted()
    lr = {"sgd": 0.05, "adagrad": 0.1, "adam": 0.01}[sgd_mode]
    model = MFBPR(factors=4, learning_rate=lr, sgd_mode=sgd_mode,  # type: ignore[arg-type]
                  epochs=60, batch_size=32, seed=3)
    model.fit(Interactions(sp.csr_matrix(r)))
    assert get_model_class("MFBPR") is MFBPR
    scores = model.score(np.arange(r.shape[0]))
    scores[r > 0] = -np.inf
    top = np.argmax(scores, axis=1)
    # every user's best unseen item is one of their own group's
    assert unseen_own[np.arange(r.shape[0]), top].all()
    losses = [h.loss for h in model.history_]
    assert losses[-1] is not None and losses[0] is not None and losses[-1] < 0.5 * losses[0]


def test_early_stopping_restores_the_best_validated_epoch() -> None:
    r, unseen_own = _planted(seed=1)
    calls: list[float] = []

    def own_share(m: MFBPR) -> float:  # validation: share of users whose top item is planted
        s = m.score(np.arange(r.shape[0]))
        s[r > 0] = -np.inf
        calls.append(float(unseen_own[np.arange(r.shape[0]), np.argmax(s, axis=1)].mean()))
        return calls[-1]

    model = MFBPR(factors=4, learning_rate=0.1, epochs=40, batch_size=32)
    model.fit(Interactions(sp.csr_matrix(r)), validation=own_share,
              early_stopping=EarlyStopping(validate_every=5, patience=2))
    assert len(calls) == len([h for h in model.history_ if h.validation is not None])
    assert model.best_validation_ == max(calls) == 1.0
    assert model.epochs_best_ % 5 == 0 and model.epochs_run_ <= 40


def test_same_seed_same_factors_and_bad_params() -> None:
    train = Interactions(sp.csr_matrix(_planted()[0]))
    a = MFBPR(factors=3, epochs=2, sgd_mode="adam").fit(train)
    b = MFBPR(factors=3, epochs=2, sgd_mode="adam").fit(train)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    with pytest.raises(ValueError, match="sgd_mode"):
        MFBPR(sgd_mode="rmsprop").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learning_rate"):
        MFBPR(learning_rate=0.0).fit(train)


@pytest.mark.parametrize("sgd_mode", ["sgd", "adagrad", "adam"])
def test_row_kernels_equal_numpys_scatter_and_update_bit_for_bit(sgd_mode: str) -> None:
    """``add_rows`` sums as ``np.add.at`` does and ``step_rows`` updates as the float32 numpy
    formulas do, so MF BPR's numba path leaves earlier stored results reproducible exactly."""
    from recforge.models._sgd_numba import ADAM_BETAS, EPS, SGD_MODES, add_rows, step_rows

    rng = np.random.default_rng(7)
    n, k, batch = 30, 5, 200
    index = rng.integers(0, n - 10, batch)  # the last ten rows are never touched
    values = rng.standard_normal((batch, k)).astype(np.float32)
    rows, at = np.unique(index, return_inverse=True)
    g = np.zeros((rows.size, k), dtype=np.float32)
    add_rows(g, at, values)
    full = np.zeros((n, k), dtype=np.float32)
    np.add.at(full, index, values)
    assert np.array_equal(g, full[rows])

    param = rng.standard_normal((n, k)).astype(np.float32)
    c1 = np.abs(rng.standard_normal((n, k))).astype(np.float32)
    c2 = np.abs(rng.standard_normal((n, k))).astype(np.float32)
    lr, t = np.float32(0.03), 4
    before = param.copy()
    want, w1, w2 = param.copy(), c1.copy(), c2.copy()
    if sgd_mode == "sgd":
        want[rows] -= lr * g
    elif sgd_mode == "adagrad":
        w1[rows] += g * g
        want[rows] -= lr * g / (np.sqrt(w1[rows]) + np.float32(EPS))
    else:
        b1, b2 = ADAM_BETAS
        w1[rows] = b1 * w1[rows] + (1 - b1) * g
        w2[rows] = b2 * w2[rows] + (1 - b2) * g * g
        want[rows] -= lr * (w1[rows] / (1 - b1**t)) / (np.sqrt(w2[rows] / (1 - b2**t)) + EPS)
    step_rows(param, g, rows, SGD_MODES.index(sgd_mode), c1, c2, lr, t)
    assert np.array_equal(param, want) and np.array_equal(c1, w1) and np.array_equal(c2, w2)
    assert np.array_equal(param[n - 10 :], before[n - 10 :])
    assert not np.array_equal(param[rows], before[rows])
