"""Paired tests, p-value corrections and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recforge.evaluation import bootstrap_ci, correct_pvalues, paired_test


def test_paired_tests_match_scipy_and_detect_a_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a + 0.05 + rng.normal(0, 0.05, 300)
    w = paired_test(a, b)
    assert w.pvalue == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert w.pvalue < 1e-6
    stat, p = paired_test(a, b, test="ttest")
    assert p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert stat < 0  # a is smaller
    # Same distribution, independent noise: no evidence.
    c = a + rng.normal(0, 0.05, 300)
    assert paired_test(a, c).pvalue > 0.01


def test_paired_test_degenerate_cases() -> None:
    a = np.array([0.1, 0.5, 0.0])
    assert paired_test(a, a) == (0.0, 1.0)
    assert paired_test(a, a, test="ttest") == (0.0, 1.0)
    assert paired_test(a + 1, a, test="ttest").pvalue == 0.0  # constant shift, zero variance
    with pytest.raises(ValueError, match="differ in length"):
        paired_test(a, a[:2])
    with pytest.raises(ValueError, match="NaN"):
        paired_test(a, np.array([0.1, np.nan, 0.0]))
    with pytest.raises(ValueError, match="test must be"):
        paired_test(a, a + np.array([0, 0, 1]), test="sign")


def test_holm_and_bh_by_hand() -> None:
    p = [0.01, 0.04, 0.03]
    # Holm: sorted [0.01, 0.03, 0.04] * [3, 2, 1] = [0.03, 0.06, 0.04] -> running max
    # [0.03, 0.06, 0.06] -> back in input order [0.03, 0.06, 0.06]
    np.testing.assert_allclose(correct_pvalues(p, "holm"), [0.03, 0.06, 0.06])
    # BH: sorted p * m / rank = [0.03, 0.045, 0.04] -> running min from the top
    # [0.03, 0.04, 0.04] -> input order [0.03, 0.04, 0.04]
    np.testing.assert_allclose(correct_pvalues(p, "bh"), [0.03, 0.04, 0.04])
    assert correct_pvalues([0.5, 0.9], "holm").tolist() == [1.0, 1.0]  # capped at 1
    assert correct_pvalues([], "bh").size == 0
    with pytest.raises(ValueError, match="method"):
        correct_pvalues(p, "bonferroni")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        correct_pvalues([0.2, 1.5])


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 0.1, 2000)
    lo, hi = bootstrap_ci(x, n_boot=500, seed=3)
    assert lo < x.mean() < hi
    # Standard error 0.1 / sqrt(2000) = 0.00224 -> 95% width about 2 * 1.96 * 0.00224 = 0.0088
    assert 0.006 < hi - lo < 0.012
    assert bootstrap_ci(x, n_boot=500, seed=3) == (lo, hi)  # reproducible
    lo99, hi99 = bootstrap_ci(x, n_boot=500, alpha=0.01, seed=3)
    assert lo99 < lo and hi99 > hi
    assert bootstrap_ci([0.2, 0.2, 0.2]) == (0.2, 0.2)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(x, alpha=1.5)
