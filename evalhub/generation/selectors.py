"""Queries of the generation app. Callers pass an `Access` (from the chokepoint) or a project it produced, so every
query is scoped to one project and an object of another project is simply not found (404)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from evalhub.generation.models import GenerationRun, Output
from evalhub.metrics.aggregates import slice_label
from evalhub.metrics.models import MetricRun, MetricScore
from evalhub.projects.access import Access


def generation_runs(access: Access) -> QuerySet[GenerationRun]:
    return (
        GenerationRun.objects.filter(project=access.project)
        .select_related("model_version", "model_version__base_model", "eval_version__dataset", "job")
    )


def generation_run_get(access: Access, run_id: int) -> GenerationRun:
    run = generation_runs(access).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such generation run")
    return run


def output_get(access: Access, run: GenerationRun, output_id: int) -> Output:
    output = Output.objects.filter(run=run, run__project=access.project, pk=output_id).select_related("example").first()
    if output is None:
        raise Http404("No such output")
    return output


@dataclass(frozen=True)
class OutputFilter:
    """What the outputs page and API accept: free text, one slice, and a sort by a metric of one metric run."""

    q: str = ""
    attr: str = ""
    value: str | None = None
    metric_run: MetricRun | None = None
    sort: str = ""  # a score name of `metric_run` (e.g. "rougeL"), or "" for example order
    descending: bool = False
    flag: str = ""  # "empty", "repaired", "length", "error"

    @property
    def sorts_by_metric(self) -> bool:
        return bool(self.metric_run is not None and self.sort)


def example_ids_in_slice(run: GenerationRun, attr: str, value: str) -> list[int]:
    """Examples of the run's eval set whose attribute `attr` has the slice label `value` (the same labelling the
    aggregates use, so a number and the outputs it links to always agree)."""
    rows = run.eval_version.examples.values_list("pk", "attributes")
    return [pk for pk, attrs in rows if slice_label((attrs or {}).get(attr)) == value]


def outputs_filtered(run: GenerationRun, flt: OutputFilter) -> QuerySet[Output]:
    qs = Output.objects.filter(run=run).select_related("example")
    if flt.q:
        qs = qs.filter(
            Q(text__icontains=flt.q) | Q(example__prompt__icontains=flt.q) | Q(example__reference__icontains=flt.q)
            | Q(example__external_id__iexact=flt.q)
        )
    if flt.attr and flt.value is not None:
        qs = qs.filter(example_id__in=example_ids_in_slice(run, flt.attr, flt.value))
    if flt.flag == "error":
        qs = qs.exclude(error="")
    elif flt.flag:
        wanted = [pk for pk, flags in Output.objects.filter(run=run).values_list("pk", "flags") if flt.flag in (flags or [])]
        qs = qs.filter(pk__in=wanted)
    if flt.sorts_by_metric:
        score = MetricScore.objects.filter(metric_run=flt.metric_run, output=OuterRef("pk"), metric=flt.sort).values("value")[:1]
        qs = qs.annotate(sort_score=Subquery(score))
        order = F("sort_score").desc(nulls_last=True) if flt.descending else F("sort_score").asc(nulls_last=True)
        return qs.order_by(order, "example__index", "sample_index")
    return qs.order_by("example__index", "sample_index")


def scores_for_outputs(metric_run: MetricRun | None, output_ids: list[int]) -> dict[int, dict[str, float | None]]:
    if metric_run is None or not output_ids:
        return {}
    out: dict[int, dict[str, float | None]] = {}
    for output_id, metric, value in MetricScore.objects.filter(metric_run=metric_run, output_id__in=output_ids).values_list(
        "output_id", "metric", "value"
    ):
        out.setdefault(output_id, {})[metric] = value
    return out


def metric_runs_of(run: GenerationRun) -> QuerySet[MetricRun]:
    return MetricRun.objects.filter(generation_run=run, project=run.project)


def attribute_names(run: GenerationRun) -> list[str]:
    names: set[str] = set(run.eval_version.attribute_names or [])
    if not names:
        for attrs in run.eval_version.examples.values_list("attributes", flat=True)[:500]:
            names.update((attrs or {}).keys())
    return sorted(names)


def score_names(metric_run: MetricRun | None) -> list[str]:
    if metric_run is None:
        return []
    return sorted(set(MetricScore.objects.filter(metric_run=metric_run).values_list("metric", flat=True).distinct()))


def run_counts(run: GenerationRun) -> dict[str, Any]:
    return {"outputs": Output.objects.filter(run=run).count(), "examples": run.eval_version.row_count}


def runs_by_status(project: Any) -> dict[str, int]:
    """Generation runs of the project by status (the project overview)."""
    return dict(GenerationRun.objects.filter(project=project).values_list("status").annotate(n=Count("id")).order_by())
