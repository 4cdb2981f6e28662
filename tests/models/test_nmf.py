"""NMF (models/nmf.py): reconstruction of a hand-made low-rank matrix, parameters, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.nmf import NMF


def _rank3() -> np.ndarray:
    """Binary, non-negative rank 3: each user in one of three groups, groups' items overlap."""
    h = np.array([[1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0],
                  [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0],
                  [1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1]], dtype=np.float32)
    groups = np.arange(24) % 3
    w = np.eye(3, dtype=np.float32)[groups]
    return w @ h


@pytest.mark.parametrize(("solver", "beta_loss", "init"), [
    ("cd", "frobenius", "nndsvda"), ("mu", "frobenius", "random"),
    ("mu", "kullback-leibler", "nndsvda")])
def test_reconstructs_a_low_rank_matrix(solver: str, beta_loss: str, init: str) -> None:
    r = _rank3()
    model = NMF(num_factors=3, solver=solver, beta_loss=beta_loss, init=init,  # type: ignore[arg-type]
                l1_ratio=0.0, max_iter=3000, tol=1e-10, seed=1)
    model.fit(Interactions(sp.csr_matrix(r)))
    assert get_model_class("NMF") is NMF
    assert model.n_factors_ == 3 and not model.clipped_
    assert (model.user_factors_ >= 0).all() and (model.item_factors_ >= 0).all()
    approx = model.score(np.arange(r.shape[0]))
    np.testing.assert_allclose(approx, r, atol=0.02)
    # every user ranks exactly their group's items on top
    for u in range(r.shape[0]):
        top = set(np.argsort(-approx[u], kind="stable")[: int(r[u].sum())])
        assert top == set(np.flatnonzero(r[u]))


def test_too_few_factors_cannot_reconstruct_and_too_many_are_clipped() -> None:
    train = Interactions(sp.csr_matrix(_rank3()))
    two = NMF(num_factors=2, max_iter=2000, tol=1e-10).fit(train)
    assert np.abs(two.score(np.arange(24)) - _rank3()).max() > 0.3
    many = NMF(num_factors=50, max_iter=50).fit(train)
    assert many.clipped_ and many.n_factors_ == 12


def test_binarises_the_training_values() -> None:
    r = _rank3()
    counts = r * np.arange(1, 13, dtype=np.float32)  # stored values 1..12, same pattern
    a = NMF(num_factors=3, max_iter=300).fit(Interactions(sp.csr_matrix(r)))
    b = NMF(num_factors=3, max_iter=300).fit(Interactions(sp.csr_matrix(counts)))
    np.testing.assert_array_equal(a.score(np.arange(24)), b.score(np.arange(24)))


def test_space_and_bad_combinations() -> None:
    assert "beta_loss" not in NMF.space_for({})
    assert NMF.space_for({"solver": "mu"})["beta_loss"]["choices"] == [
        "frobenius", "kullback-leibler"]
    assert NMF.space_for({})["num_factors"]["high"] == 350
    train = Interactions(sp.csr_matrix(_rank3()))
    with pytest.raises(ValueError, match="beta_loss='kullback-leibler' needs solver='mu'"):
        NMF(solver="cd", beta_loss="kullback-leibler").fit(train)
    with pytest.raises(ValueError, match="init"):
        NMF(init="svd").fit(train)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="l1_ratio"):
        NMF(l1_ratio=1.5).fit(train)
