"""Aggregates and paired comparisons computed from per-output scores (pure pandas; no database)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from evalhub.metrics.aggregates import MISSING_SLICE, aggregate, compare, slice_label, slice_names
from evalhub.stats import bootstrap_ci, paired_bootstrap_test


def frame(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    """rows of (example_id, sample_index, metric, value); output ids are made up from position."""
    return pd.DataFrame(
        [(1000 + i, e, s, m, v) for i, (e, s, m, v) in enumerate(rows)],
        columns=["output_id", "example_id", "sample_index", "metric", "value"],
    )


def attrs(mapping: dict[int, dict[str, object]]) -> pd.DataFrame:
    out = pd.DataFrame.from_dict(mapping, orient="index")
    out.index.name = "example_id"
    return out


def test_mean_is_over_examples_with_samples_averaged_first() -> None:
    # Example 1 has two samples (0.0 and 1.0 -> 0.5); examples 2 and 3 one each.
    scores = frame([(1, 0, "rouge1", 0.0), (1, 1, "rouge1", 1.0), (2, 0, "rouge1", 0.2), (3, 0, "rouge1", 0.8)])
    [row] = aggregate(scores, n_resamples=500)
    assert row.metric == "rouge1" and row.slice_value is None
    assert row.estimate.value == pytest.approx((0.5 + 0.2 + 0.8) / 3)
    assert row.estimate.n == 3  # examples, not outputs
    assert row.n_outputs == 4
    expected = bootstrap_ci([0.5, 0.2, 0.8], n_resamples=500, seed=0)
    assert (row.estimate.low, row.estimate.high) == pytest.approx((expected.low, expected.high))


def test_missing_values_are_left_out_not_counted_as_zero() -> None:
    scores = frame([(1, 0, "bleu", 0.6), (2, 0, "bleu", float("nan")), (3, 0, "bleu", 0.8)])
    [row] = aggregate(scores, n_resamples=200)
    assert row.estimate.value == pytest.approx(0.7)
    assert row.estimate.n == 2
    assert row.n_missing == 1


def test_slices_have_their_own_interval_and_missing_attribute_is_a_slice() -> None:
    rng = np.random.default_rng(1)
    rows, mapping = [], {}
    for e in range(30):
        category = ["shoes", "mugs", None][e % 3]
        mapping[e] = {"category": category} if category else {}
        rows.append((e, 0, "chrf", float(rng.uniform(0.4, 0.6) + (0.3 if category == "shoes" else 0.0))))
    scores = frame(rows)
    result = aggregate(scores, attributes=attrs(mapping), slice_by="category", n_resamples=300)
    by_slice = {r.slice_value: r for r in result}
    assert set(by_slice) == {None, "shoes", "mugs", MISSING_SLICE}
    shoes = [v for (e, _, _, v) in rows if e % 3 == 0]
    assert by_slice["shoes"].estimate.value == pytest.approx(np.mean(shoes))
    assert by_slice["shoes"].estimate.n == 10
    assert by_slice["shoes"].estimate.low > by_slice["mugs"].estimate.high  # the planted gap shows


def test_comparison_pairs_by_example_and_sample_regardless_of_row_order() -> None:
    rng = np.random.default_rng(3)
    a_rows, b_rows = [], []
    for e in range(40):
        base = float(rng.uniform(0.2, 0.6))
        a_rows.append((e, 0, "rougeL", base))
        b_rows.append((e, 0, "rougeL", base + 0.1 + float(rng.normal(0, 0.02))))
    a = frame(a_rows)
    b = frame(list(reversed(b_rows)))  # different row order, same pairs
    [row] = compare(a, b, n_resamples=500)
    diffs = [bv - av for (_, _, _, av), (_, _, _, bv) in zip(a_rows, b_rows)]
    assert row.comparison.delta == pytest.approx(np.mean(diffs))
    expected = paired_bootstrap_test([r[3] for r in a_rows], [r[3] for r in b_rows], n_resamples=500, seed=0)
    assert (row.comparison.low, row.comparison.high) == pytest.approx((expected.low, expected.high))
    assert row.significant and "B is higher" in row.verdict
    assert row.comparison.n == 40 and row.n_unmatched == 0


def test_identical_runs_are_not_significantly_different() -> None:
    scores = frame([(e, 0, "exact_match", float(e % 2)) for e in range(20)])
    [row] = compare(scores, scores.copy(), n_resamples=300)
    assert row.comparison.delta == 0
    assert not row.significant
    assert row.verdict == "difference is not significant"


def test_comparison_counts_unmatched_and_incomplete_pairs() -> None:
    a = frame([(1, 0, "bleu", 0.1), (2, 0, "bleu", 0.2), (3, 0, "bleu", float("nan")), (4, 0, "bleu", 0.4)])
    b = frame([(1, 0, "bleu", 0.3), (2, 0, "bleu", 0.5), (3, 0, "bleu", 0.6), (5, 0, "bleu", 0.9)])
    [row] = compare(a, b, n_resamples=200)
    assert row.n_unmatched == 2  # example 4 only in A, example 5 only in B
    assert row.comparison.n == 2 and row.comparison.n_dropped == 1  # example 3 has no value on A's side
    assert row.comparison.delta == pytest.approx(((0.3 - 0.1) + (0.5 - 0.2)) / 2)


def test_comparison_per_slice_matches_a_comparison_of_that_slice_alone() -> None:
    rng = np.random.default_rng(5)
    mapping = {e: {"audience": "kids" if e < 12 else "adults"} for e in range(30)}
    a_rows = [(e, 0, "token_f1", float(rng.uniform())) for e in range(30)]
    b_rows = [(e, 0, "token_f1", v + (0.3 if e < 12 else 0.0)) for e, _, _, v in a_rows]
    rows = compare(frame(a_rows), frame(b_rows), attributes=attrs(mapping), slice_by="audience", n_resamples=300)
    kids = next(r for r in rows if r.slice_value == "kids")
    alone = paired_bootstrap_test([v for _, _, _, v in a_rows[:12]], [v for _, _, _, v in b_rows[:12]], n_resamples=300, seed=0)
    assert kids.comparison.delta == pytest.approx(0.3)
    assert (kids.comparison.low, kids.comparison.high, kids.comparison.p_value) == pytest.approx((alone.low, alone.high, alone.p_value))
    adults = next(r for r in rows if r.slice_value == "adults")
    assert adults.comparison.delta == pytest.approx(0.0) and not adults.significant


def test_too_few_pairs_say_so_instead_of_a_verdict() -> None:
    [row] = compare(frame([(1, 0, "bleu", 0.1)]), frame([(1, 0, "bleu", 0.9)]), n_resamples=100)
    assert math.isnan(row.comparison.p_value) and row.p_text == "–"
    assert row.verdict == "too few pairs to tell (1 < 10)"
    # Three pairs with a clear gap: the bootstrap p is tiny, but three pairs cannot support a verdict.
    a = frame([(e, 0, "bleu", 0.1 + 0.01 * e) for e in range(3)])
    b = frame([(e, 0, "bleu", 0.6 + 0.01 * e) for e in range(3)])
    [row] = compare(a, b, n_resamples=200)
    assert row.comparison.p_value < 0.05 and not row.significant
    assert row.verdict == "too few pairs to tell (3 < 10)"


def test_slice_labels_and_sliceable_attributes() -> None:
    assert slice_label(None) == MISSING_SLICE and slice_label("") == MISSING_SLICE
    assert slice_label(True) == "true" and slice_label(3) == "3"
    table = attrs({i: {"category": ["a", "b"][i % 2], "sku": f"id-{i}", "const": "x"} for i in range(6)})
    assert slice_names(table) == ["category"]  # an id-like column and a constant are no slices


def test_bootstrap_interval_coverage_is_near_nominal() -> None:
    """Known truth: Bernoulli(0.3) scores on 200 examples; the 95 % interval should cover 0.3 about 95 % of the time."""
    rng = np.random.default_rng(11)
    trials, covered = 300, 0
    for _ in range(trials):
        values = (rng.uniform(size=200) < 0.3).astype(float)
        [row] = aggregate(frame([(e, 0, "exact_match", v) for e, v in enumerate(values)]), n_resamples=400, seed=int(rng.integers(1e9)))
        covered += row.estimate.contains(0.3)
    rate = covered / trials
    # 300 trials: the binomial 99.9 % band around 0.95 is about 0.91-0.98.
    assert 0.91 <= rate <= 0.98, rate
    assert sps.binomtest(covered, trials, 0.95).pvalue > 0.001
