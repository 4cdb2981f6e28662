"""Krichene-Rendle corrected sampled metrics, checked against their defining properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_helpers import fixed_scores, interactions, reference_metrics
from scipy.stats import hypergeom

from recforge.evaluation import Evaluator
from recforge.evaluation.correction import (
    CORRECTABLE_METRICS,
    correct_sampled,
    corrected_table,
    rank_law,
    single_item_metric,
)


def test_rank_law_is_the_hypergeometric_law() -> None:
    n, m = 300, 20
    a = rank_law(n, m)
    assert a.shape == (n, m + 1)
    assert np.allclose(a.sum(axis=1), 1.0)
    big_r, r = np.meshgrid(np.arange(1, n + 1), np.arange(1, m + 2), indexing="ij")
    assert np.allclose(a, hypergeom.pmf(r - 1, n - 1, big_r - 1, m), atol=1e-12)
    assert a[0, 0] == pytest.approx(1.0)  # the top item is top among any sample
    assert a[-1, -1] == pytest.approx(1.0)  # the last one is last among any sample


def test_single_item_metrics_match_the_evaluator_for_one_test_item() -> None:
    # 5 users, one test item each, placed at full rank 1..5 by a fixed score row.
    n_items = 6
    scores = np.tile(np.arange(n_items, 0, -1, dtype=np.float64), (5, 1))  # item 0 best
    test = interactions([[0], [1], [2], [3], [4]], n_items)
    res = Evaluator(test, cutoffs=[1, 3, 5], metrics=list(CORRECTABLE_METRICS)).evaluate(
        fixed_scores(scores))
    ranks = np.arange(1, 6)
    for name in CORRECTABLE_METRICS:
        for k in (1, 3, 5):
            expected = [reference_metrics(list(range(n_items)), {u}, k)[name] for u in range(5)]
            assert single_item_metric(name, k, ranks) == pytest.approx(expected), (name, k)
            assert res.per_user[f"{name}@{k}"] == pytest.approx(expected), (name, k)


@pytest.mark.parametrize("method, gamma", [("bv", 0.1), ("bv", 0.7), ("ls", 0.0), ("rank", 0.0)])
def test_sampling_every_item_needs_no_correction(method: str, gamma: float) -> None:
    # m = n - 1: the sampled rank is the full rank, and every correction returns the metric.
    n = 40
    for metric in ("HIT_RATE", "NDCG", "MAP"):
        tab = corrected_table(metric, 10, n, n - 1, method=method, gamma=gamma)  # type: ignore[arg-type]
        assert tab == pytest.approx(single_item_metric(metric, 10, np.arange(1, n + 1)), abs=1e-9)


def test_least_squares_correction_is_unbiased_under_the_uniform_prior() -> None:
    # The normal equations A^T P (A x - b) = 0 summed over columns give 1^T P (A x - b) = 0
    # because the rows of A sum to 1: averaged over R ~ uniform, E[M~] equals E[M] exactly,
    # while the uncorrected sampled metric is far too high.
    n, m = 500, 50
    a = rank_law(n, m)
    for metric, k in (("HIT_RATE", 10), ("NDCG", 20), ("MRR", 5)):
        exact = single_item_metric(metric, k, np.arange(1, n + 1)).mean()
        tab = corrected_table(metric, k, n, m, method="ls")
        naive = corrected_table(metric, k, n, m, method="none")
        assert (a @ tab).mean() == pytest.approx(exact, rel=1e-6)
        assert (a @ naive).mean() > 3 * exact


def test_gamma_one_is_the_posterior_mean_of_the_metric() -> None:
    n, m = 200, 30
    a = rank_law(n, m)
    b = single_item_metric("NDCG", 10, np.arange(1, n + 1))
    tab = corrected_table("NDCG", 10, n, m, method="bv", gamma=1.0)
    assert tab == pytest.approx((a * b[:, None]).sum(0) / a.sum(0), rel=1e-9)


def test_bias_variance_correction_recovers_the_full_metric_from_samples() -> None:
    # Full ranks from a skewed distribution; sampled ranks drawn by the hypergeometric law.
    rng = np.random.default_rng(0)
    n, m, users = 2000, 100, 40_000
    full = np.minimum(rng.geometric(0.004, size=users), n)
    sampled = 1 + rng.hypergeometric(full - 1, n - full, m)
    for metric, k in (("HIT_RATE", 20), ("NDCG", 50)):
        exact = single_item_metric(metric, k, full).mean()
        naive = single_item_metric(metric, k, sampled).mean()
        got = correct_sampled([metric], [k], sampled, np.full(users, n), m)[f"{metric}@{k}"]
        assert abs(got.mean() - exact) < 0.1 * abs(naive - exact)


def test_users_with_different_pools_get_their_own_or_interpolated_tables() -> None:
    m = 20
    n = np.array([100, 100, 150, 400])
    ranks = np.array([1, 0, 3, 21])
    out = correct_sampled(["NDCG"], [10], ranks, n, m)["NDCG@10"]
    assert out[1] == 0.0  # not ranked (e.g. removed as seen)
    for i in (0, 2, 3):
        assert out[i] == pytest.approx(corrected_table("NDCG", 10, int(n[i]), m)[ranks[i] - 1])
    # 100 distinct pools > 64 tables: grid + linear interpolation, close to the exact tables.
    many = np.arange(1000, 1100)
    r = np.full(many.size, 2)
    approx = correct_sampled(["HIT_RATE"], [10], r, many, m)["HIT_RATE@10"]
    exact = np.array([corrected_table("HIT_RATE", 10, int(x), m)[1] for x in many[::9]])
    assert approx[::9] == pytest.approx(exact, rel=1e-3, abs=1e-6)


def test_bad_input_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="no single-item form"):
        correct_sampled(["COVERAGE"], [10], np.array([1]), np.array([50]), 10)
    with pytest.raises(ValueError, match=r"\[0, 11\]"):
        correct_sampled(["NDCG"], [10], np.array([12]), np.array([50]), 10)
    with pytest.raises(ValueError, match="n >= m \\+ 1"):
        correct_sampled(["NDCG"], [10], np.array([1]), np.array([5]), 10)
    with pytest.raises(ValueError, match="correction must be"):
        corrected_table("NDCG", 10, 50, 10, method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gamma"):
        corrected_table("NDCG", 10, 50, 10, gamma=math.nan)
