"""Agreement between raters: Krippendorff's alpha, Cohen's kappa, consensus, gold accuracy, disagreement flags.

Rating matrices are raters x units (`reliability_data[r, u]` = rater r's value for unit u) with nan (or None)
for "not rated", the layout of the `krippendorff` package. Values may be numbers or, for nominal data, strings.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from evalhub.stats._types import Estimate, FloatArray, IntArray, ValuesLike, check_confidence, nan_estimate

Level = Literal["nominal", "ordinal", "interval", "ratio"]
KappaWeights = Literal["linear", "quadratic"] | None
_LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)):
        return bool(np.isnan(v))
    # A nan in a numpy string array has been coerced to the text "nan" (the krippendorff package reads it so too).
    return isinstance(v, (str, np.str_)) and v == "nan"


def _to_array(data: ValuesLike) -> tuple[np.ndarray, npt.NDArray[np.bool_]]:
    """Returns (values, missing mask): a float array when every present value is numeric, else a str array."""
    arr = np.asarray(data)
    if arr.dtype.kind in "iub":
        return arr.astype(np.float64), np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind == "f":
        return arr.astype(np.float64), np.isnan(arr)
    if arr.dtype.kind in "US":
        arr = arr.astype(str)
        return arr, arr == "nan"
    if arr.dtype.kind == "O":
        flat = arr.ravel()
        missing = np.fromiter((_is_missing(v) for v in flat), dtype=bool, count=flat.size).reshape(arr.shape)
        present = [v for v, m in zip(flat, missing.ravel(), strict=True) if not m]
        if all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in present
        ):
            out = np.full(arr.shape, np.nan)
            out[~missing] = np.asarray(present, dtype=np.float64)
            return out, missing
        out_s = np.full(arr.shape, "nan", dtype=object)
        out_s[~missing] = [str(v) for v in present]
        return out_s.astype(str), missing
    raise ValueError(f"cannot read ratings of dtype {arr.dtype}")


def _encode(
    values: np.ndarray, missing: npt.NDArray[np.bool_], value_domain: npt.ArrayLike | None, level: str
) -> tuple[IntArray, np.ndarray]:
    """Returns (index array with -1 for missing, domain): each present value's position in the domain.

    The default domain is the sorted unique present values. A given domain keeps its order (that order is the
    ordinal scale) and every present value must be in it.
    """
    observed = np.unique(values[~missing])
    numeric = values.dtype.kind == "f"
    if value_domain is None:
        if not numeric and level != "nominal":
            raise ValueError("string ratings need an ordered value_domain for levels other than 'nominal'")
        domain = observed
    else:
        domain = np.asarray(value_domain)
        if domain.ndim != 1:
            raise ValueError("value_domain must be one-dimensional")
        if numeric:
            domain = domain.astype(np.float64)
        else:
            domain = domain.astype(str)
        if np.unique(domain).size != domain.size:
            raise ValueError("value_domain has repeated values")
        if not np.isin(observed, domain).all():
            raise ValueError("the ratings contain values outside value_domain")
    idx = np.full(values.shape, -1, dtype=np.intp)
    if domain.size:
        order = np.argsort(domain, kind="stable")
        pos = np.searchsorted(domain[order], values[~missing])
        idx[~missing] = order[pos]
    return idx, domain


def _value_counts(idx: IntArray, n_values: int) -> FloatArray:
    """Returns units x values counts from a raters x units index array (-1 = missing)."""
    n_units = idx.shape[1]
    r, u = np.nonzero(idx >= 0)
    flat = u * n_values + idx[r, u]
    return np.bincount(flat, minlength=n_units * n_values).reshape(n_units, n_values).astype(np.float64)


def _distances(domain: np.ndarray, n_v: FloatArray, level: Level) -> FloatArray:
    """Returns the V x V squared-distance matrix of Krippendorff's metric for `level`."""
    v = domain.size
    if level == "nominal":
        return 1.0 - np.eye(v)
    if level == "ordinal":
        # distance(c, k) = (sum of n_g for g between c and k inclusive - (n_c + n_k) / 2) ** 2
        cum = np.concatenate([[0.0], np.cumsum(n_v)])
        i = np.arange(v)
        lo, hi = np.minimum.outer(i, i), np.maximum.outer(i, i)
        between = cum[hi + 1] - cum[lo]
        return np.asarray((between - (n_v[:, None] + n_v[None, :]) / 2.0) ** 2, dtype=np.float64)
    x = domain.astype(np.float64)
    diff = x[:, None] - x[None, :]
    if level == "interval":
        return diff**2
    total = x[:, None] + x[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, diff / np.where(total != 0, total, 1.0), 0.0) ** 2


def krippendorff_alpha(
    reliability_data: ValuesLike,
    level: Level = "interval",
    value_domain: npt.ArrayLike | None = None,
) -> float:
    """Krippendorff's alpha of a raters x units matrix (nan / None = not rated).

    Computed from the coincidence matrix: alpha = 1 - D_o / D_e with the distance of `level` ("nominal",
    "ordinal", "interval", "ratio"); units rated by fewer than two raters do not count. Equal to
    `krippendorff.alpha(reliability_data, level_of_measurement=level, value_domain=...)`; the default level is
    "interval" as in that package. `value_domain`, when given, lists every possible value in scale order (it
    matters for ordinal data: unused levels still count as distance) and must contain every rating.

    Returns alpha (1 = perfect agreement, 0 = chance, < 0 = systematic disagreement). Returns nan when alpha is
    undefined: fewer than two distinct values in the domain (e.g. everyone gave the same rating), no unit rated
    by two raters, or no variation among pairable values. The `krippendorff` package raises ValueError for the
    first two and returns nan for the third; we return nan for all so a page can show "undefined" without a
    special case. Raises ValueError for an unknown level, a non-2-D matrix or ratings outside `value_domain`.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {_LEVELS}")
    values, missing = _to_array(reliability_data)
    if values.ndim != 2:
        raise ValueError(f"reliability_data must be raters x units (2-D), got shape {values.shape}")
    idx, domain = _encode(values, missing, value_domain, level)
    if domain.size <= 1:
        return math.nan
    counts = _value_counts(idx, domain.size)
    m_u = counts.sum(axis=1)
    pairable = m_u >= 2
    if not pairable.any():
        return math.nan
    c = counts[pairable]
    weighted = c / (m_u[pairable] - 1.0)[:, None]
    # Coincidences o[c, k] = sum_u n_uc * n_uk / (m_u - 1), without a value's pairing with itself on the diagonal.
    o = weighted.T @ c - np.diag(weighted.sum(axis=0))
    n_v = o.sum(axis=0)
    n = n_v.sum()
    e = (np.outer(n_v, n_v) - np.diag(n_v)) / (n - 1.0)
    d = _distances(domain, n_v, level)
    expected = float((e * d).sum())
    observed = float((o * d).sum())
    if expected == 0.0:
        return math.nan
    return 1.0 - observed / expected


def _pair_arrays(a: ValuesLike, b: ValuesLike) -> tuple[np.ndarray, np.ndarray, npt.NDArray[np.bool_]]:
    """Returns (a values, b values, both-present mask) read as one 2 x n matrix so both share one type."""
    la, lb = list(np.asarray(a, dtype=object)), list(np.asarray(b, dtype=object))
    if len(la) != len(lb):
        raise ValueError(f"a and b must rate the same items: lengths {len(la)} and {len(lb)}")
    values, missing = _to_array(np.array([la, lb], dtype=object).reshape(2, len(la)))
    return values[0], values[1], ~(missing[0] | missing[1])


def cohen_kappa(
    a: ValuesLike,
    b: ValuesLike,
    weights: KappaWeights = None,
    labels: Sequence[Any] | None = None,
) -> float:
    """Cohen's kappa between two raters' labels of the same items (a[i], b[i] = item i).

    Items where either rater is missing (nan / None) are dropped. `labels` restricts and orders the label set
    (default: sorted union of the labels used); items with a label outside it are dropped, as in scikit-learn.
    `weights` "linear" / "quadratic" weigh disagreements by the distance between label positions in that order.
    Equal to `sklearn.metrics.cohen_kappa_score(a, b, labels=labels, weights=weights)`.

    Returns kappa (1 = perfect, 0 = chance agreement); nan when undefined (no items, or a single label in use).
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"unknown weights {weights!r}; use None, 'linear' or 'quadratic'")
    va, vb, both = _pair_arrays(a, b)
    va, vb = va[both], vb[both]
    if labels is None:
        domain = np.unique(np.concatenate([va, vb]))
    else:
        domain = np.asarray(labels).astype(va.dtype)
        keep = np.isin(va, domain) & np.isin(vb, domain)
        va, vb = va[keep], vb[keep]
    k = domain.size
    if va.size == 0 or k == 0:
        return math.nan
    order = np.argsort(domain, kind="stable")
    ia = order[np.searchsorted(domain[order], va)]
    ib = order[np.searchsorted(domain[order], vb)]
    confusion = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / confusion.sum()
    pos = np.arange(k, dtype=np.float64)
    if weights is None:
        w = 1.0 - np.eye(k)
    elif weights == "linear":
        w = np.abs(pos[:, None] - pos[None, :])
    else:
        w = (pos[:, None] - pos[None, :]) ** 2
    denom = float((w * expected).sum())
    if denom == 0.0:
        return math.nan
    return 1.0 - float((w * confusion).sum()) / denom


def pairwise_kappa(reliability_data: ValuesLike, weights: KappaWeights = None) -> FloatArray:
    """Cohen's kappa for every pair of raters in a raters x units matrix, on the units both rated.

    Returns an M x M symmetric matrix with 1 on the diagonal for raters with at least one rating; nan where two
    raters share no unit or kappa is undefined.
    """
    values, missing = _to_array(reliability_data)
    if values.ndim != 2:
        raise ValueError("reliability_data must be raters x units (2-D)")
    m = values.shape[0]
    out = np.full((m, m), np.nan)
    for r in range(m):
        if (~missing[r]).any():
            out[r, r] = 1.0
        for s in range(r + 1, m):
            both = ~missing[r] & ~missing[s]
            if both.any():
                out[r, s] = out[s, r] = cohen_kappa(values[r][both], values[s][both], weights=weights)
    return out


@dataclass(frozen=True, slots=True)
class AnnotatorAgreement:
    """One rater's agreement with the consensus of the other raters.

    `n_units`: units this rater rated that at least one other rater also rated. `agreement`: mean over those
    units of the chance that the rater's value equals the others' most frequent value (1 when it is the unique
    mode, 1/k when it is one of k tied modes, 0 otherwise). `mean_abs_deviation`: mean |value - median of the
    others| for ordinal/interval/ratio levels, nan for nominal.
    """

    rater: int
    n_units: int
    agreement: float
    mean_abs_deviation: float


def annotator_consensus_agreement(
    reliability_data: ValuesLike, level: Level = "nominal"
) -> list[AnnotatorAgreement]:
    """Per-rater agreement with the leave-one-out consensus of the others (raters x units matrix).

    The consensus of a unit for rater r excludes r's own rating, so a rater cannot agree with themself.

    Returns one AnnotatorAgreement per rater (row order); raters with no shared unit get n_units = 0 and nan.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {_LEVELS}")
    values, missing = _to_array(reliability_data)
    if values.ndim != 2:
        raise ValueError("reliability_data must be raters x units (2-D)")
    idx, domain = _encode(values, missing, None, "nominal")
    v = max(domain.size, 1)
    counts = _value_counts(idx, v)
    numeric = level != "nominal" and values.dtype.kind == "f"
    out: list[AnnotatorAgreement] = []
    for r in range(values.shape[0]):
        own = idx[r]
        rated = own >= 0
        others = counts.copy()
        others[np.nonzero(rated)[0], own[rated]] -= 1.0
        shared = rated & (others.sum(axis=1) > 0)
        n_units = int(shared.sum())
        if n_units == 0:
            out.append(AnnotatorAgreement(r, 0, math.nan, math.nan))
            continue
        o = others[shared]
        top = o.max(axis=1)
        n_modes = (o == top[:, None]).sum(axis=1)
        own_count = o[np.arange(n_units), own[shared]]
        agreement = float(np.mean(np.where(own_count == top, 1.0 / n_modes, 0.0)))
        mad = math.nan
        if numeric:
            rest = np.delete(values, r, axis=0)[:, shared].astype(np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)
                med = np.nanmedian(rest, axis=0)
            mad = float(np.mean(np.abs(values[r, shared].astype(np.float64) - med)))
        out.append(AnnotatorAgreement(r, n_units, agreement, mad))
    return out


def gold_accuracy(
    ratings: ValuesLike,
    gold: ValuesLike,
    tolerance: float = 0.0,
    confidence: float = 0.95,
) -> Estimate:
    """Share of gold items a rater got right, with a Wilson score interval (`scipy.stats.binomtest`).

    ratings[i] and gold[i] refer to the same item; items where either is missing are dropped. Numeric ratings
    count as correct when |rating - gold| <= tolerance; string labels when equal.

    Returns an Estimate of the accuracy (n = gold items answered); all nan when n = 0.
    """
    confidence = check_confidence(confidence)
    va, vb, both = _pair_arrays(ratings, gold)
    va, vb = va[both], vb[both]
    n = int(va.size)
    if n == 0:
        return nan_estimate(0, confidence)
    if va.dtype.kind == "f":
        correct = int(np.sum(np.abs(va - vb) <= tolerance))
    else:
        correct = int(np.sum(va == vb))
    ci = sps.binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Estimate(value=correct / n, low=float(ci.low), high=float(ci.high), n=n, confidence=confidence)


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Per-unit disagreement. `score[u]`: spread of unit u's ratings (nan with fewer than two ratings);
    `flagged[u]`: score > threshold, i.e. the unit should go to adjudication; `n_ratings[u]`: ratings present."""

    score: FloatArray
    flagged: npt.NDArray[np.bool_]
    n_ratings: IntArray


def _ragged_to_matrix(ratings_per_unit: Any) -> np.ndarray:
    if isinstance(ratings_per_unit, np.ndarray):
        return ratings_per_unit
    rows = [list(r) for r in ratings_per_unit]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), None, dtype=object)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def disagreement(ratings_per_unit: ValuesLike, threshold: float, level: Level = "ordinal") -> Disagreement:
    """Flags units whose ratings disagree beyond `threshold`, for adjudication by a reviewer.

    `ratings_per_unit` is units x ratings (nan / None = absent), or a ragged list of each unit's ratings. The
    spread is max - min of the ratings for ordinal/interval/ratio levels (e.g. threshold 1 on a Likert scale flags
    units whose raters are more than one point apart), and 1 - (share of the most common label) for nominal
    (threshold 0 flags any disagreement).

    Returns a Disagreement; units with fewer than two ratings are never flagged.
    """
    if level not in _LEVELS:
        raise ValueError(f"unknown level {level!r}; use one of {_LEVELS}")
    values, missing = _to_array(_ragged_to_matrix(ratings_per_unit))
    if values.ndim != 2:
        raise ValueError("ratings_per_unit must be units x ratings")
    n_ratings = (~missing).sum(axis=1).astype(np.intp)
    score = np.full(values.shape[0], np.nan)
    enough = n_ratings >= 2
    if level == "nominal" or values.dtype.kind != "f":
        if level != "nominal":
            raise ValueError("string ratings can only be compared at the nominal level")
        idx, domain = _encode(values, missing, None, "nominal")
        counts = _value_counts(idx.T, max(domain.size, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            score[enough] = 1.0 - counts[enough].max(axis=1) / n_ratings[enough]
    else:
        x = np.where(missing, np.nan, values)[enough]
        score[enough] = np.nanmax(x, axis=1) - np.nanmin(x, axis=1)
    flagged = enough & (np.nan_to_num(score, nan=-np.inf) > threshold)
    return Disagreement(score=score, flagged=flagged, n_ratings=n_ratings)
