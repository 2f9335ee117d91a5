"""Rank correlation with bootstrap intervals (evalhub.stats.correlation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from evalhub.stats import CorrelationMethod, rank_correlation


def _metric_and_ratings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    metric = rng.random(n)
    # Likert 1..5 ratings loosely following the metric: many ties, as real human ratings have
    ratings = np.clip(np.round(1 + 4 * metric + rng.normal(0, 0.8, n)), 1, 5)
    return metric, ratings


@pytest.mark.parametrize("method", ["kendall", "spearman"])
def test_point_value_equals_scipy(method: CorrelationMethod) -> None:
    x, y = _metric_and_ratings(150, 1)
    est = rank_correlation(x, y, method=method, n_resamples=300)
    ref = sps.kendalltau(x, y).statistic if method == "kendall" else sps.spearmanr(x, y).statistic
    assert est.value == pytest.approx(ref, abs=1e-12)
    assert est.low < est.value < est.high
    assert est.n == 150


def test_interval_shrinks_with_more_data_and_is_reproducible() -> None:
    small = rank_correlation(*_metric_and_ratings(40, 2), method="spearman", seed=1)
    large = rank_correlation(*_metric_and_ratings(400, 2), method="spearman", seed=1)
    assert large.width < small.width
    assert rank_correlation(*_metric_and_ratings(40, 2), method="spearman", seed=1) == small


def test_spearman_interval_covers_known_population_value() -> None:
    # Bivariate normal with rho = 0.6: population Spearman = 6/pi * asin(rho/2).
    rho = 0.6
    truth = 6 / math.pi * math.asin(rho / 2)
    rng = np.random.default_rng(3)
    reps, covered = 120, 0
    for r in range(reps):
        z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=150)
        covered += rank_correlation(z[:, 0], z[:, 1], "spearman", n_resamples=500, seed=r).contains(truth)
    assert covered / reps >= 0.88


def test_missing_pairs_dropped_and_constant_input_is_nan() -> None:
    x = [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]
    y = [2.0, 1.0, 3.0, np.nan, 5.0, 7.0]
    est = rank_correlation(x, y, "kendall", n_resamples=200)
    assert est.n == 4
    assert est.value == pytest.approx(sps.kendalltau([1, 2, 5, 6], [2, 1, 5, 7]).statistic)
    const = rank_correlation([1, 2, 3, 4], [3, 3, 3, 3], "spearman")
    assert math.isnan(const.value) and math.isnan(const.low)
    with pytest.raises(ValueError, match="method"):
        rank_correlation([1, 2], [1, 2], method="pearson")  # type: ignore[arg-type]
