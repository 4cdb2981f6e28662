"""numpy_legacy: the classic numpy argpartition/argsort order and the paper-ties options."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge._kernels.legacy import legacy_argpartition, legacy_argsort, legacy_top
from recforge.data.interactions import Interactions
from recforge.evaluation.evaluator import Evaluator
from recforge.models.knn import ItemKNNCBF, UserKNNCF
from recforge.models.similarity import compute_similarity

# Reference outputs recorded with numpy 1.23.5 (classic introselect / introsort) on -A1 / -A2.
A1 = [0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 2, 0, 2, 0, 0, 0, 0, 2, 2, 0, 0, 1, 0, 0, 1, 0, 1, 0, 2, 0,
      1, 2, 2, 0, 2, 1, 0, 0, 1, 0]  # fmt: skip
A1_PART_9 = [9, 12, 31, 18, 17, 32, 34, 10, 28, 5, 2, 1, 8, 38, 21, 24, 30, 4, 7, 33, 37, 35,
             19, 29, 36, 26, 0, 27, 25, 23, 22, 20, 16, 15, 14, 13, 11, 6, 3, 39]  # fmt: skip
A1_SORT = [34, 2, 28, 5, 8, 9, 10, 18, 12, 17, 31, 32, 24, 21, 30, 38, 26, 35, 7, 4, 1, 27, 36,
           29, 37, 33, 0, 19, 23, 22, 20, 16, 15, 14, 13, 11, 6, 3, 25, 39]  # fmt: skip
A2 = [0, 5, 4, 4, 4, 2, 1, 3, 0, 5, 4, 0, 5, 4, 3, 1, 3, 3, 3, 1, 3, 3, 4, 3, 1]
A2_PART_4 = [12, 1, 10, 9, 13, 22, 20, 14, 4, 3, 2, 16, 18, 21, 7, 23, 5, 17, 24, 19, 15, 11,
             8, 6, 0]  # fmt: skip
A2_SORT = [12, 9, 1, 2, 13, 22, 10, 4, 3, 7, 21, 17, 20, 23, 14, 16, 18, 5, 19, 24, 6, 15, 11,
           8, 0]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "dtype", "kth", "part", "order"),
    [(A1, np.float64, 9, A1_PART_9, A1_SORT), (A2, np.float32, 4, A2_PART_4, A2_SORT)],
)
def test_matches_numpy_1_23_on_ties(values, dtype, kth, part, order) -> None:
    neg = -np.asarray(values, dtype=dtype)
    assert legacy_argpartition(neg, kth).tolist() == part
    assert legacy_argsort(neg).tolist() == order


@pytest.mark.parametrize("n", [1, 2, 5, 16, 17, 100, 3001])
def test_partition_and_sort_are_valid(n: int) -> None:
    rng = np.random.default_rng(n)
    for v in (rng.integers(0, 4, n).astype(np.float64), rng.random(n).astype(np.float32)):
        order = legacy_argsort(v)
        assert sorted(order.tolist()) == list(range(n))
        assert np.all(np.diff(v[order]) >= 0)
        for kth in {0, n // 2, n - 1}:
            p = legacy_argpartition(v, kth)
            assert sorted(p.tolist()) == list(range(n))
            assert np.all(v[p[:kth]] <= v[p[kth]]) and np.all(v[p[kth + 1 :]] >= v[p[kth]])


def test_legacy_top_without_ties_is_the_plain_top() -> None:
    v = np.random.default_rng(0).permutation(50).astype(np.float64)
    assert legacy_top(v, 7).tolist() == np.argsort(-v)[:7].tolist()
    assert legacy_top(v, 7, kth=7).tolist() == np.argsort(-v)[:7].tolist()


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        legacy_argsort(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="kth"):
        legacy_argpartition(np.zeros(3), 3)
    with pytest.raises(ValueError, match="1-d"):
        legacy_argsort(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="tie_rule"):
        compute_similarity(sp.eye(3, format="csr"), tie_rule="random")


def _interactions(m: np.ndarray, icm: np.ndarray | None = None) -> Interactions:
    r, c = np.nonzero(m)
    x = Interactions.from_arrays(r, c, shape=m.shape)
    if icm is not None:
        from dataclasses import replace

        x = replace(x, item_features=sp.csr_matrix(icm))
    return x


def test_similarity_legacy_equals_default_without_ties_and_differs_on_ties() -> None:
    rng = np.random.default_rng(3)
    x = sp.csr_matrix(rng.random((30, 12)) * (rng.random((30, 12)) < 0.3))
    for route in (x, sp.csr_matrix(rng.random((30, 12)) + 0.1)):  # sparse and dense routes
        a = compute_similarity(route, top_k=4)
        b = compute_similarity(route, top_k=4, tie_rule="numpy-legacy")
        assert (a != b).nnz == 0
    # 40 identical columns: every neighbour ties; the legacy order keeps other neighbours than
    # lower-index-first (numpy's min-scan for kth < 3 would agree, so use top_k=6), with the
    # same number and values.
    same = sp.csr_matrix(np.ones((3, 40)))
    a = compute_similarity(same, top_k=6)
    b = compute_similarity(same, top_k=6, tie_rule="numpy-legacy")
    assert a.nnz == b.nnz == 240
    assert np.allclose(a.data, b.data[0]) and (a != b).nnz > 0
    assert np.all(b.diagonal() == 0)


def test_knn_and_evaluator_accept_the_option() -> None:
    rng = np.random.default_rng(5)
    train = (rng.random((20, 15)) < 0.3).astype(np.float32)
    test = ((rng.random((20, 15)) < 0.3) & (train == 0)).astype(np.float32)
    icm = np.ones((15, 2))
    tr = _interactions(train, icm)
    te = _interactions(test)
    for model in (UserKNNCF(top_k=5, normalize=False, tie_rule="numpy-legacy"),
                  ItemKNNCBF(top_k=3, tie_rule="numpy-legacy")):  # fmt: skip
        model.fit(tr)
        res = {
            rule: Evaluator(te, cutoffs=[5], metrics=["RECALL"], exclude=tr, tie_rule=rule)
            .evaluate(model)
            for rule in ("lower-index", "numpy-legacy")
        }
        assert res["numpy-legacy"].meta["tie_rule"] != res["lower-index"].meta["tie_rule"]
        assert 0 <= res["numpy-legacy"].summary["RECALL@5"] <= 1
    with pytest.raises(ValueError, match="tie_rule"):
        Evaluator(te, cutoffs=[5], tie_rule="random")


def test_evaluator_legacy_equals_default_without_ties() -> None:
    rng = np.random.default_rng(9)
    train = (rng.random((25, 40)) < 0.2).astype(np.float32)
    test = ((rng.random((25, 40)) < 0.2) & (train == 0)).astype(np.float32)
    tr, te = _interactions(train), _interactions(test)

    class Fixed(UserKNNCF):
        def _fit(self, train: Interactions) -> None:
            self.W_ = sp.eye(25, format="csr")

        def _score(self, users: np.ndarray) -> np.ndarray:
            return np.random.default_rng(1).random((25, 40)).astype(np.float32)[users]

    m = Fixed().fit(tr)
    a = Evaluator(te, cutoffs=[3, 10], metrics=["RECALL", "NDCG"], exclude=tr).evaluate(m)
    b = Evaluator(te, cutoffs=[3, 10], metrics=["RECALL", "NDCG"], exclude=tr,
                  tie_rule="numpy-legacy").evaluate(m)  # fmt: skip
    assert a.summary == pytest.approx(b.summary)
