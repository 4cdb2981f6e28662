"""iALS confidence scalings and solvers against a plain numpy reference (models/ials.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.ials import IALS
from recforge.models.mf import IALS as IALSFromMF


def _matrix(seed: int = 3, n_users: int = 12, n_items: int = 9) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = (rng.random((n_users, n_items)) < 0.35).astype(np.float32)
    r[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody empty
    return r


def _reference_als(r: np.ndarray, k: int, reg: float, alpha: float, eps: float,
                   epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hu et al.'s ALS written from the paper, one dense solve per row, log confidence."""
    rng = np.random.default_rng(seed)
    x = (rng.random((r.shape[0], k), dtype=np.float32) * np.float32(0.01)).astype(np.float64)
    y = (rng.random((r.shape[1], k), dtype=np.float32) * np.float32(0.01)).astype(np.float64)
    p = (r > 0).astype(np.float64)
    c = 1.0 + alpha * np.log(1.0 + p / eps)  # unobserved: log(1) = 0 -> confidence 1
    for _ in range(epochs):
        for u in range(r.shape[0]):
            cu = np.diag(c[u])
            x[u] = np.linalg.solve(y.T @ cu @ y + reg * np.eye(k), y.T @ cu @ p[u])
        for i in range(r.shape[1]):
            ci = np.diag(c[:, i])
            y[i] = np.linalg.solve(x.T @ ci @ x + reg * np.eye(k), x.T @ ci @ p[:, i])
    return x, y


def test_registered_and_reexported_from_mf() -> None:
    assert get_model_class("IALS") is IALS and IALSFromMF is IALS


@pytest.mark.parametrize("epochs", [1, 4])
def test_log_confidence_exact_solver_equals_numpy_reference(epochs: int) -> None:
    r = _matrix()
    alpha, eps, reg, k = 7.5, 0.3, 0.05, 3
    model = IALS(factors=k, regularization=reg, alpha=alpha, epsilon=eps, confidence="log",
                 solver="cholesky", iterations=epochs, use_implicit=False, seed=11)
    model.fit(Interactions(sp.csr_matrix(r)))
    x, y = _reference_als(r, k, reg, alpha, eps, epochs, seed=11)
    np.testing.assert_allclose(model.user_factors_, x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.item_factors_, y, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(r.shape[0])), x @ y.T, rtol=1e-4, atol=1e-6)


def test_log_scaling_is_the_linear_model_with_the_log_weight() -> None:
    # on binary data c = 1 + alpha log(1 + 1/eps): the same fit as linear with that alpha
    train = Interactions(sp.csr_matrix(_matrix(seed=5)))
    alpha, eps = 2.0, 0.5
    log_fit = IALS(factors=3, alpha=alpha, epsilon=eps, confidence="log", iterations=3,
                   use_implicit=False).fit(train)
    lin_fit = IALS(factors=3, alpha=alpha * math.log(1 + 1 / eps), iterations=3,
                   use_implicit=False).fit(train)
    np.testing.assert_allclose(log_fit.item_factors_, lin_fit.item_factors_, rtol=1e-5, atol=1e-7)
    other = IALS(factors=3, alpha=alpha, iterations=3, use_implicit=False).fit(train)
    assert not np.allclose(other.item_factors_, log_fit.item_factors_, rtol=1e-3)


def test_exact_epoch_solves_the_normal_equations_and_cg_approaches_them() -> None:
    r = _matrix(seed=8, n_users=30, n_items=20)
    train = Interactions(sp.csr_matrix(r))
    exact = IALS(factors=4, alpha=3.0, iterations=6, use_implicit=False).fit(train)
    cg = IALS(factors=4, alpha=3.0, iterations=6, use_implicit=False, solver="cg",
              cg_steps=4).fit(train)
    assert cg.training_loss(train) == pytest.approx(exact.training_loss(train), rel=0.05)
    # the last half-epoch updated the items: each item row is optimal for the user factors
    x = exact.user_factors_.astype(np.float64)
    c = 1.0 + 3.0 * r
    for i in range(r.shape[1]):
        a = x.T @ (c[:, i, None] * x) + 0.01 * np.eye(4)
        np.testing.assert_allclose(a @ exact.item_factors_[i], x.T @ (c[:, i] * r[:, i]),
                                   rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_implicit_solver_by_name_reaches_the_same_objective(solver: str) -> None:
    pytest.importorskip("implicit")
    r = _matrix(seed=2, n_users=40, n_items=30)
    train = Interactions(sp.csr_matrix(r))
    params = {"factors": 4, "alpha": 4.0, "epsilon": 0.5, "confidence": "log", "iterations": 12,
              "solver": solver}
    ours = IALS(use_implicit=False, **params).fit(train)  # type: ignore[arg-type]
    theirs = IALS(use_implicit=True, **params).fit(train)  # type: ignore[arg-type]
    assert theirs.backend_ == "implicit" and ours.backend_ == "numpy"
    assert theirs.training_loss(train) == pytest.approx(ours.training_loss(train), rel=0.03)


def test_search_space_gains_epsilon_for_log_confidence() -> None:
    assert "epsilon" not in IALS.space_for({})
    space = IALS.space_for({"confidence": "log", "alpha": 2.0})
    assert space["epsilon"] == {"type": "float", "low": 1e-3, "high": 10.0, "log": True}
    assert set(space) == {"factors", "regularization", "epsilon"}


def test_bad_names_are_refused_before_training() -> None:
    train = Interactions(sp.csr_matrix(_matrix()))
    with pytest.raises(ValueError, match="confidence"):
        IALS(confidence="sqrt").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="solver"):
        IALS(solver="lu").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epsilon"):
        IALS(confidence="log", epsilon=0.0).fit(train)
