"""The one Gini coefficient (recforge.stats), used by the GINI metric and the split audit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recforge import stats
from recforge.data import audit
from recforge.evaluation import metrics


def test_gini_hand_cases() -> None:
    assert stats.gini(np.array([4, 4, 4])) == 0.0
    assert stats.gini(np.array([0, 0, 0, 9])) == pytest.approx(3 / 4)  # (n - 1) / n
    # sorted [1, 2, 3]: (-2*1 + 0*2 + 2*3) / (3 * 6) = 4 / 18
    assert stats.gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)


def test_gini_is_half_the_relative_mean_absolute_difference() -> None:
    x = np.random.default_rng(0).integers(0, 50, size=40).astype(float)
    mad = np.abs(x[:, None] - x[None, :]).mean()
    assert stats.gini(x) == pytest.approx(mad / (2 * x.mean()))


@pytest.mark.parametrize("counts", [np.zeros(5), np.array([])])
def test_gini_undefined_without_mass(counts: np.ndarray) -> None:
    assert math.isnan(stats.gini(counts))


def test_gini_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        stats.gini(np.array([3.0, -1.0, 2.0]))


def test_metric_and_audit_share_the_definition() -> None:
    assert metrics.gini is stats.gini and audit.gini is stats.gini


def test_rank_correlations() -> None:
    a = np.array([1, 2, 3, 4, 5])
    assert stats.rank_correlations(a, a * 10) == {"spearman": pytest.approx(1.0),
                                                  "kendall": pytest.approx(1.0)}
    assert stats.rank_correlations(a, -a)["kendall"] == pytest.approx(-1.0)
    const = stats.rank_correlations(a, np.ones(5))
    assert math.isnan(const["spearman"]) and math.isnan(const["kendall"])
