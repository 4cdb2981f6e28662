"""Every accuracy metric on hand-computed short lists: |L| < k and |L| < |T_u|.

Definitions (recforge.evaluation.metrics docstring): PRECISION = hits@k / |L|, RECALL =
hits@k / |T_u|, RECALL_MIN = hits@k / min(k, |T_u|), NDCG over the untruncated IDCG of |T_u|
items, NDCG_TRUNC over the IDCG of min(k, |T_u|) items, MAP = sum_i P@i rel_i / min(k, |T_u|)
(NOT min(|L|, |T_u|), the 2019 code's denominator: the two differ exactly in these cases),
MRR = 1 / first hit position. A list gets short when masking leaves fewer than k items
(scores of -inf, or a small candidate set).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_helpers import fixed_scores, interactions

from recforge.evaluation import Evaluator
from recforge.evaluation.metrics import ACCURACY_METRICS, accuracy_metrics

INF = np.inf
IDCG3 = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # |T_u| = 3
D2 = 1 / math.log2(3)  # discount of position 2

# 6 items, every user's test set is {0, 2, 4} (|T_u| = 3), k in {1, 4}.
# user 0: only items 0 (3.0) and 3 (2.0) finite -> L@4 = [0, 3], rel = [1, 0], |L| = 2
# user 1: only items 3 (3.0) and 0 (2.0) finite -> L@4 = [3, 0], rel = [0, 1], |L| = 2
# user 2: only item 2 finite                   -> L@4 = [2],    rel = [1],    |L| = 1
SCORES = np.array(
    [
        [3.0, -INF, -INF, 2.0, -INF, -INF],
        [2.0, -INF, -INF, 3.0, -INF, -INF],
        [-INF, -INF, 1.0, -INF, -INF, -INF],
    ],
    dtype=np.float32,
)
TEST = [[0, 2, 4]] * 3

EXPECTED = {
    0: {
        "HR@4": 1, "HIT_RATE@4": 1, "PRECISION@4": 1 / 2, "RECALL@4": 1 / 3,
        "RECALL_MIN@4": 1 / 3, "NDCG@4": 1 / IDCG3, "NDCG_TRUNC@4": 1 / IDCG3,
        "MAP@4": (1 / 1) / 3,  # the 2019 code: 1 / min(|L|=2, 3) = 1/2
        "MRR@4": 1,
        "HR@1": 1, "HIT_RATE@1": 1, "PRECISION@1": 1, "RECALL@1": 1 / 3, "RECALL_MIN@1": 1,
        "NDCG@1": 1 / IDCG3, "NDCG_TRUNC@1": 1, "MAP@1": 1, "MRR@1": 1,
    },
    1: {
        "HR@4": 1, "HIT_RATE@4": 1, "PRECISION@4": 1 / 2, "RECALL@4": 1 / 3,
        "RECALL_MIN@4": 1 / 3, "NDCG@4": D2 / IDCG3, "NDCG_TRUNC@4": D2 / IDCG3,
        "MAP@4": (1 / 2) / 3,  # P@2 = 1/2 at the hit; the 2019 code: (1/2) / 2
        "MRR@4": 1 / 2,
        "HR@1": 0, "HIT_RATE@1": 0, "PRECISION@1": 0, "RECALL@1": 0, "RECALL_MIN@1": 0,
        "NDCG@1": 0, "NDCG_TRUNC@1": 0, "MAP@1": 0, "MRR@1": 0,
    },
    2: {
        "HR@4": 1, "HIT_RATE@4": 1, "PRECISION@4": 1, "RECALL@4": 1 / 3,
        "RECALL_MIN@4": 1 / 3, "NDCG@4": 1 / IDCG3, "NDCG_TRUNC@4": 1 / IDCG3,
        "MAP@4": 1 / 3,  # the 2019 code: 1 / min(1, 3) = 1
        "MRR@4": 1,
        "HR@1": 1, "HIT_RATE@1": 1, "PRECISION@1": 1, "RECALL@1": 1 / 3, "RECALL_MIN@1": 1,
        "NDCG@1": 1 / IDCG3, "NDCG_TRUNC@1": 1, "MAP@1": 1, "MRR@1": 1,
    },
}


@pytest.fixture(scope="module", params=["numba", "numpy"])
def result(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    ev = Evaluator(interactions(TEST, 6), cutoffs=[1, 4], metrics=list(ACCURACY_METRICS),
                   backend=request.param)
    return ev.evaluate(fixed_scores(SCORES))  # type: ignore[arg-type]


@pytest.mark.parametrize("user", [0, 1, 2])
def test_short_lists_full_protocol(result, user: int) -> None:  # type: ignore[no-untyped-def]
    got = {k: float(v[user]) for k, v in result.per_user.items()}
    assert set(got) == set(EXPECTED[user])
    for key, want in EXPECTED[user].items():
        assert got[key] == pytest.approx(want, abs=1e-9), key


def test_summary_averages_the_hand_values(result) -> None:  # type: ignore[no-untyped-def]
    for key in EXPECTED[0]:
        mean = sum(EXPECTED[u][key] for u in EXPECTED) / 3
        assert result.summary[key] == pytest.approx(mean, abs=1e-9), key


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_short_candidate_list(backend: str) -> None:
    """Candidate protocol: the candidate set {0, 2, 4} u {5, 1}, of which 1, 2, 4 score -inf
    and 3 (not a candidate) scores highest -> L = [5, 0], |L| = 2 < k = 4 and < |T_u| = 3."""
    test = interactions([[0, 2, 4]], 6)
    negatives = interactions([[1, 5]], 6).matrix
    scores = np.array([[1.0, -INF, -INF, 5.0, -INF, 2.0]], np.float32)
    ev = Evaluator(test, cutoffs=[4], metrics=list(ACCURACY_METRICS), candidates=negatives,
                   backend=backend)
    got = ev.evaluate(fixed_scores(scores)).summary  # type: ignore[arg-type]
    want = {"HR@4": 1, "HIT_RATE@4": 1, "PRECISION@4": 1 / 2, "RECALL@4": 1 / 3,
            "RECALL_MIN@4": 1 / 3, "NDCG@4": D2 / IDCG3, "NDCG_TRUNC@4": D2 / IDCG3,
            "MAP@4": (1 / 2) / 3, "MRR@4": 1 / 2}
    assert got == pytest.approx(want, abs=1e-9)


def test_accuracy_metrics_kernel_on_the_same_cases() -> None:
    """The kernel alone, from hits and list lengths (entries past a list's length are False)."""
    hits = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)
    lengths = np.array([2, 2, 1, 2])
    n_test = np.array([3, 3, 3, 5])
    out = accuracy_metrics(hits, lengths, n_test, [4], ["MAP", "PRECISION", "RECALL_MIN"])
    assert out["MAP@4"] == pytest.approx([1 / 3, 1 / 6, 1 / 3, (1 + 1) / 4])
    assert out["PRECISION@4"] == pytest.approx([1 / 2, 1 / 2, 1, 1])
    assert out["RECALL_MIN@4"] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 4])
