"""KNN models: weighting as in the paper, scoring, search spaces and the estimator contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models import get_model_class
from recforge.models.knn import (
    SEARCHED_SIMILARITIES,
    ItemKNNCBF,
    ItemKNNCF,
    ItemKNNCFCBF,
    UserKNNCF,
    knn_search_space,
)
from recforge.models.similarity import compute_similarity
from recforge.models.weighting import bm25, tfidf

EPS = 1e-6
ALL = [ItemKNNCF, UserKNNCF, ItemKNNCBF, ItemKNNCFCBF]


def interactions(dense: np.ndarray, icm: np.ndarray | None = None) -> Interactions:
    users, items = np.nonzero(dense)
    return Interactions.from_arrays(
        users,
        items,
        dense[users, items],
        shape=dense.shape,
        item_features=None if icm is None else sp.csr_matrix(icm),
    )


# 3 users x 5 items: u0={0,1}, u1={0,1,2}, u2={3,4}.
R = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1]], dtype=np.float32)
# TF-IDF of R^T (rows = items, N = 5): idf(u0) = idf(u2) = log(5/3), idf(u1) = log(5/4).
A, B = math.log(5 / 3), math.log(5 / 4)


def random_interactions(seed: int, n_users: int = 40, n_items: int = 30) -> Interactions:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.2).astype(np.float32)
    icm = (rng.random((n_items, 12)) < 0.3).astype(np.float32)
    return interactions(dense, icm)


# ----------------------------------------------------------------------------- ItemKNN CF
def test_itemknn_cosine_by_hand_and_scores() -> None:
    m = ItemKNNCF(top_k=10).fit(interactions(R))
    w = m.W_.toarray()
    assert w[0, 1] == pytest.approx(2 / (2 + EPS))
    assert w[0, 2] == pytest.approx(1 / (math.sqrt(2) + EPS))
    assert w[3, 4] == pytest.approx(1 / (1 + EPS))
    s = m.score(np.array([0, 2]))
    assert s.dtype == np.float32 and s.shape == (2, 5) and s.flags.c_contiguous
    np.testing.assert_allclose(s, (sp.csr_matrix(R)[[0, 2]] @ m.W_).toarray(), rtol=1e-6)
    assert s[0, 2] == pytest.approx(2 / (math.sqrt(2) + EPS), rel=1e-6)


def test_itemknn_tfidf_weights_rt_rows_and_scores_with_weighted_profile() -> None:
    m = ItemKNNCF(top_k=10, feature_weighting="TF-IDF").fit(interactions(R))
    expected_rw = np.array([[A, A, 0, 0, 0], [B, B, B, 0, 0], [0, 0, 0, A, A]], dtype=np.float32)
    np.testing.assert_allclose(m.train_matrix_.toarray(), expected_rw, rtol=1e-6)
    w = m.W_.toarray()
    norm = math.sqrt(A * A + B * B)
    assert w[1, 0] == pytest.approx((A * A + B * B) / (norm * norm + EPS), rel=1e-6)
    assert w[2, 0] == pytest.approx(B * B / (norm * B + EPS), rel=1e-6)
    # Scores use the weighted profile: u1 = (B, B, B, 0, 0).
    s = m.score(np.array([1]))
    assert s[0, 0] == pytest.approx(B * w[1, 0] + B * w[2, 0], rel=1e-6)
    assert s[0, 0] != pytest.approx(w[1, 0] + w[2, 0], rel=1e-3)


@pytest.mark.parametrize("weighting", ["none", "TF-IDF", "BM25"])
def test_itemknn_matches_similarity_of_weighted_matrix(weighting: str) -> None:
    train = random_interactions(1)
    m = ItemKNNCF(top_k=7, shrink=3, feature_weighting=weighting).fit(train)
    r = train.matrix
    if weighting == "TF-IDF":
        rw = tfidf(r.T).T
    elif weighting == "BM25":
        rw = bm25(r.T).T
    else:
        rw = r
    w = compute_similarity(rw, shrink=3, top_k=7)
    np.testing.assert_allclose(m.W_.toarray(), w.toarray(), rtol=1e-6)
    users = np.array([0, 5, 39])
    np.testing.assert_allclose(
        m.score(users), (sp.csr_matrix(rw)[users] @ w).toarray(), rtol=1e-5, atol=1e-7
    )
    # Fold-in profiles are weighted like training users, so training rows score identically.
    np.testing.assert_allclose(m.score_profiles(r[users]), m.score(users), rtol=1e-5, atol=1e-7)


def test_itemknn_bm25_by_hand() -> None:
    # R^T rows are items; row sums = item popularity (2, 2, 1, 1, 1), mean 7/5.
    m = ItemKNNCF(feature_weighting="BM25").fit(interactions(R))
    length = 0.25 + 0.75 * 2 / (7 / 5)
    expected = 1 * 2.2 / (1.2 * length + 1) * A
    assert m.train_matrix_[0, 0] == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- UserKNN CF
def test_userknn_tfidf_by_hand() -> None:
    m = UserKNNCF(top_k=10, feature_weighting="TF-IDF").fit(interactions(R))
    assert m.W_.shape == (3, 3)
    # Users of R_w: u0=(A,A,0,0,0), u1=(B,B,B,0,0): cosine 2AB / (A sqrt2 * B sqrt3).
    cos01 = 2 * A * B / (A * math.sqrt(2) * B * math.sqrt(3) + EPS)
    assert m.W_[0, 1] == pytest.approx(cos01, rel=1e-6)
    assert m.W_[0, 2] == 0
    s = m.score(np.array([0]))
    np.testing.assert_allclose(s[0], cos01 * np.array([B, B, B, 0, 0]), rtol=1e-6)


def test_userknn_scores_with_rows_of_column_topk_matrix() -> None:
    train = random_interactions(2)
    m = UserKNNCF(top_k=3, similarity="asymmetric", asymmetric_alpha=0.8).fit(train)
    w = compute_similarity(train.matrix.T, similarity="asymmetric", top_k=3, asymmetric_alpha=0.8)
    np.testing.assert_allclose(m.W_.toarray(), w.toarray(), rtol=1e-6)
    users = np.arange(train.n_users)
    np.testing.assert_allclose(
        m.score(users), (w[users] @ train.matrix).toarray(), rtol=1e-5, atol=1e-7
    )
    assert not UserKNNCF.supports_profiles
    with pytest.raises(NotImplementedError):
        m.score_profiles(train.matrix)


# ----------------------------------------------------------------------------- CBF / CFCBF
def test_itemknn_cbf_by_hand() -> None:
    icm = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    r = np.array([[0, 1, 0], [1, 0, 1]], dtype=np.float32)
    m = ItemKNNCBF().fit(interactions(r, icm))
    assert m.W_[1, 0] == pytest.approx(1 / (math.sqrt(2) + EPS))
    assert m.W_[2, 0] == 0
    assert m.score(np.array([0]))[0, 0] == pytest.approx(1 / (math.sqrt(2) + EPS))
    prof = sp.csr_matrix(np.array([[0, 3, 0]], dtype=np.float32))
    assert m.score_profiles(prof)[0, 0] == pytest.approx(3 / (math.sqrt(2) + EPS))


def test_cbf_weighting_applies_to_icm_and_scoring_uses_raw_r() -> None:
    train = random_interactions(3)
    m = ItemKNNCBF(top_k=6, feature_weighting="BM25").fit(train)
    w = compute_similarity(bm25(train.item_features).T, top_k=6)
    np.testing.assert_allclose(m.W_.toarray(), w.toarray(), rtol=1e-6)
    np.testing.assert_allclose(
        m.score(np.arange(5)), (train.matrix[:5] @ w).toarray(), rtol=1e-5, atol=1e-7
    )


def test_cbf_without_features_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"needs item features: train\.item_features is None"):
        ItemKNNCBF().fit(interactions(R))
    with pytest.raises(ValueError, match="ItemKNNCFCBF needs item features"):
        ItemKNNCFCBF().fit(interactions(R))


def test_cfcbf_concatenates_weighted_icm_and_rt() -> None:
    # Items i0: ICM (1,0), users (1,1); i1: ICM (0,1), users (1,0).
    icm = np.array([[1, 0], [0, 1]], dtype=np.float32)
    r = np.array([[1, 1], [1, 0]], dtype=np.float32)
    for weight, expected in ((2.0, 1 / math.sqrt(30)), (1.0, 1 / math.sqrt(6))):
        m = ItemKNNCFCBF(icm_weight=weight).fit(interactions(r, icm))
        assert m.W_[0, 1] == pytest.approx(1 / (1 / expected + EPS), rel=1e-6)


def test_cfcbf_weighting_covers_the_whole_concatenation() -> None:
    train = random_interactions(4)
    m = ItemKNNCFCBF(top_k=5, icm_weight=0.5, feature_weighting="TF-IDF").fit(train)
    joint = sp.hstack([train.item_features * 0.5, train.matrix.T], format="csr")
    w = compute_similarity(tfidf(joint).T, top_k=5)
    np.testing.assert_allclose(m.W_.toarray(), w.toarray(), rtol=1e-6)
    np.testing.assert_allclose(
        m.score(np.arange(4)), (train.matrix[:4] @ w).toarray(), rtol=1e-5, atol=1e-7
    )


# ----------------------------------------------------------------------------- contract
@pytest.mark.parametrize("cls", ALL)
def test_constructor_does_no_work_and_fitted_state_has_underscores(cls: type) -> None:
    m = cls(similarity="no-such", feature_weighting="nope", top_k=-3)
    assert set(vars(m)) == set(m.get_params())
    with pytest.raises(ValueError, match="unknown similarity 'no-such'"):
        m.fit(random_interactions(5))
    m = cls(top_k=4)
    before = set(vars(m))
    m.fit(random_interactions(5))
    added = set(vars(m)) - before
    assert added and all(a.endswith("_") for a in added)
    assert m.score(np.array([0, 1, 2])).shape == (3, 30)
    assert m.score(np.array([], dtype=np.int64)).shape == (0, 30)


@pytest.mark.parametrize("cls", ALL)
def test_errors_name_the_problem(cls: type) -> None:
    with pytest.raises(ValueError, match="unknown feature_weighting 'tfidf'"):
        cls(feature_weighting="tfidf").fit(random_interactions(6))
    m = cls()
    with pytest.raises(RuntimeError, match="not fitted"):
        m.score(np.array([0]))
    m.fit(random_interactions(6))
    with pytest.raises(ValueError, match=r"user ids must lie in \[0, 40\)"):
        m.score(np.array([40]))
    with pytest.raises(ValueError, match="integer ids"):
        m.score(np.array([0.5]))
    if cls.supports_profiles:
        with pytest.raises(ValueError, match=r"expected \(n, 30\)"):
            m.score_profiles(sp.csr_matrix((2, 29)))


def test_every_similarity_fits() -> None:
    train = random_interactions(7)
    for s in ("cosine", "adjusted", "pearson", "asymmetric", "jaccard", "dice", "tversky"):
        m = ItemKNNCF(top_k=5, similarity=s).fit(train)
        assert m.W_.shape == (30, 30)
        assert np.all(np.diff(m.W_.tocsc().indptr) <= 5)


def test_registry_names_resolve() -> None:
    for name, cls in (
        ("ItemKNNCF", ItemKNNCF),
        ("UserKNNCF", UserKNNCF),
        ("ItemKNNCBF", ItemKNNCBF),
        ("ItemKNNCFCBF", ItemKNNCFCBF),
    ):
        assert get_model_class(name) is cls
        assert cls.name == name


# ----------------------------------------------------------------------------- search spaces
def test_search_spaces_follow_the_paper() -> None:
    cos = ItemKNNCF.search_space_for("cosine")
    assert cos["top_k"] == {"type": "int", "low": 5, "high": 800}
    assert cos["shrink"] == {"type": "int", "low": 0, "high": 1000}
    assert cos["normalize"]["choices"] == [True, False]
    assert set(cos["feature_weighting"]["choices"]) == {"none", "BM25", "TF-IDF"}
    assert cos["similarity"]["choices"] == ["cosine"]
    assert ItemKNNCF.search_space == cos

    asym = UserKNNCF.search_space_for("asymmetric")
    assert asym["normalize"]["choices"] == [True]
    assert asym["asymmetric_alpha"] == {"type": "float", "low": 0.0, "high": 2.0, "log": False}
    assert "feature_weighting" in asym

    tv = ItemKNNCF.search_space_for("tversky")
    assert tv["normalize"]["choices"] == [True]
    assert {"tversky_alpha", "tversky_beta"} <= set(tv)
    for s in ("jaccard", "dice", "tversky"):
        assert "feature_weighting" not in ItemKNNCF.search_space_for(s)

    assert "feature_weighting" not in ItemKNNCBF.search_space_for("cosine", allow_weighting=False)
    hyb = ItemKNNCFCBF.search_space_for("cosine")
    assert hyb["icm_weight"] == {"type": "float", "low": 1e-2, "high": 1e2, "log": True}
    assert ItemKNNCFCBF.search_space["icm_weight"]["log"] is True
    assert set(SEARCHED_SIMILARITIES) == {"cosine", "jaccard", "asymmetric", "dice", "tversky"}
    with pytest.raises(ValueError, match="unknown similarity"):
        knn_search_space("euclidean")


@pytest.mark.parametrize("similarity", SEARCHED_SIMILARITIES)
def test_every_point_of_a_space_is_a_valid_model(similarity: str) -> None:
    space = ItemKNNCFCBF.search_space_for(similarity)
    params = {}
    for name, spec in space.items():
        params[name] = spec["choices"][-1] if spec["type"] == "categorical" else spec["high"]
    params["top_k"] = 5
    m = ItemKNNCFCBF(**params).fit(random_interactions(8))
    assert np.isfinite(m.score(np.arange(3))).all()
