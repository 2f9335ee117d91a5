"""Bootstrap intervals, paired tests and slicing (evalhub.stats.bootstrap)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evalhub.stats import (
    Comparison,
    Estimate,
    bootstrap_ci,
    by_slice,
    paired_bootstrap_test,
    paired_permutation_test,
)


def test_bootstrap_ci_point_value_is_the_statistic_and_interval_brackets_it() -> None:
    x = np.random.default_rng(1).normal(5.0, 1.0, size=200)
    est = bootstrap_ci(x)
    assert isinstance(est, Estimate)
    assert est.value == pytest.approx(float(np.mean(x)))
    assert est.low < est.value < est.high
    assert est.n == 200
    # roughly +/- 1.96 standard errors
    se = np.std(x, ddof=1) / math.sqrt(x.size)
    assert est.width == pytest.approx(2 * 1.96 * se, rel=0.15)
    med = bootstrap_ci(x, statistic="median")
    assert med.value == pytest.approx(float(np.median(x)))


def test_bootstrap_ci_is_reproducible_and_seed_dependent() -> None:
    x = np.random.default_rng(2).exponential(size=80)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci(x, seed=3).low != bootstrap_ci(x, seed=4).low


def test_bootstrap_ci_drops_missing_and_reports_count() -> None:
    x = [1.0, 2.0, None, 4.0, float("nan"), 6.0]
    est = bootstrap_ci(x)
    assert est.n == 4
    assert est.value == pytest.approx(3.25)


def test_bootstrap_ci_degenerate_inputs() -> None:
    empty = bootstrap_ci([np.nan, np.nan])
    assert empty.n == 0 and math.isnan(empty.value) and math.isnan(empty.low)
    single = bootstrap_ci([7.0])
    assert single.value == 7.0 and math.isnan(single.low) and single.n == 1
    const = bootstrap_ci([2.0] * 10, method="bca")
    assert (const.value, const.low, const.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="infinite"):
        bootstrap_ci([1.0, np.inf])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)


def test_bootstrap_ci_callable_statistic_and_bca() -> None:
    x = np.random.default_rng(5).normal(size=60)
    est = bootstrap_ci(x, statistic=lambda a: float(np.percentile(a, 90)), n_resamples=500)
    assert est.value == pytest.approx(float(np.percentile(x, 90)))
    assert est.low <= est.value <= est.high
    bca = bootstrap_ci(x, method="bca", n_resamples=500)
    assert bca.low < bca.value < bca.high


def test_bootstrap_ci_coverage_of_the_true_mean_is_nominal() -> None:
    # Known truth: normal with mean 3. A nominal 95 % interval must cover it 93-97 % of the time.
    rng = np.random.default_rng(2024)
    reps = 800
    covered = sum(
        bootstrap_ci(rng.normal(3.0, 2.0, size=100), n_resamples=1000, seed=r).contains(3.0)
        for r in range(reps)
    )
    assert 0.93 <= covered / reps <= 0.97


def test_paired_bootstrap_detects_a_real_improvement() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0.5, 0.2, size=300)
    b = a + 0.05 + rng.normal(0, 0.05, size=300)
    cmp = paired_bootstrap_test(a, b)
    assert isinstance(cmp, Comparison)
    assert cmp.delta == pytest.approx(float(np.mean(b) - np.mean(a)))
    assert cmp.low > 0 and cmp.p_value < 0.001 and cmp.significant
    assert cmp.mean_a == pytest.approx(float(a.mean())) and cmp.mean_b == pytest.approx(float(b.mean()))
    reverse = paired_bootstrap_test(b, a)
    assert reverse.delta == pytest.approx(-cmp.delta) and reverse.high < 0


def test_paired_bootstrap_identical_systems_give_p_one() -> None:
    a = np.random.default_rng(8).random(50)
    cmp = paired_bootstrap_test(a, a.copy())
    assert cmp.delta == 0.0 and cmp.p_value == 1.0 and not cmp.significant
    assert cmp.low == cmp.high == 0.0


def test_paired_tests_drop_pairs_with_a_missing_side() -> None:
    a = [0.1, 0.5, np.nan, 0.7, 0.9, 0.3]
    b = [0.2, np.nan, 0.4, 0.8, 1.0, 0.2]
    for fn in (paired_bootstrap_test, paired_permutation_test):
        cmp = fn(a, b)
        assert cmp.n == 4 and cmp.n_dropped == 2
        assert cmp.delta == pytest.approx(np.mean([0.1, 0.1, 0.1, -0.1]))
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_test([1.0, 2.0], [1.0])


def test_paired_bootstrap_false_positive_rate_under_the_null_is_about_alpha() -> None:
    rng = np.random.default_rng(11)
    reps = 300
    rejections = 0
    for r in range(reps):
        a = rng.normal(size=80)
        b = rng.normal(size=80)  # same distribution: H0 true
        rejections += paired_bootstrap_test(a, b, n_resamples=500, seed=r).p_value < 0.05
    assert 0.02 <= rejections / reps <= 0.09


def test_paired_permutation_exact_p_value_matches_enumeration() -> None:
    rng = np.random.default_rng(12)
    a = rng.normal(size=9)
    b = a + rng.normal(0.4, 1.0, size=9)
    d = b - a
    observed = abs(d.mean())
    flips = np.array(list(itertools.product([1.0, -1.0], repeat=d.size)))
    stats = np.abs((flips * d).mean(axis=1))
    expected_p = float(np.mean(stats >= observed - 1e-12))
    cmp = paired_permutation_test(a, b)  # 2**9 = 512 <= n_resamples: scipy enumerates exactly
    assert cmp.p_value == pytest.approx(expected_p)
    assert cmp.method == "paired_permutation"
    assert cmp.low <= cmp.delta <= cmp.high


def test_by_slice_groups_items_and_passes_aligned_arrays() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    labels = ["en", "fr", "en", None, "fr", "en"]
    means = by_slice(values, labels, lambda x: float(x.mean()))
    assert list(means) == ["en", "fr", None]
    assert means == {"en": pytest.approx(10 / 3), "fr": pytest.approx(3.5), None: 4.0}
    a = values
    b = values + np.array([1, 0, 1, 0, 0, 1])
    per_lang = by_slice((a, b), labels, paired_bootstrap_test, min_size=2)
    assert set(per_lang) == {"en", "fr"}
    assert per_lang["en"].delta == pytest.approx(1.0) and per_lang["fr"].delta == 0.0
    with pytest.raises(ValueError, match="same length"):
        by_slice(values, labels[:3], len)
