"""Every metric and variant on small cases computed by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_helpers import fixed_scores, interactions

from recforge.evaluation import ALL_METRICS, Evaluator
from recforge.evaluation.metrics import gini

INF = np.inf
L2 = math.log2

# 6 items. User 0: test {1, 4, 5}, item 0 excluded; scores strictly decreasing with the index,
# so the list is 1, 2, 3, 4, 5.  User 1: test {3}, items 0 and 1 scored -inf, the rest tied at 0,
# so the ties go by index: 2, 3, 4, 5.  User 2: test {0}, only items 5 (2.0) and 0 (1.0) are
# finite, so the list is 5, 0 and |L| = 2 < k.  User 3: no test item, not evaluated.
SCORES = np.array(
    [
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.1],
        [-INF, -INF, 0.0, 0.0, 0.0, 0.0],
        [1.0, -INF, -INF, -INF, -INF, 2.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ],
    dtype=np.float32,
)
TEST = [[1, 4, 5], [3], [0], []]
EXCLUDE = [[0], [], [], []]


@pytest.fixture(scope="module", params=["numba", "numpy"])
def result(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    ev = Evaluator(
        interactions(TEST, 6),
        cutoffs=[2, 4],
        metrics=[m for m in ALL_METRICS if m not in ("NOVELTY", "AVG_POP")],
        exclude=interactions(EXCLUDE, 6),
        backend=request.param,
    )
    return ev.evaluate(fixed_scores(SCORES))  # type: ignore[arg-type]


def test_evaluated_users(result) -> None:  # type: ignore[no-untyped-def]
    assert result.users.tolist() == [0, 1, 2]
    assert result.meta["n_users"] == 3


def test_user0(result) -> None:  # type: ignore[no-untyped-def]
    v = {k: a[0] for k, a in result.per_user.items()}
    idcg3 = 1 + 1 / L2(3) + 1 / L2(4)  # = 2.130930
    # k=2: L = [1, 2], rel = [1, 0]
    assert v["HR@2"] == 1.0
    assert v["HIT_RATE@2"] == 1.0
    assert v["PRECISION@2"] == pytest.approx(1 / 2)
    assert v["RECALL@2"] == pytest.approx(1 / 3)
    assert v["RECALL_MIN@2"] == pytest.approx(1 / 2)  # 1 / min(2, 3)
    assert v["NDCG@2"] == pytest.approx(1 / idcg3)  # 0.469278 (untruncated IDCG)
    assert v["NDCG_TRUNC@2"] == pytest.approx(1 / (1 + 1 / L2(3)))  # 0.613147
    assert v["MAP@2"] == pytest.approx((1 / 1) / 2)  # P@1 * rel_1 / min(2, 3)
    assert v["MRR@2"] == 1.0
    # k=4: L = [1, 2, 3, 4], rel = [1, 0, 0, 1]
    assert v["HR@4"] == 2.0
    assert v["PRECISION@4"] == pytest.approx(2 / 4)
    assert v["RECALL@4"] == pytest.approx(2 / 3)
    assert v["RECALL_MIN@4"] == pytest.approx(2 / 3)
    dcg = 1 + 1 / L2(5)  # = 1.430677
    assert v["NDCG@4"] == pytest.approx(dcg / idcg3)  # 0.671385
    assert v["NDCG_TRUNC@4"] == pytest.approx(dcg / idcg3)  # min(4, 3) = 3: same IDCG
    assert v["MAP@4"] == pytest.approx((1 / 1 + 2 / 4) / 3)  # (P@1 + P@4) / min(4, 3) = 0.5


def test_user1_ties_and_dropped_items(result) -> None:  # type: ignore[no-untyped-def]
    v = {k: a[1] for k, a in result.per_user.items()}
    # L@4 = [2, 3, 4, 5] (ties by index), rel = [0, 1, 0, 0]; L@2 = [2, 3]
    assert v["HR@2"] == 1.0
    assert v["PRECISION@2"] == pytest.approx(1 / 2)
    assert v["RECALL@2"] == 1.0
    assert v["NDCG@2"] == pytest.approx(1 / L2(3))  # IDCG over |T| = 1 item is 1
    assert v["MAP@2"] == pytest.approx((1 / 2) / 1)  # P@2 / min(2, 1)
    assert v["MRR@2"] == pytest.approx(1 / 2)
    assert v["PRECISION@4"] == pytest.approx(1 / 4)


def test_user2_short_list_precision_uses_list_length(result) -> None:  # type: ignore[no-untyped-def]
    v = {k: a[2] for k, a in result.per_user.items()}
    # Only 2 finite items: L@4 = [5, 0], |L| = 2, rel = [0, 1]
    assert v["PRECISION@4"] == pytest.approx(1 / 2)  # hits / |L|, not hits / k
    assert v["PRECISION@2"] == pytest.approx(1 / 2)
    assert v["HR@4"] == 1.0
    assert v["RECALL@4"] == 1.0
    assert v["MRR@4"] == pytest.approx(1 / 2)
    assert v["NDCG@4"] == pytest.approx(1 / L2(3))
    assert v["MAP@4"] == pytest.approx((1 / 2) / 1)  # P@2 * rel_2 / min(4, 1)


def test_summary_is_mean_over_users(result) -> None:  # type: ignore[no-untyped-def]
    # HR@4 per user: 2, 1, 1 -> mean 4/3
    assert result.summary["HR@4"] == pytest.approx(4 / 3)
    for key, arr in result.per_user.items():
        assert result.summary[key] == pytest.approx(arr.mean())


def test_beyond_accuracy_in_summary(result) -> None:  # type: ignore[no-untyped-def]
    # @2 lists: [1, 2], [2, 3], [5, 0] -> items {0, 1, 2, 3, 5} of 6
    assert result.summary["COVERAGE@2"] == pytest.approx(5 / 6)
    # counts over the 6 items: [1, 1, 2, 1, 0, 1] sorted [0, 1, 1, 1, 1, 2], total 6, n = 6;
    # sum (2i - 7) c_i = -3 - 1 + 1 + 3 + 5*2 = 10 -> G = 10 / 36
    assert result.summary["GINI@2"] == pytest.approx(10 / 36)
    assert "COVERAGE@2" not in result.per_user


def test_novelty_and_avg_pop() -> None:
    # Two users, k = 2: lists [0, 1] and [0, 2] (scores decrease with the index).
    test = interactions([[3], [3]], 4)
    scores = np.tile(np.array([4.0, 3.0, 2.0, 1.0], np.float32), (2, 1))
    scores[1, 1] = -INF
    pop = np.array([4, 2, 1, 0])
    ev = Evaluator(
        test,
        cutoffs=[2],
        metrics=["COVERAGE", "GINI", "NOVELTY", "AVG_POP", "HR"],
        item_popularity=pop,
        n_popularity_users=4,
    )
    res = ev.evaluate(fixed_scores(scores))  # type: ignore[arg-type]
    s = res.summary
    assert s["COVERAGE@2"] == pytest.approx(3 / 4)
    # counts [2, 1, 1, 0] sorted [0, 1, 1, 2]: (-3*0 - 1*1 + 1*1 + 3*2) / (4 * 4) = 0.375
    assert s["GINI@2"] == pytest.approx(0.375)
    # self-information -log2(max(pop, 1) / 4): item0 0, item1 1, item2 2 -> (0 + 1 + 0 + 2) / 4
    assert s["NOVELTY@2"] == pytest.approx(0.75)
    assert s["AVG_POP@2"] == pytest.approx((4 + 2 + 4 + 1) / 4)


def test_gini_extremes() -> None:
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 8])) == pytest.approx(3 / 4)  # (n - 1) / n
    assert np.isnan(gini(np.zeros(3)))  # undefined: nothing was recommended


def test_hit_rate_is_indicator_hr_is_count() -> None:
    # One user with 3 test items all in the top 3: HR@3 = 3 (count), HIT_RATE@3 = 1.
    ev = Evaluator(interactions([[0, 1, 2]], 5), cutoffs=[3], metrics=["HR", "HIT_RATE"])
    s = np.array([[5, 4, 3, 2, 1]], np.float32)
    res = ev.evaluate(fixed_scores(s))  # type: ignore[arg-type]
    assert res.summary == {"HR@3": 3.0, "HIT_RATE@3": 1.0}


def test_cutoff_larger_than_item_count() -> None:
    # 3 items, k = 10: the list holds all 3; PRECISION uses |L| = 3, RECALL_MIN min(10, 2) = 2.
    ev = Evaluator(
        interactions([[0, 2]], 3), cutoffs=[10], metrics=["PRECISION", "RECALL_MIN", "MAP"]
    )
    res = ev.evaluate(fixed_scores(np.array([[1, 2, 3]], np.float32)))  # type: ignore[arg-type]
    # L = [2, 1, 0], rel = [1, 0, 1]
    assert res.summary["PRECISION@10"] == pytest.approx(2 / 3)
    assert res.summary["RECALL_MIN@10"] == pytest.approx(1.0)
    assert res.summary["MAP@10"] == pytest.approx((1 + 2 / 3) / 2)
