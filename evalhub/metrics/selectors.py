"""Queries of the metrics app, scoped through an `Access` from the chokepoint, and the assembled numbers pages show.

`run_aggregates` and `run_comparison` turn stored scores into the rows a page or the API shows: the numbers come from
`evalhub.metrics.aggregates`, and each row carries what is needed to link to the outputs behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Avg, QuerySet
from django.http import Http404

from evalhub.generation.models import RunStatus
from evalhub.metrics import aggregates
from evalhub.metrics.models import MetricRun, MetricScore
from evalhub.projects.access import Access
from evalhub.projects.models import Project
from evalhub.tuning.models import ModelVersion


def metric_runs(access: Access) -> QuerySet[MetricRun]:
    return MetricRun.objects.filter(project=access.project).select_related(
        "generation_run__model_version", "generation_run__eval_version__dataset", "job"
    )


def metric_run_get(access: Access, metric_run_id: int | str) -> MetricRun:
    try:
        pk = int(metric_run_id)
    except (TypeError, ValueError):
        raise Http404("No such metric run") from None
    run = metric_runs(access).filter(pk=pk).first()
    if run is None:
        raise Http404("No such metric run")
    return run


def model_version_get(access: Access, version_id: int) -> ModelVersion:
    version = ModelVersion.objects.filter(project=access.project, pk=version_id).select_related("base_model").first()
    if version is None:
        raise Http404("No such model version")
    return version


def succeeded(qs: QuerySet[MetricRun]) -> QuerySet[MetricRun]:
    return qs.filter(status=RunStatus.SUCCEEDED)


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass
class AggregateTable:
    metric_run: MetricRun
    slice_by: str | None
    rows: list[aggregates.MetricAggregate]
    slice_names: list[str]
    per_output: dict[str, list[float]] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return sorted({r.metric for r in self.rows})

    def overall(self) -> list[aggregates.MetricAggregate]:
        return [r for r in self.rows if r.slice_value is None]

    def slices_of(self, metric: str) -> list[aggregates.MetricAggregate]:
        return [r for r in self.rows if r.metric == metric and r.slice_value is not None]


CACHE_SECONDS = 24 * 3600


def _cache_key(kind: str, runs: list[MetricRun], *parts: object) -> str | None:
    """Scores of a succeeded metric run never change, so its numbers can be cached; the creation time makes the
    key unique even where a database reuses ids."""
    if any(r.status != RunStatus.SUCCEEDED for r in runs):
        return None
    ids = ":".join(f"{r.pk}@{r.created_at.timestamp()}" for r in runs)
    return f"metrics-{kind}:{ids}:" + ":".join(str(p) for p in parts)


def run_aggregates(metric_run: MetricRun, *, slice_by: str | None = None, n_resamples: int = aggregates.N_RESAMPLES) -> AggregateTable:
    key = _cache_key("aggregates", [metric_run], slice_by or "", n_resamples)
    cached = cache.get(key) if key else None
    if cached is not None:
        rows, names, per_output = cached
        return AggregateTable(metric_run=metric_run, slice_by=slice_by or None, rows=rows, slice_names=names, per_output=per_output)
    scores = aggregates.load_scores(metric_run)
    attributes = aggregates.load_attributes(sorted(set(scores["example_id"].tolist())))
    names = aggregates.slice_names(attributes) if not attributes.empty else []
    if slice_by and slice_by not in attributes.columns:
        raise ValidationError({"slice": f"The eval set has no attribute “{slice_by}”."})
    rows = aggregates.aggregate(scores, attributes=attributes, slice_by=slice_by or None, n_resamples=n_resamples)
    per_output = {
        m: [v for v in scores.loc[scores["metric"] == m, "value"].tolist() if not math.isnan(v)] for m in scores["metric"].unique()
    }
    if key:
        cache.set(key, (rows, names, per_output), CACHE_SECONDS)
    return AggregateTable(metric_run=metric_run, slice_by=slice_by or None, rows=rows, slice_names=names, per_output=per_output)


@dataclass
class ComparisonTable:
    a: MetricRun
    b: MetricRun
    slice_by: str | None
    rows: list[aggregates.MetricComparison]
    slice_names: list[str]

    def overall(self) -> list[aggregates.MetricComparison]:
        return [r for r in self.rows if r.slice_value is None]

    def slices_of(self, metric: str) -> list[aggregates.MetricComparison]:
        return [r for r in self.rows if r.metric == metric and r.slice_value is not None]


def check_comparable(a: MetricRun, b: MetricRun) -> None:
    if a.pk == b.pk:
        raise ValidationError({"b": "Choose two different metric runs."})
    for side, run in (("a", a), ("b", b)):
        if run.status != RunStatus.SUCCEEDED:
            raise ValidationError({side: f"Metric run #{run.pk} has not succeeded ({run.status})."})
    if a.generation_run.eval_version_id != b.generation_run.eval_version_id:
        raise ValidationError(
            {"b": f"The two runs used different eval sets ({a.generation_run.eval_version} and "
                  f"{b.generation_run.eval_version}); a paired comparison needs the same examples."}
        )


@dataclass(frozen=True)
class DefaultComparison:
    """The pair the compare page opens with, and how A relates to B (said on the page so the choice is not a mystery)."""

    a: MetricRun
    b: MetricRun
    relation: str  # "parent", "ancestor" or "previous scored version"


def default_comparison(project: Project) -> DefaultComparison | None:
    """The most useful pair to show first: the newest scored model version as B, against its nearest scored ancestor
    (the lineage a fine-tune came from) on the same eval set, else the closest older scored version on that eval set.

    "Scored" means a succeeded metric run; of several on one (version, eval set), the newest is used. None when no two
    versions were scored on a common eval set.
    """
    runs = succeeded(MetricRun.objects.filter(project=project)).select_related(
        "generation_run__model_version", "generation_run__eval_version__dataset"
    ).order_by("-created_at", "-id")
    latest: dict[tuple[int, int], MetricRun] = {}
    for run in runs:
        latest.setdefault((run.generation_run.model_version_id, run.generation_run.eval_version_id), run)
    if not latest:
        return None
    versions = {v.pk: v for v in ModelVersion.objects.filter(project=project).only("pk", "number", "parent_id")}
    scored = sorted({vid for vid, _ in latest}, key=lambda vid: versions[vid].number, reverse=True)
    for vid in scored:
        # The version's own runs newest first, so its latest eval set wins when it has partners on several.
        for b in sorted((r for (v, _), r in latest.items() if v == vid), key=lambda r: (r.created_at, r.pk), reverse=True):
            eval_id = b.generation_run.eval_version_id
            seen, ancestor, hops = {vid}, versions[vid].parent_id, 1
            while ancestor is not None and ancestor in versions and ancestor not in seen:
                if (ancestor, eval_id) in latest:
                    return DefaultComparison(a=latest[(ancestor, eval_id)], b=b, relation="parent" if hops == 1 else "ancestor")
                seen.add(ancestor)
                ancestor, hops = versions[ancestor].parent_id, hops + 1
            number = versions[vid].number
            for older in scored:
                if versions[older].number < number and (older, eval_id) in latest:
                    return DefaultComparison(a=latest[(older, eval_id)], b=b, relation="previous scored version")
    return None


def run_comparison(
    a: MetricRun, b: MetricRun, *, slice_by: str | None = None, n_resamples: int = aggregates.N_RESAMPLES
) -> ComparisonTable:
    check_comparable(a, b)
    key = _cache_key("comparison", [a, b], slice_by or "", n_resamples)
    cached = cache.get(key) if key else None
    if cached is not None:
        rows, names = cached
        return ComparisonTable(a=a, b=b, slice_by=slice_by or None, rows=rows, slice_names=names)
    scores_a, scores_b = aggregates.load_scores(a), aggregates.load_scores(b)
    example_ids = sorted(set(scores_a["example_id"].tolist()) | set(scores_b["example_id"].tolist()))
    attributes = aggregates.load_attributes(example_ids)
    if slice_by and slice_by not in attributes.columns:
        raise ValidationError({"slice": f"The eval set has no attribute “{slice_by}”."})
    rows = aggregates.compare(scores_a, scores_b, attributes=attributes, slice_by=slice_by or None, n_resamples=n_resamples)
    names = aggregates.slice_names(attributes) if not attributes.empty else []
    if key:
        cache.set(key, (rows, names), CACHE_SECONDS)
    return ComparisonTable(a=a, b=b, slice_by=slice_by or None, rows=rows, slice_names=names)


def aggregate_dict(row: aggregates.MetricAggregate) -> dict[str, Any]:
    e = row.estimate
    return {
        "metric": row.metric, "slice": row.slice_value, "mean": _num(e.value), "low": _num(e.low), "high": _num(e.high),
        "confidence": e.confidence, "n_examples": e.n, "n_outputs": row.n_outputs, "n_missing": row.n_missing,
    }


def comparison_dict(row: aggregates.MetricComparison) -> dict[str, Any]:
    c = row.comparison
    return {
        "metric": row.metric, "slice": row.slice_value, "mean_a": _num(c.mean_a), "mean_b": _num(c.mean_b),
        "delta": _num(c.delta), "low": _num(c.low), "high": _num(c.high), "p_value": _num(c.p_value),
        "confidence": c.confidence, "significant": row.significant, "verdict": row.verdict, "n_pairs": c.n,
        "n_dropped": c.n_dropped, "n_unmatched": row.n_unmatched, "method": c.method,
    }


# --------------------------------------------------------------------------------------------------------------------
# The project overview (leads: it names model versions)

HEADLINE_METRICS = ("rougeL", "bertscore")


@dataclass(frozen=True)
class Headline:
    """Plain means of the pair the compare page opens with (`default_comparison`); `a` is the baseline."""

    a: MetricRun
    b: MetricRun
    relation: str
    means: list[tuple[str, float | None, float | None]]  # (metric, mean of a, mean of b)


def latest_headline(project: Project, metrics: tuple[str, ...] = HEADLINE_METRICS) -> Headline | None:
    """Means only (one aggregate query, no bootstrap): a glance for the overview, which links to the comparison page
    with its intervals and verdict for the same pair."""
    pair = default_comparison(project)
    if pair is None:
        return None
    a, b = pair.a, pair.b
    means = {
        (row["metric_run"], row["metric"]): row["mean"]
        for row in MetricScore.objects.filter(metric_run__in=[a.pk, b.pk], metric__in=metrics)
        .values("metric_run", "metric").annotate(mean=Avg("value")).order_by()
    }
    rows = [(m, means.get((a.pk, m)), means.get((b.pk, m))) for m in metrics
            if (a.pk, m) in means or (b.pk, m) in means]
    return Headline(a=a, b=b, relation=pair.relation, means=rows)
