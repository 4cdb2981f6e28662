"""Evaluator behaviour: protocols, batching, provenance, errors, evaluate_split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from evaluation_helpers import FixedScores, fixed_scores, interactions

from recforge.data.interactions import Interactions
from recforge.data.split import Split, negatives_from_lists
from recforge.evaluation import TIE_RULE, EvaluationResult, Evaluator, evaluate_split
from recforge.models.baselines import Random, TopPopular


def _fixed(scores: np.ndarray) -> FixedScores:
    return fixed_scores(np.asarray(scores, np.float32))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_candidate_set_dedup_and_exclusion(backend: str) -> None:
    # 8 items, score = item index, so higher index ranks first.
    # User 0: test {2}; negatives [5, 5, 7, 1, 2] (5 twice, 2 is the test item, 1 is excluded);
    # candidates = ({2} | {5, 7, 1, 2}) - {1, 3} = {2, 5, 7} -> L@5 = [7, 5, 2], |L| = 3.
    # User 1: test {0, 6}, no negatives -> candidates = {0, 6} -> L = [6, 0].
    test = interactions([[2], [0, 6]], 8)
    negs = negatives_from_lists([[5, 5, 7, 1, 2], []], 8)
    ev = Evaluator(
        test,
        cutoffs=[1, 5],
        metrics=["PRECISION", "HR", "MRR", "RECALL"],
        exclude=interactions([[1, 3], []], 8),
        candidates=negs,
        backend=backend,  # type: ignore[arg-type]
    )
    res = ev.evaluate(_fixed(np.tile(np.arange(8.0), (2, 1))))
    assert res.meta["protocol"] == "candidates"
    assert res.per_user["PRECISION@5"].tolist() == pytest.approx([1 / 3, 2 / 2])
    assert res.per_user["MRR@5"].tolist() == pytest.approx([1 / 3, 1.0])
    assert res.per_user["HR@1"].tolist() == [0.0, 1.0]
    assert res.per_user["RECALL@5"].tolist() == [1.0, 1.0]


def test_excluded_test_item_stays_relevant_but_unreachable() -> None:
    # Test item 1 also in exclude: it cannot be ranked but still counts in |T_u| = 2.
    ev = Evaluator(
        interactions([[0, 1]], 4),
        cutoffs=[4],
        metrics=["RECALL", "PRECISION"],
        exclude=interactions([[1]], 4),
    )
    res = ev.evaluate(_fixed([[4, 3, 2, 1]]))
    assert res.summary["RECALL@4"] == pytest.approx(1 / 2)
    assert res.summary["PRECISION@4"] == pytest.approx(1 / 3)  # L = [0, 2, 3]


def test_batching_does_not_change_results() -> None:
    rng = np.random.default_rng(0)
    n_users, n_items = 40, 30
    test = interactions([list(rng.choice(n_items, 3, replace=False)) for _ in range(n_users)], 30)
    train = interactions([list(rng.choice(n_items, 5, replace=False)) for _ in range(n_users)], 30)
    model = Random(seed=1).fit(train)
    kw = {"cutoffs": [1, 5, 10], "metrics": ["NDCG", "MAP", "RECALL", "GINI"], "exclude": train}
    big = Evaluator(test, **kw).evaluate(model)  # type: ignore[arg-type]
    tiny = Evaluator(test, memory_budget_mb=30 * 4 * 3 / 2**20, **kw).evaluate(model)  # type: ignore[arg-type]
    assert big.meta["n_batches"] == 1
    assert tiny.meta["batch_size"] == 3 and tiny.meta["n_batches"] == 14
    assert big.summary == tiny.summary
    for key in big.per_user:
        np.testing.assert_array_equal(big.per_user[key], tiny.per_user[key])


def test_nan_scores_raise_naming_the_user() -> None:
    scores = np.ones((3, 4), np.float32)
    scores[2, 1] = np.nan
    ev = Evaluator(interactions([[0], [1], [2]], 4), cutoffs=[2])
    with pytest.raises(ValueError, match="NaN scores for user 2"):
        ev.evaluate(_fixed(scores))
    ev_np = Evaluator(interactions([[0], [1], [2]], 4), cutoffs=[2], backend="numpy")
    with pytest.raises(ValueError, match="NaN scores for user 2"):
        ev_np.evaluate(_fixed(scores))


def test_wrong_score_shape_is_reported() -> None:
    ev = Evaluator(interactions([[0]], 4), cutoffs=[2])
    with pytest.raises(ValueError, match=r"shape \(1, 3\).*expected \(1, 4\)"):
        ev.evaluate(_fixed([[1.0, 2.0, 3.0]]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cutoffs": []}, "cutoffs"),
        ({"cutoffs": [0]}, "cutoffs"),
        ({"cutoffs": [5], "metrics": ["NDCG", "FOO"]}, "unknown metric 'FOO'"),
        ({"cutoffs": [5], "metrics": ["NOVELTY"]}, "item_popularity"),
        ({"cutoffs": [5], "memory_budget_mb": 0}, "memory_budget_mb"),
        ({"cutoffs": [5], "backend": "cuda"}, "backend"),
        ({"cutoffs": [5], "exclude": sp.csr_matrix((2, 3))}, "exclude has shape"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=match):
        Evaluator(interactions([[0], [1]], 4), **kwargs)


def test_no_test_users_is_an_error() -> None:
    with pytest.raises(ValueError, match="no user has a test item"):
        Evaluator(interactions([[], []], 3), cutoffs=[1])


def test_unsorted_duplicated_exclude_matrix_is_canonicalised() -> None:
    # Raw CSR with unsorted, repeated columns: items 3 and 1 excluded for user 0.
    raw = sp.csr_matrix(
        (np.ones(3, np.float32), np.array([3, 1, 3]), np.array([0, 3])), shape=(1, 5)
    )
    ev = Evaluator(interactions([[2]], 5), cutoffs=[5], metrics=["PRECISION"], exclude=raw)
    res = ev.evaluate(_fixed([[5, 4, 3, 2, 1]]))
    assert res.summary["PRECISION@5"] == pytest.approx(1 / 3)  # L = [0, 2, 4]


def _small_split() -> Split:
    rng = np.random.default_rng(7)
    n_users, n_items = 12, 20
    pairs = {(u, i) for u in range(n_users) for i in rng.choice(n_items, 8, replace=False)}
    users, items = map(np.array, zip(*sorted(pairs), strict=True))
    role = rng.integers(0, 10, users.size)  # 0-1 test, 2 validation, rest train
    shape = (n_users, n_items)

    def part(mask: np.ndarray) -> Interactions:
        return Interactions.from_arrays(users[mask], items[mask], shape=shape)

    negs = negatives_from_lists([list(rng.choice(n_items, 5)) for _ in range(n_users)], n_items)
    return Split(
        train=part(role >= 3),
        test=part(role <= 1),
        validation=part(role == 2),
        test_negatives=negs,
        method="random",
        params={"seed": 7},
    )


def test_evaluate_split_full_and_provenance() -> None:
    split = _small_split()
    model = TopPopular().fit(split.train)
    res = evaluate_split(model, split, cutoffs=[5], metrics=["RECALL", "NOVELTY", "AVG_POP"])
    manual = Evaluator(split.test, cutoffs=[5], metrics=["RECALL"], exclude=split.train).evaluate(
        model
    )
    assert res.per_user["RECALL@5"].tolist() == manual.per_user["RECALL@5"].tolist()
    meta = res.meta
    assert meta["data_checksum"] == split.train.checksum()
    assert meta["split_fingerprint"] == split.fingerprint()
    assert meta["protocol"] == "full" and meta["on"] == "test"
    assert meta["tie_rule"] == TIE_RULE and "lower index" in TIE_RULE
    assert meta["n_users"] == int((split.test.user_counts() > 0).sum())
    assert meta["cutoffs"] == [5] and meta["seconds"] > 0
    pop = split.train.item_counts()
    assert 0 < res.summary["AVG_POP@5"] <= pop.max()
    json.dumps(res.to_dict(include_per_user=True))  # JSON-able


def test_evaluate_split_validation_and_candidates() -> None:
    split = _small_split()
    model = TopPopular().fit(split.train)
    val = evaluate_split(model, split, cutoffs=[3], on="validation")
    assert val.meta["n_users"] == int((split.validation.user_counts() > 0).sum())  # type: ignore[union-attr]
    cand = evaluate_split(model, split, cutoffs=[3], protocol="candidates")
    assert cand.meta["protocol"] == "candidates"
    with pytest.raises(ValueError, match="validation_negatives"):
        evaluate_split(model, split, cutoffs=[3], on="validation", protocol="candidates")
    with pytest.raises(ValueError, match="on must be"):
        evaluate_split(model, split, cutoffs=[3], on="train")


def test_evaluate_split_with_fold_in_profiles() -> None:
    # Held-out users 2 and 3 have no train rows; their profiles are scored via score_profiles
    # and excluded from their rankings.
    shape = (4, 6)
    train = interactions([[0, 1], [0, 2], [], []], 6)
    profiles = interactions([[], [], [0, 1], [0]], 6)
    test = interactions([[], [], [2], [3]], 6)
    split = Split(train=train, test=test, test_profiles=profiles, method="held_out_users")
    assert split.train.shape == shape
    model = TopPopular().fit(train)  # popularity [2, 1, 1, 0, 0, 0]
    res = evaluate_split(model, split, cutoffs=[1], metrics=["HR"])
    # user 2: profile {0, 1} excluded -> top item 2 (hit); user 3: {0} excluded -> item 1
    assert res.users.tolist() == [2, 3]
    assert res.per_user["HR@1"].tolist() == [1.0, 0.0]
    assert res.meta["fold_in_profiles"] is True
    with pytest.raises(ValueError, match="cannot score fold-in profiles"):
        evaluate_split(Random().fit(train), split, cutoffs=[1])


def test_result_round_trip_and_repr() -> None:
    ev = Evaluator(interactions([[0], [1]], 3), cutoffs=[1, 2], metrics=["NDCG", "COVERAGE"])
    res = ev.evaluate(_fixed([[3, 2, 1], [3, 2, 1]]))
    d = json.loads(json.dumps(res.to_dict(include_per_user=True)))
    back = EvaluationResult.from_dict(d)
    assert back.summary == res.summary
    assert back.users.tolist() == [0, 1]
    np.testing.assert_array_equal(back.per_user["NDCG@2"], res.per_user["NDCG@2"])
    assert "per_user" not in res.to_dict()
    assert list(res.summary) == ["NDCG@1", "NDCG@2", "COVERAGE@1", "COVERAGE@2"]
    assert "n_users=2" in repr(res)


def test_float64_scores_are_ranked_as_float32() -> None:
    class F64(FixedScores):
        def _score(self, users: np.ndarray) -> np.ndarray:
            return self.scores_[users].astype(np.float64)

    ev = Evaluator(interactions([[1]], 3), cutoffs=[1], metrics=["HR"])
    model = F64(np.array([[1.0, 2.0, 0.0]])).fit(interactions([[]], 3))
    assert model.score(np.array([0])).dtype == np.float32
    assert ev.evaluate(model).summary["HR@1"] == 1.0


def test_sparse_score_blocks_are_densified() -> None:
    class SparseScores(FixedScores):
        def _score(self, users: np.ndarray) -> sp.csr_matrix:  # type: ignore[override]
            return sp.csr_matrix(self.scores_[users])

    scores = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], np.float32)
    ev = Evaluator(interactions([[2], [1]], 3), cutoffs=[2], metrics=["HR", "MRR"])
    dense = ev.evaluate(_fixed(scores))
    sparse = ev.evaluate(SparseScores(scores).fit(interactions([[], []], 3)))
    assert sparse.summary == dense.summary
    # user 0: [1, 2] -> hit at 2; user 1: [0, 1] (tie at 0 -> lower index) -> hit at 2
    assert dense.per_user["MRR@2"].tolist() == [0.5, 0.5]


def test_falls_back_to_numpy_without_numba() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from recforge.data.interactions import Interactions\n"
        "from recforge.evaluation import Evaluator, numba_available\n"
        "from recforge.models.baselines import TopPopular\n"
        "t = Interactions.from_arrays(np.array([0, 1]), np.array([1, 2]), shape=(2, 4))\n"
        "r = Evaluator(t, cutoffs=[2]).evaluate(TopPopular().fit(t))\n"
        "print(numba_available(), r.meta['backend'], r.summary['HR@2'])\n"
    )
    env = dict(os.environ, RECFORGE_DISABLE_NUMBA="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # popularity [0, 1, 1, 0] -> both lists [1, 2]: one hit each
    assert out.stdout.split() == ["False", "numpy", "1.0"]
