"""Bootstrap confidence intervals, paired significance tests and slicing.

Missing values are nan. Single-sample functions drop them; paired functions drop every pair with a missing side
and report how many were dropped. Resampling goes through `scipy.stats.bootstrap` / `scipy.stats.permutation_test`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from evalhub.stats._types import (
    Comparison,
    Estimate,
    FloatArray,
    ValuesLike,
    as_float_1d,
    check_confidence,
    nan_estimate,
)

StatisticName = Literal["mean", "median"]
CIMethod = Literal["percentile", "basic", "bca"]
T = TypeVar("T")

_SCIPY_METHOD = {"percentile": "percentile", "basic": "basic", "bca": "BCa"}
# scipy materialises batch x n resamples at once; cap that to keep memory bounded (~32 MB of float64) on large sets.
_MAX_BATCH_CELLS = 4_000_000


def _statistic(
    statistic: StatisticName | Callable[[FloatArray], float],
) -> tuple[Callable[..., object], bool]:
    """Returns (scipy-callable statistic, vectorized flag)."""
    if statistic == "mean":
        return np.mean, True
    if statistic == "median":
        return np.median, True
    if callable(statistic):
        fn = statistic
        return (lambda x: float(fn(np.asarray(x)))), False
    raise ValueError(f"unknown statistic {statistic!r}; use 'mean', 'median' or a callable")


def _batch(n: int, n_resamples: int) -> int:
    return max(1, min(n_resamples, _MAX_BATCH_CELLS // max(n, 1)))


def _scipy_bootstrap(
    data: tuple[FloatArray, ...],
    fn: Callable[..., object],
    vectorized: bool,
    *,
    n_resamples: int,
    confidence: float,
    method: CIMethod,
    seed: int | None,
    paired: bool = False,
) -> tuple[float, float, FloatArray]:
    """Returns (low, high, bootstrap distribution) from scipy, with degenerate distributions handled.

    When every resample gives the same value (e.g. all observations equal) scipy's BCa returns nan; the honest
    interval is then the single value itself, which is what we return.
    """
    if method not in _SCIPY_METHOD:
        raise ValueError(f"unknown interval method {method!r}; use one of {sorted(_SCIPY_METHOD)}")
    n = len(data[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=sps.DegenerateDataWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        res = sps.bootstrap(
            data,
            fn,
            n_resamples=n_resamples,
            batch=_batch(n, n_resamples),
            vectorized=vectorized,
            paired=paired,
            confidence_level=confidence,
            method=_SCIPY_METHOD[method],
            rng=np.random.default_rng(seed),
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    finite = dist[np.isfinite(dist)]
    if finite.size and np.ptp(finite) == 0.0 and finite.size == dist.size:
        low = high = float(finite[0])
    return low, high, dist


def bootstrap_ci(
    values: ValuesLike,
    statistic: StatisticName | Callable[[FloatArray], float] = "mean",
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    method: CIMethod = "percentile",
) -> Estimate:
    """Bootstrap confidence interval of a statistic of one sample.

    `statistic` is "mean", "median" or a callable taking a 1-D float array and returning a float. nan values are
    dropped first (`n` counts what remains). `method` is "percentile" (default), "basic" or "bca" (bias-corrected
    and accelerated; costs an extra jackknife pass).

    Returns an Estimate: `value` is the statistic on the data, `low`/`high` the interval. With no usable value all
    fields are nan and n = 0; with a single value the interval is nan.
    """
    confidence = check_confidence(confidence)
    x = as_float_1d(values)
    x = x[~np.isnan(x)]
    fn, vectorized = _statistic(statistic)
    n = int(x.size)
    if n == 0:
        return nan_estimate(0, confidence)
    value = float(fn(x))  # type: ignore[arg-type]
    if n == 1:
        return nan_estimate(1, confidence, value=value)
    low, high, _ = _scipy_bootstrap(
        (x,), fn, vectorized, n_resamples=n_resamples, confidence=confidence, method=method, seed=seed
    )
    return Estimate(value=value, low=low, high=high, n=n, confidence=confidence)


def _paired(a: ValuesLike, b: ValuesLike) -> tuple[FloatArray, FloatArray, int]:
    """Returns (a, b, n_dropped) with every pair that has a missing side removed."""
    xa, xb = as_float_1d(a, "a"), as_float_1d(b, "b")
    if xa.shape != xb.shape:
        raise ValueError(f"a and b must score the same items: lengths {xa.size} and {xb.size}")
    keep = ~(np.isnan(xa) | np.isnan(xb))
    return xa[keep], xb[keep], int((~keep).sum())


def _mean_diff(x: FloatArray, y: FloatArray, axis: int = -1) -> FloatArray:
    return np.asarray(np.mean(y - x, axis=axis), dtype=np.float64)


def _empty_comparison(
    n: int, n_dropped: int, a: FloatArray, b: FloatArray, method: str, conf: float
) -> Comparison:
    delta = float(np.mean(b - a)) if n else math.nan
    return Comparison(
        delta=delta,
        low=math.nan,
        high=math.nan,
        p_value=math.nan,
        n=n,
        n_dropped=n_dropped,
        mean_a=float(np.mean(a)) if n else math.nan,
        mean_b=float(np.mean(b)) if n else math.nan,
        method=method,
        confidence=conf,
    )


def paired_bootstrap_test(
    a: ValuesLike,
    b: ValuesLike,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    method: CIMethod = "percentile",
) -> Comparison:
    """Paired bootstrap comparison of system B against system A scored on the same items (a[i], b[i] = item i).

    delta = mean(b) - mean(a); the interval resamples items (pairs) with replacement. The two-sided p-value is
    the share of bootstrap deltas, shifted to be centred on zero, at least as far from zero as the observed
    delta: p = (1 + #{|d* - d| >= |d|}) / (1 + n_resamples), never 0.

    Returns a Comparison (method "paired_bootstrap"); fewer than two complete pairs give nan interval and p.
    """
    confidence = check_confidence(confidence)
    xa, xb, dropped = _paired(a, b)
    n = int(xa.size)
    if n < 2:
        return _empty_comparison(n, dropped, xa, xb, "paired_bootstrap", confidence)
    d = xb - xa
    delta = float(d.mean())
    low, high, dist = _scipy_bootstrap(
        (d,), np.mean, True, n_resamples=n_resamples, confidence=confidence, method=method, seed=seed
    )
    extreme = int(np.sum(np.abs(dist - delta) >= abs(delta) - 1e-12 * max(1.0, abs(delta))))
    p = min(1.0, (1 + extreme) / (1 + dist.size))
    return Comparison(
        delta=delta,
        low=low,
        high=high,
        p_value=p,
        n=n,
        n_dropped=dropped,
        mean_a=float(xa.mean()),
        mean_b=float(xb.mean()),
        method="paired_bootstrap",
        confidence=confidence,
    )


def paired_permutation_test(
    a: ValuesLike,
    b: ValuesLike,
    n_resamples: int = 9999,
    confidence: float = 0.95,
    seed: int | None = 0,
    *,
    ci_resamples: int = 2000,
) -> Comparison:
    """Paired permutation (sign-flip) test of system B against system A on the same items.

    Under H0 the two systems are exchangeable within each item, so the labels a/b are swapped per pair
    (`scipy.stats.permutation_test`, permutation_type="samples"); the test is exact when 2**n <= n_resamples.
    The interval of delta = mean(b) - mean(a) comes from a paired bootstrap with `ci_resamples` resamples.

    Returns a Comparison (method "paired_permutation"); no complete pair gives nan everywhere.
    """
    confidence = check_confidence(confidence)
    xa, xb, dropped = _paired(a, b)
    n = int(xa.size)
    if n == 0:
        return _empty_comparison(0, dropped, xa, xb, "paired_permutation", confidence)
    res = sps.permutation_test(
        (xa, xb),
        _mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    boot = paired_bootstrap_test(xa, xb, n_resamples=ci_resamples, confidence=confidence, seed=seed)
    return Comparison(
        delta=float(np.mean(xb - xa)),
        low=boot.low,
        high=boot.high,
        p_value=float(min(1.0, res.pvalue)),
        n=n,
        n_dropped=dropped,
        mean_a=float(xa.mean()),
        mean_b=float(xb.mean()),
        method="paired_permutation",
        confidence=confidence,
    )


def _slice_key(label: object) -> Hashable:
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return None
    if isinstance(label, np.generic):
        item: Hashable = label.item()
        return item
    return label


def by_slice(
    values: npt.ArrayLike | tuple[npt.ArrayLike, ...],
    labels: Sequence[Hashable] | npt.ArrayLike,
    fn: Callable[..., T],
    *,
    min_size: int = 1,
) -> dict[Hashable, T]:
    """Applies `fn` to each slice of the data defined by `labels` (one label per item).

    `values` is one array, or a tuple of aligned arrays (e.g. `(a, b)` for a paired comparison), in which case
    `fn` receives each array's slice as positional arguments: `by_slice((a, b), lang, paired_bootstrap_test)`.
    Missing labels (None or nan) form their own slice under the key None. Slices with fewer than `min_size` items
    are left out.

    Returns {label: fn(slice...)} ordered by label when the labels are mutually comparable, else by first
    appearance.
    """
    arrays = tuple(np.asarray(v) for v in values) if isinstance(values, tuple) else (np.asarray(values),)
    lab = list(labels)  # type: ignore[arg-type]
    for arr in arrays:
        if len(arr) != len(lab):
            raise ValueError(f"values ({len(arr)}) and labels ({len(lab)}) must have the same length")
    groups: dict[Hashable, list[int]] = {}
    for i, label in enumerate(lab):
        groups.setdefault(_slice_key(label), []).append(i)
    keys = list(groups)
    try:
        present = sorted(k for k in keys if k is not None)  # type: ignore[type-var]
        keys = present + ([None] if None in groups else [])
    except TypeError:
        pass
    out: dict[Hashable, T] = {}
    for key in keys:
        idx = np.asarray(groups[key], dtype=np.intp)
        if idx.size >= min_size:
            out[key] = fn(*(arr[idx] for arr in arrays))
    return out
