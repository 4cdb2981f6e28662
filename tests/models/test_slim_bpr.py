"""SLIM BPR (models/slim_bpr.py): the update rule against a plain reference, a planted
preference ranked first, pruning, symmetry, the shared loop, seeds and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models._sgd_numba import ADAM_BETAS, EPS, SGD_MODES
from recforge.models._slim_bpr_numba import slim_bpr_epoch
from recforge.models.iterative import EarlyStopping
from recforge.models.slim_bpr import SLIMBPR


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two user groups, each with its own ten items; every user has seen 6 of their 10.

    Returns the training matrix and, per user, whether an item is an unseen own-group item.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = 40, 20
    r = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        block = np.arange(10) + (0 if u < n_users // 2 else 10)
        r[u, rng.choice(block, 6, replace=False)] = 1.0
    own = np.zeros_like(r, dtype=bool)
    own[: n_users // 2, :10] = True
    own[n_users // 2 :, 10:] = True
    return r, own & (r == 0)


def _reference_epoch(r: np.ndarray, triples: list[tuple[int, int, int]], s: np.ndarray,
                     mode: str, lr: float, li: float, lj: float, symmetric: bool) -> float:
    """The documented rule, one triple at a time, in plain Python (float64)."""
    c1 = np.zeros(s.shape[0])
    c2 = np.zeros(s.shape[0])
    b1, b2 = ADAM_BETAS
    loss = 0.0
    for t, (u, i, j) in enumerate(triples, start=1):
        seen = np.flatnonzero(r[u])
        x = float(sum(s[i, k] - s[j, k] for k in seen))
        loss += math.log(1.0 + math.exp(-x))
        g = 1.0 / (1.0 + math.exp(x))
        steps = []
        for item in (i, j):
            if mode == "adagrad":
                c1[item] += g * g
                steps.append(g / (math.sqrt(c1[item]) + EPS))
            elif mode == "adam":
                c1[item] = b1 * c1[item] + (1 - b1) * g
                c2[item] = b2 * c2[item] + (1 - b2) * g * g
                steps.append((c1[item] / (1 - b1**t)) / (math.sqrt(c2[item] / (1 - b2**t)) + EPS))
            else:
                steps.append(g)
        for k in seen:
            if k != i:
                s[i, k] += lr * (steps[0] - li * s[i, k])
                if symmetric:
                    s[k, i] = s[i, k]
            s[j, k] -= lr * (steps[1] + lj * s[j, k])
            if symmetric:
                s[k, j] = s[j, k]
    return loss


@pytest.mark.parametrize("mode", SGD_MODES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_kernel_follows_the_documented_update_rule(mode: str, symmetric: bool) -> None:
    r, _ = _planted()
    rng = np.random.default_rng(5)
    triples = []
    for _ in range(300):
        u = int(rng.integers(r.shape[0]))
        i = int(rng.choice(np.flatnonzero(r[u])))
        j = int(rng.choice(np.flatnonzero(r[u] == 0)))
        triples.append((u, i, j))
    x = sp.csr_matrix(r)
    ref = np.zeros((20, 20))
    want = _reference_epoch(r, triples, ref, mode, 0.05, 1e-3, 2e-3, symmetric)
    s = np.zeros((20, 20), dtype=np.float32)
    u, i, j = (np.array(c, dtype=np.int64) for c in zip(*triples, strict=True))
    loss, t = slim_bpr_epoch(x.indptr.astype(np.int64), x.indices.astype(np.int64), u, i, j, s,
                             symmetric, 0.05, 1e-3, 2e-3, SGD_MODES.index(mode),
                             np.zeros(20), np.zeros(20), 0, *ADAM_BETAS, EPS)
    assert t == 300
    assert loss == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(s, ref, rtol=1e-4, atol=1e-6)
    assert np.all(np.diag(s) == 0)
    if symmetric:
        np.testing.assert_array_equal(s, s.T)


@pytest.mark.parametrize("sgd_mode", SGD_MODES)
def test_ranks_the_planted_preference_first(sgd_mode: str) -> None:
    r, unseen_own = _planted()
    lr = {"sgd": 0.05, "adagrad": 0.05, "adam": 0.005}[sgd_mode]
    model = SLIMBPR(top_k=20, learning_rate=lr, sgd_mode=sgd_mode,  # type: ignore[arg-type]
                    epochs=20, seed=3)
    model.fit(Interactions(sp.csr_matrix(r)))
    assert get_model_class("SLIMBPR") is SLIMBPR
    scores = model.score(np.arange(r.shape[0]))
    scores[r > 0] = -np.inf
    top = np.argmax(scores, axis=1)
    # every user's best unseen item is one of their own group's
    assert unseen_own[np.arange(r.shape[0]), top].all()
    losses = [h.loss for h in model.history_]
    assert losses[-1] is not None and losses[0] is not None and losses[-1] < 0.7 * losses[0]
    # fold-in of the training rows gives the same scores
    np.testing.assert_allclose(model.score_profiles(sp.csr_matrix(r)),
                               model.score(np.arange(r.shape[0])), rtol=1e-6)


def test_pruning_keeps_the_top_k_per_item_and_no_self_weight() -> None:
    r, _ = _planted(seed=2)
    train = Interactions(sp.csr_matrix(r))
    full = SLIMBPR(top_k=20, epochs=5, symmetric=True, seed=1).fit(train)
    w_full = full.item_weights_.toarray()
    assert np.all(np.diag(w_full) == 0)
    np.testing.assert_array_equal(w_full, w_full.T)  # symmetric and nothing pruned
    pruned = SLIMBPR(top_k=3, epochs=5, symmetric=True, seed=1).fit(train).item_weights_.toarray()
    for col in range(20):
        kept = np.flatnonzero(pruned[:, col])
        assert kept.size <= 3
        # the kept ones are the 3 largest of the unpruned column (same seed, same training)
        assert set(kept) <= set(np.argsort(-w_full[:, col], kind="stable")[:3])
        np.testing.assert_array_equal(pruned[kept, col], w_full[kept, col])


def test_early_stopping_restores_the_best_validated_epoch() -> None:
    r, unseen_own = _planted(seed=1)
    calls: list[float] = []
    scored: list[np.ndarray] = []

    def own_share(m: SLIMBPR) -> float:  # validation: share of users whose top item is planted
        s = m.score(np.arange(r.shape[0]))
        scored.append(s.copy())
        s[r > 0] = -np.inf
        calls.append(float(unseen_own[np.arange(r.shape[0]), np.argmax(s, axis=1)].mean()))
        return calls[-1]

    model = SLIMBPR(top_k=20, learning_rate=0.02, epochs=30, seed=0)
    model.fit(Interactions(sp.csr_matrix(r)), validation=own_share,
              early_stopping=EarlyStopping(validate_every=2, patience=3))
    assert len(calls) == len([h for h in model.history_ if h.validation is not None]) >= 2
    assert model.best_validation_ == max(calls)
    best = [h.epoch for h in model.history_ if h.validation is not None].index(model.epochs_best_)
    np.testing.assert_array_equal(model.score(np.arange(r.shape[0])), scored[best])
    assert "_s" not in vars(model)  # the dense training matrix is freed


def test_same_seed_same_scores_other_seed_other_and_bad_params() -> None:
    train = Interactions(sp.csr_matrix(_planted()[0]))
    a = SLIMBPR(top_k=8, epochs=3, sgd_mode="adam", seed=4).fit(train)
    b = SLIMBPR(top_k=8, epochs=3, sgd_mode="adam", seed=4).fit(train)
    c = SLIMBPR(top_k=8, epochs=3, sgd_mode="adam", seed=5).fit(train)
    users = np.arange(train.n_users)
    np.testing.assert_array_equal(a.score(users), b.score(users))
    assert not np.array_equal(a.score(users), c.score(users))
    with pytest.raises(ValueError, match="sgd_mode"):
        SLIMBPR(sgd_mode="rmsprop").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="learning_rate"):
        SLIMBPR(learning_rate=0.0).fit(train)
    with pytest.raises(ValueError, match="top_k"):
        SLIMBPR(top_k=0).fit(train)
    with pytest.raises(ValueError, match="lambda_j"):
        SLIMBPR(lambda_j=-1.0).fit(train)
    # 20 items: 1,600 bytes of weights + the pruning's 20 x 20 x 24 bytes
    assert SLIMBPR.estimated_memory_mb(20) == pytest.approx((1600 + 9600) / 2**20)
    refit = SLIMBPR(top_k=8, epochs=1).fit(train).set_params(memory_budget_mb=0.001)
    with pytest.raises(MemoryError, match=r"20 items need .* memory_budget_mb=0.001"):
        refit.fit(train)
    assert not refit.is_fitted  # refused before any work, and the old fit is not kept


def test_search_space_is_the_journal_one() -> None:
    space = SLIMBPR.space_for({})
    assert space["top_k"] == {"type": "int", "low": 5, "high": 1000}
    assert space["sgd_mode"]["choices"] == ["sgd", "adagrad", "adam"]
    assert space["symmetric"]["choices"] == [True, False]
    for name in ("lambda_i", "lambda_j"):
        assert (space[name]["low"], space[name]["high"], space[name]["log"]) == (1e-5, 1e-2, True)
    assert "epochs" not in space  # chosen by early stopping
