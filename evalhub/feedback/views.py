"""Pages of the feedback stage: exports (build, inspect, download), retrain from feedback, and the project timeline.
Leads only: exports and retrains name model versions and annotators."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.feedback import selectors, services
from evalhub.feedback.forms import ExportForm, RetrainForm
from evalhub.feedback.models import RetrainStage
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role

CONTENT_TYPES = {"jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}


def _add_errors(form: Any, exc: ValidationError) -> None:
    """A service's field-keyed errors next to the form fields they name; the others at the top."""
    items = exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]
    for field, errs in items:
        target = field if field in form.fields else None
        form.add_error(
            target,
            [f"{field}: {e}" if target is None and field not in (None, "__all__") else e for e in errs],
        )


@project_view(min_role=Role.LEAD)
def feedback_list(request: HttpRequest, access: Access) -> HttpResponse:
    return render(
        request,
        "feedback/list.html",
        {
            "exports": selectors.exports(access)[:100],
            "pipelines": selectors.pipelines(access)[:50],
        },
    )


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def export_create(request: HttpRequest, access: Access) -> HttpResponse:
    form = ExportForm(request.POST or None, project=access.project)
    if request.method == "POST" and form.is_valid():
        try:
            export = services.export_create(
                project=access.project,
                user=request.user,
                options=form.options(),
                name=form.cleaned_data.get("name") or "",
                formats=form.cleaned_data.get("formats") or [],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(
                request,
                f"Exported {export.records:,} records from {export.annotations_used:,} "
                f"annotations as {export.version}.",
            )
            return redirect("feedback:export-detail", project_id=access.project.pk, export_id=export.pk)
    return render(request, "feedback/export_form.html", {"form": form})


@project_view(min_role=Role.LEAD)
def export_detail(request: HttpRequest, access: Access, export_id: int) -> HttpResponse:
    export = selectors.export_get(access, export_id)
    counts = export.counts or {}
    sources = [
        {
            "name": s,
            "candidates": counts.get("candidates", {}).get(s, 0),
            "kept": counts.get("kept", {}).get(s, 0),
            "dropped": sorted((counts.get("dropped", {}).get(s) or {}).items(), key=lambda kv: -kv[1]),
        }
        for s in export.sources
    ]
    preview = list(export.version.examples.order_by("index")[:5]) if export.version else []
    return render(
        request,
        "feedback/export_detail.html",
        {
            "export": export,
            "sources": sources,
            "preview": preview,
            "reason_words": services._REASON_WORDS,
            "filters": sorted((export.filters or {}).items()),
        },
    )


def download_response(export: Any, fmt: str) -> HttpResponseBase:
    path = services.export_file(export, fmt)
    stem = f"feedback-export-{export.pk}"
    if fmt == "hf":
        from evalhub.tuning.downloads import zip_folder

        response = StreamingHttpResponse(zip_folder(path, arcroot=stem), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{stem}-hf.zip"'
        return response
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"{stem}.{fmt}",
        content_type=CONTENT_TYPES.get(fmt, "application/octet-stream"),
    )


@project_view(min_role=Role.LEAD)
def export_download(request: HttpRequest, access: Access, export_id: int) -> HttpResponseBase:
    export = selectors.export_get(access, export_id)
    try:
        return download_response(export, request.GET.get("file", "jsonl"))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("feedback:export-detail", project_id=access.project.pk, export_id=export.pk)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def retrain_create(request: HttpRequest, access: Access) -> HttpResponse:
    initial: dict[str, Any] = {}
    if request.GET.get("parent", "").isdigit():
        initial["parent"] = int(request.GET["parent"])
    form = RetrainForm(request.POST or None, project=access.project, initial=initial)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            sft, dpo = form.export_options()
            pipeline = services.retrain_start(
                project=access.project,
                user=request.user,
                parent_id=d["parent"],
                eval_version=d["eval_version"],
                mode=d["mode"],
                sft_options=sft,
                dpo_options=dpo,
                hyperparameters={
                    "sft": d.get("sft_hyperparameters") or {},
                    "dpo": d.get("dpo_hyperparameters") or {},
                },
                decode={"max_new_tokens": d["max_new_tokens"]},
                metrics=d["metrics"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Retrain #{pipeline.pk} started: training is queued.")
            return redirect("feedback:pipeline", project_id=access.project.pk, pipeline_id=pipeline.pk)
    return render(request, "feedback/retrain_form.html", {"form": form})


def _stages(p: Any) -> list[dict[str, Any]]:
    """The chain as the page shows it: each step with its job(s), in order."""
    steps: list[dict[str, Any]] = []
    if p.mode in ("sft", "sft_dpo"):
        steps.append(
            {
                "key": RetrainStage.TRAIN_SFT,
                "title": "Train (SFT)",
                "objects": [p.sft_run],
                "export": p.sft_export,
            }
        )
    if p.mode in ("dpo", "sft_dpo"):
        steps.append(
            {
                "key": RetrainStage.TRAIN_DPO,
                "title": "Train (DPO)",
                "objects": [p.dpo_run],
                "export": p.dpo_export,
            }
        )
    steps.append(
        {
            "key": RetrainStage.GENERATE,
            "title": f"Generate on {p.eval_version}",
            "objects": [p.new_generation, p.parent_generation],
        }
    )
    steps.append(
        {"key": RetrainStage.SCORE, "title": "Metrics", "objects": [p.new_metrics, p.parent_metrics]}
    )
    steps.append({"key": RetrainStage.DONE, "title": "Arena campaign", "objects": []})
    order = [s["key"] for s in steps]
    current = order.index(p.stage) if p.stage in order else len(order)
    for i, s in enumerate(steps):
        s["jobs"] = [o.job for o in s["objects"] if o is not None and getattr(o, "job", None) is not None]
        s["state"] = (
            "done"
            if i < current or p.stage == RetrainStage.DONE
            else "current"
            if i == current
            else "waiting"
        )
    return steps


@project_view(min_role=Role.LEAD)
def pipeline_detail(request: HttpRequest, access: Access, pipeline_id: int) -> HttpResponse:
    p = selectors.pipeline_get(access, pipeline_id)
    entry = None
    if p.new_version_id:
        entry = next(
            (
                e
                for e in selectors.timeline(access.project, with_comparisons=False)
                if e.version.pk == p.new_version_id
            ),
            None,
        )
        if entry is not None and p.status == "succeeded":
            selectors._compare(entry, p)
    return render(request, "feedback/pipeline.html", {"p": p, "stages": _stages(p), "entry": entry})


@project_view(min_role=Role.LEAD)
@require_POST
def pipeline_advance(request: HttpRequest, access: Access, pipeline_id: int) -> HttpResponse:
    p = selectors.pipeline_get(access, pipeline_id)
    before = (p.stage, p.status)
    p = services.retrain_advance(p)
    messages.info(
        request,
        "Moved on: " + p.get_stage_display()
        if (p.stage, p.status) != before
        else "Nothing to do yet: the current step is still running.",
    )
    return redirect("feedback:pipeline", project_id=access.project.pk, pipeline_id=p.pk)


@project_view(min_role=Role.LEAD)
@require_POST
def pipeline_cancel(request: HttpRequest, access: Access, pipeline_id: int) -> HttpResponse:
    p = services.retrain_cancel(selectors.pipeline_get(access, pipeline_id))
    messages.info(request, f"Retrain #{p.pk} is {p.status}.")
    return redirect("feedback:pipeline", project_id=access.project.pk, pipeline_id=p.pk)


@project_view(min_role=Role.LEAD)
def timeline(request: HttpRequest, access: Access) -> HttpResponse:
    return render(request, "feedback/timeline.html", {"entries": selectors.timeline(access.project)})
