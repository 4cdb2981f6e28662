"""SLIM ElasticNet against per-item scikit-learn ElasticNet fits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import ElasticNet

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.slim import SLIMElasticNet, keep_count


def _data(seed: int = 0, shape: tuple[int, int] = (70, 25)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < 0.25).astype(np.float64)


def _reference(r: np.ndarray, *, top_k: int, alpha: float, l1_ratio: float, quirk: bool):
    """Dense float64 per-item ElasticNet with the target column zeroed (the paper's method)."""
    n = r.shape[1]
    w = np.zeros((n, n))
    full = np.zeros((n, n))
    for j in range(n):
        x = r.copy()
        y = x[:, j].copy()
        x[:, j] = 0.0
        en = ElasticNet(
            alpha=alpha, l1_ratio=l1_ratio, positive=True, fit_intercept=False,
            selection="random", random_state=0, max_iter=100, tol=1e-4,
        ).fit(x, y)
        coef = en.coef_
        full[:, j] = coef
        nz = np.flatnonzero(coef)
        keep = min(nz.size - 1, top_k) if quirk else min(nz.size, top_k)
        kept = nz[np.argsort(-coef[nz], kind="stable")[: max(keep, 0)]]
        w[kept, j] = coef[kept]
    return w, full


def _fit(r: np.ndarray, **kw) -> SLIMElasticNet:  # type: ignore[no-untyped-def]
    return SLIMElasticNet(**kw).fit(Interactions(sp.csr_matrix(r.astype(np.float32))))


def test_registry() -> None:
    assert get_model_class("SLIMElasticNet") is SLIMElasticNet


@pytest.mark.parametrize("top_k", [3, 100])
def test_matches_per_item_sklearn_reference(top_k: int) -> None:
    r = _data()
    model = _fit(r, top_k=top_k, alpha=0.01, l1_ratio=0.1)
    ref, _ = _reference(r, top_k=top_k, alpha=0.01, l1_ratio=0.1, quirk=False)
    w = model.item_weights_.toarray()
    np.testing.assert_allclose(w, ref, atol=1e-5)
    assert np.all(np.diag(w) == 0) and np.all(w >= 0)
    assert ((w != 0).sum(axis=0) <= top_k).all()
    np.testing.assert_allclose(model.score(np.arange(r.shape[0])), r @ ref, atol=1e-4)
    np.testing.assert_allclose(model.score_profiles(sp.csr_matrix(r[:4])), r[:4] @ ref, atol=1e-4)


def test_paper_drop_quirk_drops_smallest_coefficient() -> None:
    r = _data(1)
    plain = _fit(r, top_k=1000, alpha=0.01, l1_ratio=0.1).item_weights_.toarray()
    quirky = _fit(r, top_k=1000, alpha=0.01, l1_ratio=0.1, paper_drop_quirk=True)
    q = quirky.item_weights_.toarray()
    ref, full = _reference(r, top_k=1000, alpha=0.01, l1_ratio=0.1, quirk=True)
    np.testing.assert_allclose(q, ref, atol=1e-5)
    for j in range(r.shape[1]):
        nz = np.flatnonzero(plain[:, j])
        assert np.flatnonzero(full[:, j]).size == nz.size  # top_k=1000 kept everything
        if nz.size:
            smallest = nz[np.argmin(plain[nz, j])]
            assert np.count_nonzero(q[:, j]) == nz.size - 1
            assert q[smallest, j] == 0
    # items with more than top_k coefficients are unaffected by the quirk
    a = _fit(r, top_k=1, alpha=0.001, l1_ratio=0.01).item_weights_.toarray()
    b = _fit(r, top_k=1, alpha=0.001, l1_ratio=0.01, paper_drop_quirk=True).item_weights_
    _, full_small = _reference(r, top_k=1, alpha=0.001, l1_ratio=0.01, quirk=False)
    many = np.flatnonzero((full_small != 0).sum(axis=0) > 1)
    few = np.flatnonzero((full_small != 0).sum(axis=0) == 1)
    assert many.size > 0
    np.testing.assert_array_equal(a[:, many], b.toarray()[:, many])
    assert np.all(b.toarray()[:, few] == 0)


def test_keep_count() -> None:
    assert keep_count(0, 5, paper_drop_quirk=True) == 0
    assert keep_count(1, 5, paper_drop_quirk=True) == 0
    assert keep_count(4, 5, paper_drop_quirk=True) == 3
    assert keep_count(5, 5, paper_drop_quirk=True) == 4
    assert keep_count(6, 5, paper_drop_quirk=True) == 5
    assert keep_count(4, 5, paper_drop_quirk=False) == 4
    assert keep_count(9, 5, paper_drop_quirk=False) == 5


def test_parallel_equals_serial_and_input_untouched() -> None:
    r = _data(2, (60, 30))
    train = Interactions(sp.csr_matrix(r.astype(np.float32)))
    before = train.matrix.copy()
    serial = SLIMElasticNet(top_k=10, alpha=0.01, l1_ratio=0.2).fit(train)
    parallel = SLIMElasticNet(top_k=10, alpha=0.01, l1_ratio=0.2, n_jobs=2).fit(train)
    assert (serial.item_weights_ != parallel.item_weights_).nnz == 0
    assert (train.matrix != before).nnz == 0


def test_rejects_bad_params() -> None:
    r = _data()
    with pytest.raises(ValueError, match="top_k"):
        _fit(r, top_k=0)
    with pytest.raises(ValueError, match="l1_ratio"):
        _fit(r, l1_ratio=2.0)
    with pytest.raises(ValueError, match="alpha"):
        _fit(r, alpha=0.0)


def test_worker_accepts_read_only_matrix() -> None:
    # joblib passes large arrays to workers as read-only memmaps
    from recforge.models.slim import _fit_block_worker, fit_slim_columns

    x = sp.csc_matrix(_data(3).astype(np.float32))
    params = SLIMElasticNet(top_k=5, alpha=0.01)._checked_params()
    expected = fit_slim_columns(x.copy(), np.arange(10), params)
    x.data.setflags(write=False)
    got = _fit_block_worker(x, np.arange(10), params)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
