"""Pages of the measure stage: metric runs, aggregates per model version, two-version comparison, metric trust.

Leads only (they name model versions). Every number links to the outputs behind it: the generation run's outputs
page filtered to the slice and sorted by that metric.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.metrics import charts, selectors, services, trust
from evalhub.metrics.aggregates import MIN_PAIRS_FOR_VERDICT, MetricAggregate, MetricComparison
from evalhub.metrics.export import FORMATS, export_response
from evalhub.metrics.forms import CompareForm, MetricRunForm
from evalhub.metrics.models import MetricRun
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role


def outputs_url(run: MetricRun, metric: str, *, slice_by: str | None, slice_value: str | None, order: str = "asc") -> str:
    """The outputs behind a number: that run's outputs, sorted by the metric, filtered to the slice."""
    params = {"metric_run": run.pk, "sort": metric, "order": order}
    if slice_by and slice_value is not None:
        params.update(attr=slice_by, value=slice_value)
    base = reverse("generation:detail", kwargs={"project_id": run.project_id, "run_id": run.generation_run_id})
    return f"{base}?{urlencode(params)}"


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{k}: {m}" if k not in ("__all__", "non_field_errors") else m for k, ms in exc.message_dict.items() for m in ms]
    return list(exc.messages)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest, access: Access) -> HttpResponse:
    initial: dict[str, Any] = {"metrics": services.DEFAULT_METRICS}
    if request.GET.get("generation_run", "").isdigit():
        initial["generation_run"] = int(request.GET["generation_run"])
    form = MetricRunForm(request.POST or None, project=access.project, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.metric_run_create(
                generation_run=form.cleaned_data["generation_run"], metrics=form.cleaned_data["metrics"],
                options=form.options(), created_by=request.user,
            )
        except ValidationError as exc:
            for field, errs in (exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]):
                form.add_error(field if field in form.fields else None, errs)
        else:
            messages.success(request, f"Metric run #{run.pk} queued.")
            return redirect("metrics:run", project_id=access.project.pk, metric_run_id=run.pk)
    runs = selectors.metric_runs(access)[:200]
    return render(request, "metrics/list.html", {"form": form, "runs": runs})


def _aggregate_sections(table: selectors.AggregateTable) -> list[dict[str, Any]]:
    def row(r: MetricAggregate) -> dict[str, Any]:
        return {"row": r, "url": outputs_url(table.metric_run, r.metric, slice_by=table.slice_by, slice_value=r.slice_value)}

    sections = []
    for i, metric in enumerate(table.metrics):
        overall = next(r for r in table.overall() if r.metric == metric)
        sections.append({
            "metric": metric,
            "overall": row(overall),
            "slices": [row(r) for r in table.slices_of(metric)],
            "corpus": table.metric_run.corpus.get(metric) if table.metric_run.corpus else None,
            "dist": charts.distribution_figure(table, metric), "dist_id": f"fig-dist-{i}",
            "slice_fig": charts.slices_figure(table, metric), "slice_id": f"fig-slice-{i}",
        })
    return sections


def _aggregate_context(request: HttpRequest, run: MetricRun) -> dict[str, Any]:
    context: dict[str, Any] = {"metric_run": run, "slice_by": request.GET.get("slice", "").strip()}
    if run.status != RunStatus.SUCCEEDED:
        return context
    try:
        table = selectors.run_aggregates(run, slice_by=context["slice_by"] or None)
    except ValidationError as exc:
        context["slice_error"] = " ".join(_errors(exc))
        table = selectors.run_aggregates(run)
        context["slice_by"] = ""
    context.update(table=table, sections=_aggregate_sections(table), overview=charts.overview_figure(table))
    return context


@project_view(min_role=Role.LEAD)
def run_detail(request: HttpRequest, access: Access, metric_run_id: int) -> HttpResponse:
    run = selectors.metric_run_get(access, metric_run_id)
    return render(request, "metrics/run.html", _aggregate_context(request, run))


@project_view(min_role=Role.LEAD)
def version_detail(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    """A model version's metrics: its metric runs (one per eval set and metric choice), the chosen one in full."""
    version = selectors.model_version_get(access, version_id)
    runs = list(selectors.metric_runs(access).filter(generation_run__model_version=version))
    gen_runs = GenerationRun.objects.filter(project=access.project, model_version=version).select_related("eval_version__dataset")
    chosen = None
    wanted = request.GET.get("metric_run", "")
    if wanted.isdigit():
        chosen = next((r for r in runs if r.pk == int(wanted)), None)
    if chosen is None:
        chosen = next((r for r in runs if r.status == RunStatus.SUCCEEDED), None)
    context: dict[str, Any] = {"version": version, "runs": runs, "generation_runs": gen_runs}
    if chosen is not None:
        context.update(_aggregate_context(request, chosen))
    return render(request, "metrics/version.html", context)


@project_view(min_role=Role.LEAD)
def compare(request: HttpRequest, access: Access) -> HttpResponse:
    data: Any = request.GET
    preselected = None
    if not data:
        # Opening the page bare shows the comparison a lead most likely came for instead of two empty selects.
        preselected = selectors.default_comparison(access.project)
        if preselected is not None:
            data = {"a": str(preselected.a.pk), "b": str(preselected.b.pk), "slice": ""}
    form = CompareForm(data or None, project=access.project)
    context: dict[str, Any] = {"form": form, "min_pairs": MIN_PAIRS_FOR_VERDICT, "preselected": preselected}
    if data and form.is_valid():
        a, b = form.cleaned_data["a"], form.cleaned_data["b"]
        slice_by = form.cleaned_data.get("slice") or None
        try:
            table = selectors.run_comparison(a, b, slice_by=slice_by)
        except ValidationError as exc:
            for field, errs in (exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]):
                form.add_error(field if field in form.fields else None, errs)
        else:
            def row(r: MetricComparison) -> dict[str, Any]:
                return {
                    "row": r,
                    "url_a": outputs_url(a, r.metric, slice_by=table.slice_by, slice_value=r.slice_value),
                    "url_b": outputs_url(b, r.metric, slice_by=table.slice_by, slice_value=r.slice_value),
                }

            sections = [
                {"metric": r.metric, "overall": row(r), "slices": [row(s) for s in table.slices_of(r.metric)]}
                for r in table.overall()
            ]
            context.update(table=table, sections=sections, figure=charts.comparison_figure(table))
    return render(request, "metrics/compare.html", context)


@project_view(min_role=Role.LEAD)
def trust_page(request: HttpRequest, access: Access) -> HttpResponse:
    cells, rated = trust.project_trust(access.project, n_resamples=1000)
    metrics = sorted({c.metric for c in cells})
    criteria = sorted({c.criterion for c in cells})
    grid = [(m, [next((c for c in cells if c.metric == m and c.criterion == k), None) for k in criteria]) for m in metrics]
    return render(request, "metrics/trust.html", {"cells": cells, "rated": rated, "criteria": criteria, "grid": grid})


@project_view(min_role=Role.LEAD)
def export(request: HttpRequest, access: Access, metric_run_id: int) -> HttpResponse:
    run = selectors.metric_run_get(access, metric_run_id)
    fmt = request.GET.get("file_format", "csv")
    if fmt not in FORMATS:
        return HttpResponseBadRequest(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    return export_response(run, fmt)
