"""Full vs sampled vs corrected: exact when every item is sampled, and order flips are found."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_helpers import FixedScores, fixed_scores

from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.evaluation import evaluate_split
from recforge.evaluation.sampled_comparison import compare_sampled

N_USERS, N_ITEMS, N_TRAIN = 300, 600, 10
POOL = N_ITEMS - N_TRAIN - 1  # non-relevant items a full ranking ranks per user


def _split(seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    items = np.stack([rng.choice(N_ITEMS, N_TRAIN + 1, replace=False) for _ in range(N_USERS)])
    users = np.repeat(np.arange(N_USERS), N_TRAIN)
    train = Interactions.from_arrays(users, items[:, :N_TRAIN].ravel(), shape=(N_USERS, N_ITEMS))
    test = Interactions.from_arrays(np.arange(N_USERS), items[:, N_TRAIN],
                                    shape=(N_USERS, N_ITEMS))
    return Split(train=train, test=test, method="test")


def _model_placing_test_items(split: Split, full_ranks: np.ndarray, seed: int) -> FixedScores:
    """Scores that put user u's test item at full rank ``full_ranks[u]`` (train removed)."""
    rng = np.random.default_rng(seed)
    scores = rng.random((N_USERS, N_ITEMS))
    train, test = split.train.matrix, split.test.matrix
    for u in range(N_USERS):
        t = test.indices[test.indptr[u]]
        seen = set(train.indices[train.indptr[u] : train.indptr[u + 1]].tolist())
        others = np.array([i for i in range(N_ITEMS) if i != t and i not in seen])
        ranked = np.sort(scores[u, others])[::-1]
        r = int(full_ranks[u])
        above = ranked[r - 2] if r > 1 else 2.0
        below = ranked[r - 1] if r <= ranked.size else -1.0
        scores[u, t] = (above + below) / 2
    return fixed_scores(scores)


def test_sampling_every_item_gives_the_full_values_in_all_three_views() -> None:
    split = _split()
    rng = np.random.default_rng(1)
    models = {
        "a": _model_placing_test_items(split, rng.integers(1, 40, N_USERS), seed=2),
        "b": _model_placing_test_items(split, rng.integers(1, 400, N_USERS), seed=3),
    }
    comp = compare_sampled(models, split, n_negatives=POOL, cutoffs=[1, 10], seeds=[0],
                           metrics=["HIT_RATE", "NDCG", "MRR"])
    for lab, model in models.items():
        full = evaluate_split(model, split, cutoffs=[1, 10], metrics=["HIT_RATE", "NDCG", "MRR"])
        for col in comp.columns:
            assert comp.values["full"][col][lab] == pytest.approx(full.summary[col])
            assert comp.values["sampled"][col][lab] == pytest.approx(full.summary[col])
            assert comp.values["corrected"][col][lab] == pytest.approx(full.summary[col], abs=1e-9)
    assert all(t == pytest.approx(1.0) for c in comp.columns for t in comp.tau[c].values())


def test_sampled_order_flips_and_the_correction_restores_it() -> None:
    split = _split()
    rng = np.random.default_rng(4)
    # "sharp": 30 % of test items on top, the rest at the very bottom; "mediocre": every test
    # item at full rank 60. Full HIT_RATE@10: 0.3 vs 0. Among 100 sampled negatives the
    # mediocre item lands around sampled rank 1 + 59 * 100 / 588 ~ 11: it looks far better.
    sharp = np.where(rng.random(N_USERS) < 0.3, 1, POOL + 1)
    models = {
        "sharp": _model_placing_test_items(split, sharp, seed=5),
        "mediocre": _model_placing_test_items(split, np.full(N_USERS, 60), seed=6),
    }
    comp = compare_sampled(models, split, n_negatives=100, cutoffs=[20], seeds=[0, 1, 2],
                           metrics=["HIT_RATE"])
    col = "HIT_RATE@20"
    assert comp.orders["full"][col] == ["sharp", "mediocre"]
    assert comp.orders["sampled"][col] == ["mediocre", "sharp"]
    assert comp.values["sampled"][col]["mediocre"] > 0.9
    assert comp.tau[col]["sampled"] == pytest.approx(-1.0)
    assert comp.flips[col]["sampled"] == [["sharp", "mediocre"]]
    assert comp.orders["corrected"][col] == ["sharp", "mediocre"]
    assert comp.flips[col]["corrected"] == []
    assert comp.spread["corrected"][col]["mediocre"] > 0  # three sampling seeds differ
    md = comp.to_markdown()
    assert "| sharp |" in md and "Kendall tau vs full: sampled -1.000" in md
    assert comp.settings["n_users"] == N_USERS and comp.settings["seeds"] == [0, 1, 2]
    assert comp.to_dict()["orders"]["full"][col] == ["sharp", "mediocre"]


def test_the_correction_is_refused_where_its_assumptions_fail() -> None:
    split = _split()
    model = {"m": fixed_scores(np.random.default_rng(0).random((N_USERS, N_ITEMS)))}
    with pytest.raises(ValueError, match="uniformly sampled"):
        compare_sampled(model, split, n_negatives=50, mode="popularity")
    two = Split(train=split.train, test=split.test.with_matrix(
        split.test.matrix.maximum(split.train.matrix[::-1].tocsr())), method="test")
    with pytest.raises(ValueError, match="one test item per user"):
        compare_sampled(model, two, n_negatives=50)
    # Without the correction both work (sampled vs full only).
    comp = compare_sampled(model, two, n_negatives=50, correction="none", cutoffs=[10])
    assert set(comp.values) == {"full", "sampled"}
