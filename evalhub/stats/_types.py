"""Result types and small array helpers shared by the statistics modules (no Django, no app imports)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
# Array-likes that may also be plain lists holding None for a missing value.
ValuesLike = npt.ArrayLike | Sequence[Any]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with a confidence interval.

    `value` is the statistic on all usable observations; `low`/`high` bound the interval at `confidence`
    (both nan when no interval can be formed, e.g. fewer than two observations); `n` is the number of
    observations actually used after missing values were dropped.
    """

    value: float
    low: float
    high: float
    n: int
    confidence: float = 0.95

    @property
    def width(self) -> float:
        """Returns high - low (nan when the interval is undefined)."""
        return self.high - self.low

    def contains(self, x: float) -> bool:
        """Returns True when low <= x <= high (False for an undefined interval)."""
        return bool(self.low <= x <= self.high)

    def as_dict(self) -> dict[str, Any]:
        """Returns the fields as a plain dict (JSON-ready apart from nan)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Paired comparison of system B against system A on the same items.

    `delta` = mean(b) - mean(a) over the pairs where both sides are present; `low`/`high` is the bootstrap
    interval of delta; `p_value` is two-sided for H0: delta = 0 (from the method named in `method`); `n` pairs
    were used and `n_dropped` pairs were dropped because a side was missing (nan).
    """

    delta: float
    low: float
    high: float
    p_value: float
    n: int
    n_dropped: int
    mean_a: float
    mean_b: float
    method: str
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Returns True when p_value < 1 - confidence (False when the p-value is undefined)."""
        return bool(self.p_value < 1.0 - self.confidence)

    def as_dict(self) -> dict[str, Any]:
        """Returns the fields as a plain dict."""
        return asdict(self)


def nan_estimate(n: int = 0, confidence: float = 0.95, value: float = math.nan) -> Estimate:
    """Returns an Estimate whose interval is undefined (nan bounds)."""
    return Estimate(value=value, low=math.nan, high=math.nan, n=n, confidence=confidence)


def check_confidence(confidence: float) -> float:
    """Returns `confidence` as float after checking 0 < confidence < 1 (ValueError otherwise)."""
    c = float(confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return c


def as_float_1d(values: ValuesLike, name: str = "values") -> FloatArray:
    """Returns `values` as a 1-D float64 array; nan marks a missing value, None becomes nan.

    Raises ValueError for non-1-D input or infinite values: an infinite score is a data error that would silently
    poison every aggregate built on it.
    """
    arr = np.asarray(values, dtype=object if _has_none(values) else None)
    if arr.dtype == object:
        arr = np.array([np.nan if v is None else v for v in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _has_none(values: Any) -> bool:
    return isinstance(values, (list, tuple)) and any(v is None for v in values)


def percentile_interval(samples: npt.ArrayLike, confidence: float, axis: int = 0) -> tuple[Any, Any]:
    """Returns the (low, high) equal-tailed percentile interval of `samples` along `axis`."""
    tail = (1.0 - confidence) / 2.0
    q = np.quantile(np.asarray(samples, dtype=np.float64), [tail, 1.0 - tail], axis=axis)
    return q[0], q[1]
