"""Agreement statistics against the reference packages (krippendorff, scikit-learn)."""

from __future__ import annotations

import math
from collections import Counter

import krippendorff
import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score

from evalhub.stats import (
    KappaWeights,
    Level,
    annotator_consensus_agreement,
    cohen_kappa,
    disagreement,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_kappa,
)

LEVELS: list[Level] = ["nominal", "ordinal", "interval", "ratio"]


def _ratings(raters: int, units: int, n_values: int, missing: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, n_values + 1, size=units)
    noise = rng.integers(-1, 2, size=(raters, units)) * (rng.random((raters, units)) < 0.4)
    data = np.clip(truth + noise, 1, n_values).astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


def _reference(data: np.ndarray, level: Level, value_domain: list | None = None) -> float:
    try:
        return float(krippendorff.alpha(data, level_of_measurement=level, value_domain=value_domain))
    except ValueError:
        return math.nan  # the package raises where alpha is undefined; we document nan for those cases


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    ("raters", "units", "n_values", "missing", "seed"),
    [
        (3, 40, 5, 0.0, 1),
        (5, 120, 5, 0.3, 2),
        (2, 30, 2, 0.1, 3),
        (8, 60, 7, 0.7, 4),
        (4, 25, 10, 0.5, 5),
    ],
)
def test_alpha_equals_krippendorff_package_on_random_data(
    level: Level, raters: int, units: int, n_values: int, missing: float, seed: int
) -> None:
    data = _ratings(raters, units, n_values, missing, seed)
    ours = krippendorff_alpha(data, level=level)
    ref = _reference(data, level)
    assert ours == pytest.approx(ref, abs=1e-9)
    assert not math.isnan(ours)


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_with_value_domain_counts_unused_levels(level: Level) -> None:
    data = _ratings(4, 30, 3, 0.2, 6)  # uses only 1..3 of a 1..7 scale
    domain = [1, 2, 3, 4, 5, 6, 7]
    assert krippendorff_alpha(data, level, value_domain=domain) == pytest.approx(
        _reference(data, level, domain), abs=1e-9
    )


def test_alpha_on_nominal_strings_with_missing() -> None:
    data = np.array(
        [
            ["pos", "neg", "neu", None, "pos", "neg"],
            ["pos", "neg", "pos", "neu", None, "neg"],
            [None, "neg", "neu", "neu", "pos", "pos"],
        ],
        dtype=object,
    )
    ref = krippendorff.alpha(np.where(data == None, np.nan, data).astype(str), level_of_measurement="nominal")
    assert krippendorff_alpha(data, "nominal") == pytest.approx(ref, abs=1e-9)
    ordered = ["neg", "neu", "pos"]
    as_str = np.where(data == None, "nan", data).astype(str)
    assert krippendorff_alpha(data, "ordinal", value_domain=ordered) == pytest.approx(
        krippendorff.alpha(as_str, level_of_measurement="ordinal", value_domain=ordered), abs=1e-9
    )
    with pytest.raises(ValueError, match="value_domain"):
        krippendorff_alpha(data, "ordinal")


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_degenerate_data_matches_package_or_documented_nan(level: Level) -> None:
    all_equal = np.full((3, 10), 4.0)
    assert math.isnan(krippendorff_alpha(all_equal, level))
    with pytest.raises(ValueError):
        krippendorff.alpha(all_equal, level_of_measurement=level)  # package: undefined -> raises
    # With an explicit domain the package computes 0/0 = nan itself: we match it.
    with np.errstate(all="ignore"):
        ref = krippendorff.alpha(all_equal, level_of_measurement=level, value_domain=[1, 2, 3, 4, 5])
    assert math.isnan(ref) and math.isnan(krippendorff_alpha(all_equal, level, value_domain=[1, 2, 3, 4, 5]))

    single_rater_per_unit = np.full((3, 6), np.nan)
    single_rater_per_unit[np.arange(6) % 3, np.arange(6)] = [1, 2, 3, 1, 2, 3]
    assert math.isnan(krippendorff_alpha(single_rater_per_unit, level))
    assert math.isnan(_reference(single_rater_per_unit, level))

    mostly_missing = _ratings(6, 50, 5, 0.85, 7)
    assert krippendorff_alpha(mostly_missing, level) == pytest.approx(
        _reference(mostly_missing, level), abs=1e-9
    )

    two_categories = np.array([[1, 1, 2, 2, 1, np.nan], [1, 2, 2, 2, 1, 1], [np.nan, 1, 2, 1, 1, 1]])
    assert krippendorff_alpha(two_categories, level) == pytest.approx(
        _reference(two_categories, level), abs=1e-9
    )

    perfect = np.array([[1, 2, 3, 1], [1, 2, 3, 1]], dtype=float)
    assert krippendorff_alpha(perfect, level) == pytest.approx(1.0)


def test_alpha_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 2], [1, 2]], level="cardinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        krippendorff_alpha([[1, 9], [1, 2]], level="ordinal", value_domain=[1, 2, 3])
    with pytest.raises(ValueError, match="2-D"):
        krippendorff_alpha([1, 2, 3])


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_equals_sklearn(weights: KappaWeights) -> None:
    rng = np.random.default_rng(10)
    a = rng.integers(1, 6, size=200)
    b = np.clip(a + rng.integers(-2, 3, size=200) * (rng.random(200) < 0.5), 1, 5)
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(
        cohen_kappa_score(a, b, weights=weights), abs=1e-12
    )
    labels = [1, 2, 3, 4, 5, 6]  # an unused label changes weighted kappa's positions only at the end
    assert cohen_kappa(a, b, weights=weights, labels=labels) == pytest.approx(
        cohen_kappa_score(a, b, weights=weights, labels=labels), abs=1e-12
    )
    subset = [5, 3, 1]  # restricts and reorders, as sklearn does
    assert cohen_kappa(a, b, weights=weights, labels=subset) == pytest.approx(
        cohen_kappa_score(a, b, weights=weights, labels=subset), abs=1e-12
    )


def test_cohen_kappa_strings_missing_and_undefined() -> None:
    a = ["yes", "no", "yes", None, "no", "yes"]
    b = ["yes", "no", "no", "yes", np.nan, "yes"]
    keep = [0, 1, 2, 5]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score([a[i] for i in keep], [b[i] for i in keep]))
    assert math.isnan(cohen_kappa(["x", "x"], ["x", "x"]))
    assert math.isnan(cohen_kappa([None], [None]))


def test_pairwise_kappa_uses_shared_units() -> None:
    data = _ratings(3, 60, 4, 0.2, 11)
    km = pairwise_kappa(data)
    assert km.shape == (3, 3) and np.allclose(np.diag(km), 1.0) and np.allclose(km, km.T, equal_nan=True)
    both = ~np.isnan(data[0]) & ~np.isnan(data[2])
    assert km[0, 2] == pytest.approx(cohen_kappa_score(data[0][both], data[2][both]))


def _loo_reference(data: np.ndarray) -> list[tuple[float, float]]:
    """Plain-Python leave-one-out consensus: (agreement, mean |value - median of others|) per rater."""
    out = []
    for r in range(data.shape[0]):
        agree, dev = [], []
        for u in range(data.shape[1]):
            own = data[r, u]
            others = [data[s, u] for s in range(data.shape[0]) if s != r and not np.isnan(data[s, u])]
            if np.isnan(own) or not others:
                continue
            counts = Counter(others)
            top = max(counts.values())
            modes = [v for v, c in counts.items() if c == top]
            agree.append(1 / len(modes) if own in modes else 0.0)
            dev.append(abs(own - float(np.median(others))))
        out.append((float(np.mean(agree)), float(np.mean(dev))))
    return out


def test_annotator_consensus_agreement_matches_reference_and_spots_the_outlier() -> None:
    rng = np.random.default_rng(12)
    truth = rng.integers(1, 6, size=80).astype(float)
    good = np.vstack([truth, truth, truth, truth])
    good[1, :10] = np.clip(truth[:10] + 1, 1, 5)  # rater 1 slightly noisy
    random_rater = rng.integers(1, 6, size=80).astype(float)
    data = np.vstack([good, random_rater])
    data[rng.random(data.shape) < 0.15] = np.nan
    res = annotator_consensus_agreement(data, level="ordinal")
    assert [r.rater for r in res] == [0, 1, 2, 3, 4]
    for got, (agreement, mad) in zip(res, _loo_reference(data), strict=True):
        assert got.agreement == pytest.approx(agreement) and got.mean_abs_deviation == pytest.approx(mad)
        assert got.n_units == int((~np.isnan(data[got.rater])).sum())
    assert res[4].agreement < 0.4
    assert min(r.agreement for r in res[:4]) > 0.9
    assert res[4].mean_abs_deviation > 0.8 > res[1].mean_abs_deviation


def test_annotator_consensus_splits_ties_and_handles_isolated_raters() -> None:
    data = np.array([["a", "b", "a"], ["b", "b", None], ["a", "a", None], [None, None, "c"]], dtype=object)
    res = annotator_consensus_agreement(data, level="nominal")
    # rater 0: unit0 others {b, a} tie -> 1/2; unit1 others {b, a} tie -> 1/2; unit2 others {c} -> 0
    assert res[0].agreement == pytest.approx((0.5 + 0.5 + 0.0) / 3) and res[0].n_units == 3
    assert math.isnan(res[0].mean_abs_deviation)
    lone = annotator_consensus_agreement(np.array([[1.0, np.nan], [np.nan, 2.0]]))
    assert all(r.n_units == 0 and math.isnan(r.agreement) for r in lone)


def test_gold_accuracy_with_wilson_interval() -> None:
    ratings = [1, 2, 3, 4, 5, 3, np.nan, 2, 2, 4]
    gold = [1, 2, 4, 4, 5, 3, 3, 2, 1, np.nan]
    est = gold_accuracy(ratings, gold)
    assert est.n == 8 and est.value == pytest.approx(6 / 8)
    ci = sps.binomtest(6, 8).proportion_ci(method="wilson")
    assert (est.low, est.high) == pytest.approx((ci.low, ci.high))
    assert gold_accuracy(ratings, gold, tolerance=1).value == 1.0
    assert gold_accuracy(["x", "y"], ["x", "x"]).value == 0.5
    assert math.isnan(gold_accuracy([np.nan], [1]).value)


def test_disagreement_flags_units_for_adjudication() -> None:
    ratings = [[4, 5, 4], [1, 5], [3], [2, 2, 3, np.nan], [np.nan, np.nan]]
    res = disagreement(ratings, threshold=1, level="ordinal")
    assert res.flagged.tolist() == [False, True, False, False, False]
    assert res.score[:2].tolist() == [1.0, 4.0] and math.isnan(res.score[2])
    assert res.n_ratings.tolist() == [3, 2, 1, 3, 0]
    labels = np.array([["spam", "spam", "ham"], ["ham", "ham", "ham"]], dtype=object)
    nominal = disagreement(labels, threshold=0.0, level="nominal")
    assert nominal.flagged.tolist() == [True, False]
    assert nominal.score.tolist() == pytest.approx([1 / 3, 0.0])
