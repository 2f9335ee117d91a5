"""Rank correlation between an automated metric and human ratings, with bootstrap intervals."""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
from scipy import stats as sps

from evalhub.stats._types import (
    Estimate,
    FloatArray,
    ValuesLike,
    as_float_1d,
    check_confidence,
    nan_estimate,
    percentile_interval,
)

CorrelationMethod = Literal["kendall", "spearman"]
# Resampled index blocks are processed this many cells at a time so memory stays bounded on large sets.
_MAX_BLOCK_CELLS = 4_000_000


def _kendall(x: FloatArray, y: FloatArray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.kendalltau(x, y, variant="b").statistic)


def _spearman(x: FloatArray, y: FloatArray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sps.spearmanr(x, y).statistic)


def _spearman_rows(xs: FloatArray, ys: FloatArray) -> FloatArray:
    """Spearman rho of each row pair (xs[r], ys[r]): Pearson correlation of average ranks; nan for a constant row."""
    rx = sps.rankdata(xs, axis=1)
    ry = sps.rankdata(ys, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    num = (rx * ry).sum(axis=1)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def rank_correlation(
    x: ValuesLike,
    y: ValuesLike,
    method: CorrelationMethod = "kendall",
    n_resamples: int = 2000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> Estimate:
    """Rank correlation of paired scores x[i], y[i] (e.g. a metric and a human rating of output i).

    method "kendall" is Kendall's tau-b (ties handled; `scipy.stats.kendalltau`), "spearman" is Spearman's rho
    (`scipy.stats.spearmanr`); the point value equals scipy's. Pairs with a missing side (nan) are dropped.
    The interval is a percentile bootstrap over pairs; resamples in which one side is constant (correlation
    undefined) are skipped, and when more than half are undefined the interval is nan.

    Returns an Estimate (value, low, high, n = pairs used); value is nan when a side is constant or n < 2.
    """
    confidence = check_confidence(confidence)
    if method not in ("kendall", "spearman"):
        raise ValueError(f"unknown method {method!r}; use 'kendall' or 'spearman'")
    xa, ya = as_float_1d(x, "x"), as_float_1d(y, "y")
    if xa.shape != ya.shape:
        raise ValueError(f"x and y must be paired: lengths {xa.size} and {ya.size}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < 2:
        return nan_estimate(n, confidence)
    value = _kendall(xa, ya) if method == "kendall" else _spearman(xa, ya)
    if n < 3 or math.isnan(value):
        return nan_estimate(n, confidence, value=value)
    rng = np.random.default_rng(seed)
    dist = np.empty(n_resamples, dtype=np.float64)
    block = max(1, _MAX_BLOCK_CELLS // n)
    for start in range(0, n_resamples, block):
        stop = min(n_resamples, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        if method == "spearman":
            dist[start:stop] = _spearman_rows(xa[idx], ya[idx])
        else:
            # Kendall's tau-b has no cheap vectorised form in scipy; one call per resample is still fast enough.
            dist[start:stop] = [_kendall(xa[row], ya[row]) for row in idx]
    ok = dist[~np.isnan(dist)]
    if ok.size < n_resamples / 2:
        return nan_estimate(n, confidence, value=value)
    low, high = percentile_interval(ok, confidence)
    return Estimate(value=value, low=float(low), high=float(high), n=n, confidence=confidence)
