"""Pages of the generation stage. Leads only: these pages name the model version behind every output.

Output text is untrusted (a model can emit markup) and is always rendered escaped; it is shown clipped in lists and
in full on the output's own page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from evalhub.generation import selectors, services
from evalhub.generation.forms import GenerationRunForm
from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.metrics.models import MetricRun
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role

OUTPUTS_PER_PAGE = 25
CLIP_CHARS = 1500
FLAGS = [("", "any"), ("empty", "empty"), ("repaired", "repaired text"), ("length", "hit max tokens"), ("error", "error")]


def _apply_errors(form: GenerationRunForm, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, [f"{field}: {e}" if field not in form.fields else e for e in errors])


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest, access: Access) -> HttpResponse:
    form = GenerationRunForm(request.POST or None, project=access.project)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.generation_run_create(
                project=access.project, model_version=form.cleaned_data["model_version"],
                eval_version=form.cleaned_data["eval_version"], settings=form.decode_settings(), created_by=request.user,
            )
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, f"Generation run #{run.pk} queued.")
            return redirect("generation:detail", project_id=access.project.pk, run_id=run.pk)
    runs = selectors.generation_runs(access)[:200]
    return render(request, "generation/list.html", {"form": form, "runs": runs})


def _filter_from(request: HttpRequest, run: GenerationRun) -> tuple[selectors.OutputFilter, list[MetricRun]]:
    metric_runs = list(selectors.metric_runs_of(run).filter(status=RunStatus.SUCCEEDED))
    metric_run: MetricRun | None = None
    wanted = request.GET.get("metric_run", "")
    if wanted.isdigit():
        metric_run = next((m for m in metric_runs if m.pk == int(wanted)), None)
    elif metric_runs:
        metric_run = metric_runs[0]
    attr = request.GET.get("attr", "").strip()
    value = request.GET.get("value")
    flt = selectors.OutputFilter(
        q=request.GET.get("q", "").strip()[:200],
        attr=attr,
        value=value if attr and value is not None else None,
        metric_run=metric_run,
        sort=request.GET.get("sort", "").strip(),
        descending=request.GET.get("order") == "desc",
        flag=request.GET.get("flag", "") if request.GET.get("flag", "") in {f for f, _ in FLAGS} else "",
    )
    return flt, metric_runs


@project_view(min_role=Role.LEAD)
def run_detail(request: HttpRequest, access: Access, run_id: int) -> HttpResponse:
    run = selectors.generation_run_get(access, run_id)
    flt, metric_runs = _filter_from(request, run)
    page = Paginator(selectors.outputs_filtered(run, flt), OUTPUTS_PER_PAGE).get_page(request.GET.get("page"))
    outputs = list(page.object_list)
    scores = selectors.scores_for_outputs(flt.metric_run, [o.pk for o in outputs])
    names = selectors.score_names(flt.metric_run)
    rows = [{"output": o, "scores": [(n, scores.get(o.pk, {}).get(n)) for n in names]} for o in outputs]
    params = {k: v for k, v in request.GET.items() if k != "page"}
    context: dict[str, Any] = {
        "run": run,
        "rows": rows,
        "page": page,
        "flt": flt,
        "metric_runs": metric_runs,
        "score_names": names,
        "attribute_names": selectors.attribute_names(run),
        "flags": FLAGS,
        "query": urlencode(params),
        "clip": CLIP_CHARS,
        "counts": selectors.run_counts(run),
    }
    return render(request, "generation/detail.html", context)


@project_view(min_role=Role.LEAD)
def output_detail(request: HttpRequest, access: Access, run_id: int, output_id: int) -> HttpResponse:
    run = selectors.generation_run_get(access, run_id)
    output = selectors.output_get(access, run, output_id)
    scores = [
        (mr, {s.metric: s.value for s in mr.scores.filter(output=output)})
        for mr in selectors.metric_runs_of(run).filter(status=RunStatus.SUCCEEDED)
    ]
    return render(request, "generation/output.html", {"run": run, "output": output, "scores": scores})
