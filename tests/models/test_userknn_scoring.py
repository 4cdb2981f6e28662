"""UserKNN CF with feature weighting: scored with the weighted matrix (the 2019 code) or with the
unweighted one (the journal version's behaviour), on hand-made data whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recforge.data.interactions import Interactions
from recforge.models.knn import UserKNNCF

# 8 items; u0 = {0, 1}; u1 = {0, 1, 2, 4, 5} (long profile); u2 = {0, 3} (short profile).
R = np.zeros((3, 8), dtype=np.float32)
R[0, [0, 1]] = 1
R[1, [0, 1, 2, 4, 5]] = 1
R[2, [0, 3]] = 1
N_ITEMS = 8


def _train() -> Interactions:
    users, items = np.nonzero(R)
    return Interactions.from_arrays(users, items, R[users, items], shape=R.shape)


def _cos(a: int, b: int) -> float:
    return float(R[a] @ R[b] / (np.linalg.norm(R[a]) * np.linalg.norm(R[b])))


def _tfidf_constant(u: int) -> float:
    # TF-IDF on the items' rows of R^T: a user is a term, df = its profile length, N = items.
    return math.log(N_ITEMS / (1 + R[u].sum()))


def test_the_two_scorings_differ_as_documented() -> None:
    weighted = UserKNNCF(top_k=10, feature_weighting="TF-IDF", n_threads=1).fit(_train())
    raw = UserKNNCF(top_k=10, feature_weighting="TF-IDF", score_with="unweighted",
                    n_threads=1).fit(_train())
    # Binary data: TF-IDF scales each user by one constant, so the cosine is R's own, in both.
    for m in (weighted, raw):
        w = m.W_.toarray()
        assert w[0, 1] == pytest.approx(_cos(0, 1), rel=1e-4)
        assert w[0, 2] == pytest.approx(_cos(0, 2), rel=1e-4)
    # u0's unseen items 2 (only the long-profile u1 has it) and 3 (only the short u2).
    s_raw = raw.score(np.array([0]))[0]
    s_w = weighted.score(np.array([0]))[0]
    assert s_raw[2] == pytest.approx(_cos(0, 1), rel=1e-4)
    assert s_raw[3] == pytest.approx(_cos(0, 2), rel=1e-4)
    assert s_w[2] == pytest.approx(_cos(0, 1) * _tfidf_constant(1), rel=1e-4)
    assert s_w[3] == pytest.approx(_cos(0, 2) * _tfidf_constant(2), rel=1e-4)
    # ... so the rankings differ: unweighted puts item 2 first, weighted item 3.
    assert s_raw[2] > s_raw[3] and s_w[3] > s_w[2]
    # "unweighted" with TF-IDF on binary data scores exactly like no weighting at all.
    plain = UserKNNCF(top_k=10, n_threads=1).fit(_train()).score(np.arange(3))
    np.testing.assert_allclose(raw.score(np.arange(3)), plain, rtol=1e-4, atol=1e-6)


def test_bm25_keeps_the_weighted_similarity_and_swaps_only_the_scored_matrix() -> None:
    weighted = UserKNNCF(top_k=10, feature_weighting="BM25", n_threads=1).fit(_train())
    raw = UserKNNCF(top_k=10, feature_weighting="BM25", score_with="unweighted",
                    n_threads=1).fit(_train())
    np.testing.assert_array_equal(weighted.W_.toarray(), raw.W_.toarray())
    np.testing.assert_array_equal(raw.train_matrix_.toarray(), R)
    assert not np.allclose(weighted.train_matrix_.toarray(), R)
    w = raw.W_.toarray()
    np.testing.assert_allclose(raw.score(np.arange(3)), w @ R, rtol=1e-5, atol=1e-7)


def test_without_weighting_the_option_changes_nothing_and_bad_names_are_refused() -> None:
    a = UserKNNCF(top_k=10, n_threads=1).fit(_train()).score(np.arange(3))
    b = UserKNNCF(top_k=10, score_with="unweighted", n_threads=1).fit(_train()).score(
        np.arange(3))
    np.testing.assert_array_equal(a, b)
    assert UserKNNCF().score_with == "weighted"  # the 2019 code's behaviour stays the default
    with pytest.raises(ValueError, match="score_with 'raw'"):
        UserKNNCF(score_with="raw").fit(_train())
