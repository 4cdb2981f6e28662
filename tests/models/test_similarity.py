"""Similarity, top-K and feature weighting: hand-computed cases and a dense reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.models.similarity import (
    SIMILARITIES,
    compute_similarity,
    physical_cores,
    pinned_threads,
    sparse_dense_product,
    top_k_per_column,
    topk_product,
)
from recforge.models.weighting import bm25, tfidf, weight_new_columns

ENGINES = ["numba", "scipy"]
EPS = 1e-6

# 4 users x 3 items; columns c0=(2,1,0,1), c1=(1,0,1,2), c2=(0,3,1,0).
# dots: c0.c1=4, c0.c2=3, c1.c2=1; squared norms 6, 6, 10.
X = np.array([[2, 1, 0], [1, 0, 3], [0, 1, 1], [1, 2, 0]], dtype=np.float32)
# Binarised: sizes |0|=3, |1|=3, |2|=2; overlaps 0&1=2, 0&2=1, 1&2=1.


def sim(x: np.ndarray, engine: str, **kw: object) -> np.ndarray:
    w = compute_similarity(sp.csr_matrix(x), engine=engine, **kw)  # type: ignore[arg-type]
    assert isinstance(w, sp.csr_matrix) and w.dtype == np.float32
    assert w.has_canonical_format
    return w.toarray().astype(np.float64)


def sym(pairs: dict[tuple[int, int], float], n: int = 3) -> np.ndarray:
    out = np.zeros((n, n))
    for (i, j), v in pairs.items():
        out[i, j] = out[j, i] = v
    return out


# ----------------------------------------------------------------------------- hand-computed
@pytest.mark.parametrize("engine", ENGINES)
class TestHandComputed:
    def test_cosine(self, engine: str) -> None:
        expected = sym(
            {
                (0, 1): 4 / (6 + EPS),
                (0, 2): 3 / (math.sqrt(60) + EPS),
                (1, 2): 1 / (math.sqrt(60) + EPS),
            }
        )
        np.testing.assert_allclose(sim(X, engine), expected, rtol=1e-6)

    def test_cosine_shrink(self, engine: str) -> None:
        expected = sym(
            {
                (0, 1): 4 / (6 + 2 + EPS),
                (0, 2): 3 / (math.sqrt(60) + 2 + EPS),
                (1, 2): 1 / (math.sqrt(60) + 2 + EPS),
            }
        )
        np.testing.assert_allclose(sim(X, engine, shrink=2), expected, rtol=1e-6)

    def test_normalize_false_is_raw_dot_or_dot_over_shrink(self, engine: str) -> None:
        raw = sym({(0, 1): 4, (0, 2): 3, (1, 2): 1})
        np.testing.assert_allclose(sim(X, engine, normalize=False), raw, rtol=1e-6)
        np.testing.assert_allclose(sim(X, engine, normalize=False, shrink=4), raw / 4, rtol=1e-6)

    def test_asymmetric_alpha_weights_the_target_column(self, engine: str) -> None:
        # alpha=1: dot / |x_j|^2 with j the target (column of W).
        w = sim(X, engine, similarity="asymmetric", asymmetric_alpha=1.0)
        dot = np.array([[0, 4, 3], [4, 0, 1], [3, 1, 0]])
        sq = np.array([6, 6, 10])
        expected = dot / (sq[None, :] + EPS)
        np.testing.assert_allclose(w, expected, rtol=1e-6)
        # alpha=0: dot / |x_i|^2; normalize=False is ignored (always normalised).
        w0 = sim(X, engine, similarity="asymmetric", asymmetric_alpha=0.0, normalize=False)
        np.testing.assert_allclose(w0, expected.T, rtol=1e-6)
        # alpha=0.5 is the plain cosine.
        np.testing.assert_allclose(
            sim(X, engine, similarity="asymmetric", asymmetric_alpha=0.5),
            sim(X, engine),
            rtol=1e-6,
        )

    def test_jaccard(self, engine: str) -> None:
        expected = sym({(0, 1): 2 / (4 + EPS), (0, 2): 1 / (4 + EPS), (1, 2): 1 / (4 + EPS)})
        for normalize in (True, False):
            w = sim(X, engine, similarity="jaccard", normalize=normalize)
            np.testing.assert_allclose(w, expected, rtol=1e-6)
        w = sim(X, engine, similarity="jaccard", shrink=1)
        np.testing.assert_allclose(w[0, 1], 2 / (5 + EPS), rtol=1e-6)

    def test_dice_has_no_factor_two_unless_asked(self, engine: str) -> None:
        expected = sym({(0, 1): 2 / (6 + EPS), (0, 2): 1 / (5 + EPS), (1, 2): 1 / (5 + EPS)})
        np.testing.assert_allclose(sim(X, engine, similarity="dice"), expected, rtol=1e-6)
        np.testing.assert_allclose(
            sim(X, engine, similarity="dice", dice_factor_two=True), 2 * expected, rtol=1e-6
        )

    def test_tversky_alpha_on_target_beta_on_neighbour(self, engine: str) -> None:
        # alpha=1, beta=0: |i & j| / |j| (j = target column).
        w = sim(X, engine, similarity="tversky", tversky_alpha=1.0, tversky_beta=0.0)
        sizes = np.array([3, 3, 2])
        inter = np.array([[0, 2, 1], [2, 0, 1], [1, 1, 0]])
        np.testing.assert_allclose(w, inter / (sizes[None, :] + EPS), rtol=1e-6)
        w = sim(X, engine, similarity="tversky", tversky_alpha=0.0, tversky_beta=1.0)
        np.testing.assert_allclose(w, inter / (sizes[:, None] + EPS), rtol=1e-6)
        # alpha=beta=1 is jaccard; shrink adds to the denominator.
        np.testing.assert_allclose(
            sim(X, engine, similarity="tversky", shrink=1),
            sim(X, engine, similarity="jaccard", shrink=1),
            rtol=1e-6,
        )

    def test_pearson_centres_columns(self, engine: str) -> None:
        # Column means over non-zeros: 4/3, 4/3, 2.
        c01 = (-4 / 9) / (6 / 9 + EPS)
        c02 = (-1 / 3) / (math.sqrt(6 / 9 * 2) + EPS)
        c12 = (1 / 3) / (math.sqrt(6 / 9 * 2) + EPS)
        w = sim(X, engine, similarity="pearson")
        np.testing.assert_allclose(w, sym({(0, 1): c01, (0, 2): c02, (1, 2): c12}), rtol=1e-5)

    def test_adjusted_centres_rows(self, engine: str) -> None:
        # Row means over non-zeros: 1.5, 2, 1, 1.5
        # -> c0=(.5,-1,0,-.5), c1=(-.5,0,0,.5), c2=(0,1,0,0)
        c01 = -0.5 / (math.sqrt(1.5 * 0.5) + EPS)
        c02 = -1.0 / (math.sqrt(1.5) + EPS)
        w = sim(X, engine, similarity="adjusted")
        np.testing.assert_allclose(w, sym({(0, 1): c01, (0, 2): c02}), rtol=1e-5)
        assert w[1, 2] == 0 and w[2, 1] == 0

    def test_top_k_keeps_largest_per_target_column(self, engine: str) -> None:
        w = sim(X, engine, top_k=1)
        assert set(zip(*np.nonzero(w), strict=True)) == {(1, 0), (0, 1), (0, 2)}
        assert np.all((w != 0).sum(axis=0) <= 1)

    def test_ties_keep_the_lower_index(self, engine: str) -> None:
        # Column 0 ties with columns 1, 2 and 3 (identical); column 4 is unrelated.
        x = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 1]], dtype=np.float32)
        w = sim(x, engine, top_k=2)
        assert set(np.flatnonzero(w[:, 0])) == {1, 2}
        assert set(np.flatnonzero(w[:, 3])) == {0, 1}
        assert not w[:, 4].any()
        w = sim(x, engine, top_k=1, normalize=False)
        assert [int(np.flatnonzero(w[:, j])[0]) for j in range(4)] == [1, 0, 0, 0]

    def test_negative_similarities_only_when_zeros_cannot_fill_top_k(self, engine: str) -> None:
        # Pearson on X: column 0 has W[1,0]=-2/3, W[2,0]=-0.289 and its zero diagonal.
        w1 = sim(X, engine, similarity="pearson", top_k=1)
        assert not w1[:, 0].any()  # the zero diagonal wins and is dropped
        assert np.flatnonzero(w1[:, 2]).tolist() == [1]
        w2 = sim(X, engine, similarity="pearson", top_k=2)
        assert np.flatnonzero(w2[:, 0]).tolist() == [2]
        assert w2[2, 0] < 0
        w3 = sim(X, engine, similarity="pearson", top_k=3)
        assert np.flatnonzero(w3[:, 0]).tolist() == [1, 2]

    def test_diagonal_is_zero_and_empty_columns_are_empty(self, engine: str) -> None:
        x = np.array([[1, 0, 1], [1, 0, 0]], dtype=np.float32)
        for s in SIMILARITIES:
            w = sim(x, engine, similarity=s)
            assert not np.diag(w).any(), s
            assert not w[:, 1].any() and not w[1, :].any(), s


# ----------------------------------------------------------------------------- dense reference
def reference_similarity(
    x: np.ndarray,
    similarity: str = "cosine",
    shrink: float = 0.0,
    top_k: int = 100,
    normalize: bool = True,
    asymmetric_alpha: float = 0.5,
    tversky_alpha: float = 1.0,
    tversky_beta: float = 1.0,
) -> np.ndarray:
    """Slow, obvious implementation of the paper's formulas (one pair and one column at a time)."""
    x = np.array(x, dtype=np.float64)
    nz = x != 0
    if similarity == "adjusted":
        counts = nz.sum(1)
        means = np.where(counts > 0, x.sum(1) / np.maximum(counts, 1), 0.0)
        x = np.where(nz, x - means[:, None], 0.0)
    elif similarity == "pearson":
        counts = nz.sum(0)
        means = np.where(counts > 0, x.sum(0) / np.maximum(counts, 1), 0.0)
        x = np.where(nz, x - means[None, :], 0.0)
    elif similarity in ("jaccard", "dice", "tversky"):
        x = nz.astype(np.float64)
    n = x.shape[1]
    eps = shrink + 1e-6
    sq = (x**2).sum(0)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            v = float(x[:, i] @ x[:, j])
            if v == 0:
                continue
            if similarity in ("jaccard",):
                s[i, j] = v / (sq[i] + sq[j] - v + eps)
            elif similarity == "dice":
                s[i, j] = v / (sq[j] + sq[i] + eps)
            elif similarity == "tversky":
                d = v + tversky_alpha * (sq[j] - v) + tversky_beta * (sq[i] - v) + eps
                s[i, j] = v / d
            elif similarity == "asymmetric":
                a = asymmetric_alpha
                s[i, j] = v / (np.sqrt(sq[j]) ** (2 * a) * np.sqrt(sq[i]) ** (2 * (1 - a)) + eps)
            elif normalize:
                s[i, j] = v / (np.sqrt(sq[j]) * np.sqrt(sq[i]) + eps)
            else:
                s[i, j] = v / shrink if shrink > 0 else v
    w = np.zeros((n, n))
    for j in range(n):
        order = sorted(range(n), key=lambda i: (-s[i, j], i))[: min(top_k, n)]
        for i in order:
            w[i, j] = s[i, j]
    return w


def random_matrix(n_rows: int, n_cols: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=density, random_state=rng, format="csr")
    m.data = rng.integers(1, 6, m.nnz).astype(np.float64) * rng.uniform(0.5, 1.5, m.nnz)
    return sp.csr_matrix(m, dtype=np.float32)


CASES = [
    {"similarity": "cosine", "top_k": 7},
    {"similarity": "cosine", "top_k": 3, "shrink": 5},
    {"similarity": "cosine", "top_k": 10, "normalize": False},
    {"similarity": "cosine", "top_k": 4, "normalize": False, "shrink": 3},
    {"similarity": "adjusted", "top_k": 6, "shrink": 1},
    {"similarity": "pearson", "top_k": 9},
    {"similarity": "asymmetric", "top_k": 5, "asymmetric_alpha": 0.2, "shrink": 2},
    {"similarity": "asymmetric", "top_k": 40, "asymmetric_alpha": 1.7},
    {"similarity": "jaccard", "top_k": 8, "shrink": 2},
    {"similarity": "dice", "top_k": 12},
    {"similarity": "tversky", "top_k": 6, "tversky_alpha": 0.3, "tversky_beta": 1.6},
    {"similarity": "tversky", "top_k": 100, "tversky_alpha": 1.9, "tversky_beta": 0.0},
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_matches_dense_reference_with_tiny_blocks(case: dict, engine: str) -> None:
    x = random_matrix(50, 40, 0.15, seed=len(str(case)))
    expected = reference_similarity(x.toarray(), **case)
    # 5 kB forces several blocks of target columns in both engines.
    for budget in (0.005, 64.0):
        got = compute_similarity(x, engine=engine, memory_budget_mb=budget, **case).toarray()
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-7)
        np.testing.assert_array_equal(got != 0, expected != 0)


def test_engines_agree_on_weighted_data_with_ties() -> None:
    x = random_matrix(60, 30, 0.3, seed=7)
    x.data = np.round(x.data)  # integer data: many exact ties for normalize=False
    for case in ({"normalize": False, "top_k": 4}, {"similarity": "jaccard", "top_k": 3}):
        a = compute_similarity(x, engine="numba", **case)  # type: ignore[arg-type]
        b = compute_similarity(x, engine="scipy", memory_budget_mb=0.01, **case)  # type: ignore[arg-type]
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6)


def test_user_similarity_is_item_similarity_of_the_transpose() -> None:
    r = random_matrix(30, 20, 0.2, seed=3)
    np.testing.assert_allclose(
        compute_similarity(r.T, top_k=5).toarray(),
        reference_similarity(r.toarray().T, top_k=5),
        rtol=2e-5,
    )


def test_input_is_not_modified_and_dense_input_works() -> None:
    x = random_matrix(20, 10, 0.3, seed=1)
    before = x.copy()
    for s in ("adjusted", "pearson", "jaccard"):
        compute_similarity(x, similarity=s)
    assert (x != before).nnz == 0 and np.array_equal(x.data, before.data)
    np.testing.assert_allclose(
        compute_similarity(x.toarray(), top_k=3).toarray(), compute_similarity(x, top_k=3).toarray()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"similarity": "euclidean"}, "unknown similarity 'euclidean'"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"top_k": 2.5}, "top_k must be an integer >= 1"),
        ({"shrink": -1}, "shrink must be a finite number >= 0"),
        ({"tversky_beta": -0.1}, "tversky_beta must be a finite number >= 0"),
        ({"engine": "gpu"}, "engine must be"),
        ({"memory_budget_mb": 0}, "memory_budget_mb must be > 0"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_similarity(sp.csr_matrix(X), **kwargs)


def test_bad_matrix_raises() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        compute_similarity(sp.csr_matrix(np.array([[1.0, np.nan]])))
    with pytest.raises(ValueError, match="2-d"):
        compute_similarity(np.ones(3))


def test_top_k_larger_than_n_and_empty_matrix() -> None:
    assert compute_similarity(sp.csr_matrix((5, 0)), top_k=3).shape == (0, 0)
    w = compute_similarity(sp.csr_matrix(X), top_k=1000)
    assert w.nnz == 6


# ----------------------------------------------------------------------------- helpers
def test_topk_product_row_wise_with_column_weights() -> None:
    a = sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]]))
    b = sp.csr_matrix(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 2.0]]))
    # a @ b = [[3, 1, 5], [1, 0, 2]]; column weights (1, 4, 0.5) -> [[3, 4, 2.5], [1, 0, 1]]
    for engine in ENGINES:
        out = topk_product(a, b, 2, col_weight=np.array([1, 4, 0.5]), engine=engine).toarray()
        np.testing.assert_allclose(out, [[3, 4, 0], [1, 0, 1]])


def test_sparse_dense_product_matches_scipy() -> None:
    a = random_matrix(17, 30, 0.2, seed=11)
    b = random_matrix(30, 25, 0.3, seed=12)
    out = sparse_dense_product(a, b, n_threads=2)
    assert out.dtype == np.float32 and out.flags.c_contiguous and out.shape == (17, 25)
    np.testing.assert_allclose(out, (a @ b).toarray(), rtol=1e-5, atol=1e-6)
    assert not sparse_dense_product(sp.csr_matrix((3, 30)), b).any()
    with pytest.raises(ValueError, match="inner dimensions"):
        sparse_dense_product(b, b)


def test_top_k_per_column_ties_and_zeros() -> None:
    w = sp.csr_matrix(np.array([[0, 2, 1], [3, 2, 0], [3, 5, 0], [0, 2, 0]], dtype=np.float32))
    out = top_k_per_column(w, 2).toarray()
    np.testing.assert_array_equal(out, [[0, 2, 1], [3, 0, 0], [3, 5, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="k must be"):
        top_k_per_column(w, 0)


def test_threads_are_pinned_and_restored() -> None:
    import numba

    assert physical_cores() >= 1
    before = numba.get_num_threads()
    with pinned_threads(1) as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads"), pinned_threads(0):
        pass


# ----------------------------------------------------------------------------- weighting
# 5 rows ("documents") x 3 columns; df = (2, 2, 3); N = 5.
M = np.array([[1, 0, 2], [0, 0, 1], [4, 1, 0], [0, 0, 1], [0, 1, 0]], dtype=np.float32)
IDF = [math.log(5 / 3), math.log(5 / 3), math.log(5 / 4)]


def test_tfidf_by_hand() -> None:
    out = tfidf(sp.csr_matrix(M))
    assert out.dtype == np.float32 and out.format == "csr"
    expected = np.zeros((5, 3))
    for (r, c), x in np.ndenumerate(M):
        if x:
            expected[r, c] = math.sqrt(x) * IDF[c]
    np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6)
    assert expected[2, 0] == pytest.approx(2 * math.log(5 / 3))


def test_bm25_by_hand() -> None:
    out = bm25(sp.csr_matrix(M))
    row_sums = [3, 1, 5, 1, 1]
    mean = 11 / 5
    expected = np.zeros((5, 3))
    for (r, c), x in np.ndenumerate(M):
        if x:
            length = 0.25 + 0.75 * row_sums[r] / mean
            expected[r, c] = x * 2.2 / (1.2 * length + x) * IDF[c]
    np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6)
    out2 = bm25(sp.csr_matrix(M), k1=2.0, b=0.0)
    assert out2[2, 0] == pytest.approx(4 * 3.0 / (2.0 + 4) * IDF[0], rel=1e-6)


def test_weighting_errors_and_idf_sign() -> None:
    with pytest.raises(ValueError, match="negative"):
        tfidf(sp.csr_matrix(np.array([[1.0, -1.0]])))
    with pytest.raises(ValueError, match="b must lie"):
        bm25(sp.csr_matrix(M), b=2.0)
    # A column present in every row gets log(N / (N + 1)) < 0, as in the paper's code.
    full = tfidf(sp.csr_matrix(np.ones((2, 1))))
    np.testing.assert_allclose(full.toarray(), [[math.log(2 / 3)], [math.log(2 / 3)]], rtol=1e-6)


@pytest.mark.parametrize("method", ["TF-IDF", "BM25"])
def test_new_columns_reproduce_original_weights(method: str) -> None:
    m = random_matrix(12, 8, 0.4, seed=5)
    weighted = (tfidf if method == "TF-IDF" else bm25)(m)
    row_sums = np.asarray(m.sum(axis=1)).ravel()
    again = weight_new_columns(m.T, method, n_rows=12, row_sums=row_sums)
    np.testing.assert_allclose(again.toarray(), weighted.T.toarray(), rtol=1e-6)
    with pytest.raises(ValueError, match="method"):
        weight_new_columns(m.T, "none", n_rows=12)
    with pytest.raises(ValueError, match="entries, expected 11"):
        weight_new_columns(m.T, method, n_rows=11, row_sums=row_sums)
