"""Aggregates of per-output metric scores with bootstrap intervals, sliced by dataset attributes, and paired
comparisons of two metric runs on the same eval set.

The statistics are `evalhub.stats`; this module decides what the unit of resampling is and how outputs are paired:
- The unit is the *example*. With several samples per prompt, an example's score is the mean over its samples first,
  so the interval reflects the number of distinct prompts, not prompts x samples (samples of one prompt are not
  independent observations).
- A comparison pairs outputs by (example, sample index); pairs where either side has no value are dropped and
  counted. The per-example mean over the matched pairs of each side then goes into the paired bootstrap.
- Missing values (an output whose metric is undefined, e.g. no reference, or whose generation failed) are never
  counted as zero: they are left out and reported as `n_missing` / `n_dropped`.

Pure pandas in, dataclasses out: `load_scores` is the only database access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalhub.stats import Comparison, Estimate, bootstrap_ci, by_slice, paired_bootstrap_test

if TYPE_CHECKING:
    from evalhub.metrics.models import MetricRun

N_RESAMPLES = 2000
SEED = 0  # fixed, so a page shows the same interval every time it is opened
SCORE_COLUMNS = ["output_id", "example_id", "sample_index", "metric", "value"]
MISSING_SLICE = "(missing)"
# Below this many pairs a percentile bootstrap is far too narrow (with 3 pairs it calls almost any difference
# "significant"), so the page shows the delta and interval but declines to give a verdict.
MIN_PAIRS_FOR_VERDICT = 10


@dataclass(frozen=True)
class MetricAggregate:
    """Mean of one metric over the examples of one slice (`slice_value` None = all examples)."""

    metric: str
    slice_value: str | None
    estimate: Estimate
    n_outputs: int
    n_missing: int  # outputs of this slice with no value for the metric (left out, not counted as 0)


@dataclass(frozen=True)
class MetricComparison:
    """Run B minus run A on one metric and slice; pairs matched by example and sample index."""

    metric: str
    slice_value: str | None
    comparison: Comparison
    n_unmatched: int  # outputs present in only one of the two runs

    @property
    def testable(self) -> bool:
        return self.comparison.n >= MIN_PAIRS_FOR_VERDICT and not math.isnan(self.comparison.p_value)

    @property
    def significant(self) -> bool:
        return self.testable and self.comparison.significant

    @property
    def p_text(self) -> str:
        p = self.comparison.p_value
        if math.isnan(p):
            return "–"
        return "< 0.001" if p < 0.001 else f"{p:.3f}"

    @property
    def verdict(self) -> str:
        c = self.comparison
        if not self.testable:
            return f"too few pairs to tell ({c.n} < {MIN_PAIRS_FOR_VERDICT})"
        if not c.significant:
            return "difference is not significant"
        return "difference is significant: B is higher" if c.delta > 0 else "difference is significant: B is lower"


def slice_label(value: Any) -> str:
    """A dataset attribute value as a slice name; missing values form their own slice."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return MISSING_SLICE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_scores(metric_run: MetricRun) -> pd.DataFrame:
    """One row per (output, metric): output_id, example_id, sample_index, metric, value (nan = undefined)."""
    from evalhub.metrics.models import MetricScore

    rows = list(
        MetricScore.objects.filter(metric_run=metric_run).values_list(
            "output_id", "output__example_id", "output__sample_index", "metric", "value"
        )
    )
    frame = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def load_attributes(example_ids: list[int]) -> pd.DataFrame:
    """Dataset attributes per example: index example_id, one column per attribute (values as slice labels)."""
    from evalhub.datasets.models import Example

    records = {pk: attrs or {} for pk, attrs in Example.objects.filter(pk__in=example_ids).values_list("pk", "attributes")}
    frame = pd.DataFrame.from_dict(records, orient="index")
    frame.index.name = "example_id"
    return frame


def _per_example(scores: pd.DataFrame, metric: str) -> pd.Series:
    """Mean over samples of each example (nan when no sample of that example has a value)."""
    sub = scores[scores["metric"] == metric]
    return sub.groupby("example_id")["value"].mean()


def _labels(example_ids: pd.Index, attributes: pd.DataFrame | None, slice_by: str | None) -> list[str]:
    if attributes is None or slice_by is None or slice_by not in attributes.columns:
        return [MISSING_SLICE] * len(example_ids)
    column = attributes[slice_by]
    return [slice_label(column.get(eid)) if eid in column.index else MISSING_SLICE for eid in example_ids]


def aggregate(
    scores: pd.DataFrame,
    *,
    attributes: pd.DataFrame | None = None,
    slice_by: str | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    confidence: float = 0.95,
) -> list[MetricAggregate]:
    """Per metric: the overall mean over examples with a bootstrap interval, then one row per slice of `slice_by`."""
    out: list[MetricAggregate] = []
    for metric in sorted(scores["metric"].unique()):
        sub = scores[scores["metric"] == metric]
        per_example = _per_example(scores, metric)

        def one(values: np.ndarray) -> Estimate:
            return bootstrap_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)

        out.append(
            MetricAggregate(
                metric=metric, slice_value=None, estimate=one(per_example.to_numpy()),
                n_outputs=len(sub), n_missing=int(sub["value"].isna().sum()),
            )
        )
        if slice_by is None:
            continue
        labels = _labels(per_example.index, attributes, slice_by)
        output_labels = dict(zip(per_example.index, labels))
        sub_labels = sub["example_id"].map(output_labels)
        for label, estimate in by_slice(per_example.to_numpy(), labels, one).items():
            in_slice = sub[sub_labels == label]
            out.append(
                MetricAggregate(
                    metric=metric, slice_value=str(label), estimate=estimate,
                    n_outputs=len(in_slice), n_missing=int(in_slice["value"].isna().sum()),
                )
            )
    return out


def compare(
    scores_a: pd.DataFrame,
    scores_b: pd.DataFrame,
    *,
    attributes: pd.DataFrame | None = None,
    slice_by: str | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    confidence: float = 0.95,
) -> list[MetricComparison]:
    """Paired bootstrap of B - A for every metric both runs scored, overall and per slice of `slice_by`."""
    out: list[MetricComparison] = []
    metrics = sorted(set(scores_a["metric"].unique()) & set(scores_b["metric"].unique()))
    key = ["example_id", "sample_index"]
    for metric in metrics:
        a = scores_a.loc[scores_a["metric"] == metric, [*key, "value"]]
        b = scores_b.loc[scores_b["metric"] == metric, [*key, "value"]]
        merged = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True)
        unmatched = int((merged["_merge"] != "both").sum())
        both = merged[merged["_merge"] == "both"]
        # A pair counts only when both sides have a value; then each side's matched samples are averaged per example.
        complete = both.dropna(subset=["value_a", "value_b"])
        per_example = complete.groupby("example_id")[["value_a", "value_b"]].mean()
        incomplete_examples = set(both["example_id"]) - set(per_example.index)
        example_ids = per_example.index.append(pd.Index(sorted(incomplete_examples), dtype=per_example.index.dtype))
        va = np.concatenate([per_example["value_a"].to_numpy(), np.full(len(incomplete_examples), np.nan)])
        vb = np.concatenate([per_example["value_b"].to_numpy(), np.full(len(incomplete_examples), np.nan)])

        def one(x: np.ndarray, y: np.ndarray) -> Comparison:
            return paired_bootstrap_test(x, y, n_resamples=n_resamples, confidence=confidence, seed=seed)

        out.append(MetricComparison(metric=metric, slice_value=None, comparison=one(va, vb), n_unmatched=unmatched))
        if slice_by is None:
            continue
        labels = _labels(example_ids, attributes, slice_by)
        for label, comparison in by_slice((va, vb), labels, one).items():
            out.append(MetricComparison(metric=metric, slice_value=str(label), comparison=comparison, n_unmatched=0))
    return out


def slice_names(attributes: pd.DataFrame, *, max_distinct: int = 50) -> list[str]:
    """Attributes worth slicing by: at least two distinct values and not one value per example (like an id)."""
    names: list[str] = []
    for column in attributes.columns:
        labels = {slice_label(v) for v in attributes[column].tolist()}
        if 2 <= len(labels) <= max_distinct and len(labels) < len(attributes):
            names.append(str(column))
    return sorted(names)
