"""Pages of the data stage: datasets and versions, upload, quality reports, curation queues.

Views parse input, go through the access chokepoint (`project_view` / the selectors), call a service and render.
Annotators and reviewers read datasets and label in curation queues; only leads change data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.db.models.fields.json import KeyTextTransform
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.datasets import ingest, selectors, services, uploads
from evalhub.datasets.charts import field_rows, report_figures
from evalhub.datasets.forms import (
    MAPPING_FIELDS,
    CurationQueueForm,
    DecisionForm,
    QualityForm,
    RebalanceForm,
    SplitForm,
    UploadForm,
    mapping_initial,
)
from evalhub.datasets.models import CurationItem, CurationQueue, DatasetVersion
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role

EXAMPLES_PER_PAGE = 25


def _validation_messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [m for msgs in exc.message_dict.values() for m in msgs]
    return list(exc.messages)


# --------------------------------------------------------------------------------------------------------------------
# Datasets and versions


def _lineage_rows(versions: list[DatasetVersion]) -> list[tuple[DatasetVersion, int]]:
    """Versions in tree order (each followed by the versions made from it) with their depth, for indentation."""
    ids = {v.pk for v in versions}
    children: dict[int | None, list[DatasetVersion]] = {}
    for v in versions:
        children.setdefault(v.parent_id if v.parent_id in ids else None, []).append(v)
    rows: list[tuple[DatasetVersion, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for v in sorted(children.get(parent, []), key=lambda x: x.number):
            rows.append((v, depth))
            walk(v.pk, depth + 1)

    walk(None, 0)
    return rows


@project_view()
def dataset_list(request: HttpRequest, access: Access) -> HttpResponse:
    datasets = [(d, _lineage_rows(list(d.versions.all()))) for d in selectors.dataset_list(access.project)]
    queues = list(selectors.project_queues(access.project)[:20])
    return render(request, "datasets/list.html", {"datasets": datasets, "queues": queues})


def _preview_or_errors(path: Path, fmt: str | None) -> tuple[ingest.Preview | None, list[str]]:
    try:
        return ingest.preview(path, fmt or None), []
    except ingest.DatasetImportError as exc:
        return None, [str(e) for e in exc.errors]
    except Exception as exc:  # noqa: BLE001 - the preview is a convenience: the import itself reports the problem precisely
        return None, [f"{path.name}: the file could not be previewed ({type(exc).__name__})"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _render_upload(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    form = context["form"]
    context["mapping_fields"] = [form[name] for name in (*MAPPING_FIELDS, "attributes")]
    context["max_mib"] = max(1, settings.DATASET_MAX_UPLOAD_BYTES // (1024 * 1024))
    preview = context.get("preview")
    if preview is not None:
        context["preview_rows"] = [[_cell(row.get(c)) for c in preview.columns] for row in preview.rows]
    return render(request, "datasets/upload.html", context, status=status)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def dataset_upload(request: HttpRequest, access: Access) -> HttpResponse:
    project = access.project
    initial: dict[str, Any] = {}
    if request.method == "GET" and request.GET.get("dataset"):
        initial["dataset"] = request.GET["dataset"]
    form = UploadForm(request.POST or None, request.FILES or None, project=project, initial=initial)
    context: dict[str, Any] = {"form": form, "errors": [], "truncated": False, "preview": None, "staged_name": ""}
    if request.method != "POST" or not form.is_valid():
        return _render_upload(request, context, status=400 if request.method == "POST" else 200)

    uid = request.user.pk
    token = form.cleaned_data.get("staged") or ""
    uploaded = form.cleaned_data.get("file")
    if uploaded is not None:
        uploads.discard(token, project_id=project.pk, user_id=uid)
        if uploaded.size > settings.DATASET_MAX_UPLOAD_BYTES:
            context["errors"] = [str(ingest.RowError(uploaded.name, None, None,
                                                     f"the file is {uploaded.size:,} bytes; the limit is "
                                                     f"{settings.DATASET_MAX_UPLOAD_BYTES:,} bytes"))]
            return _render_upload(request, context, status=400)
        token = uploads.stage(uploaded, project_id=project.pk, user_id=uid)
    path = uploads.staged_path(token, project_id=project.pk, user_id=uid)
    if path is None:
        form.add_error("file", "The uploaded file is gone (it is kept for a day); choose it again.")
        return _render_upload(request, context, status=400)
    display_name = Path(uploaded.name).name if uploaded is not None else path.name
    fmt = form.cleaned_data.get("fmt") or None
    preview, preview_errors = _preview_or_errors(path, fmt)
    context.update(preview=preview, staged_name=display_name)

    if request.POST.get("action") == "preview":
        if preview_errors:
            uploads.discard(token, project_id=project.pk, user_id=uid)
            context["errors"] = preview_errors
            return _render_upload(request, context, status=400)
        data = form.cleaned_data.copy()
        data["staged"] = token
        data.pop("file", None)
        if not form.has_mapping() and preview is not None:
            data.update(mapping_initial(preview.suggested))
        data["dataset"] = data["dataset"].pk if data.get("dataset") else ""
        context["form"] = UploadForm(initial=data, project=project)
        return _render_upload(request, context)

    mapping = form.mapping(preview.suggested if preview else None)
    try:
        version = services.dataset_import(
            project=project, user=request.user, path=path, display_name=display_name, mapping=mapping,
            dataset=form.cleaned_data.get("dataset"), dataset_name=form.cleaned_data.get("dataset_name") or None,
            fmt=fmt, note=form.cleaned_data.get("note") or "",
        )
    except ingest.DatasetImportError as exc:
        context.update(errors=[str(e) for e in exc.errors], truncated=exc.truncated)
    except ValidationError as exc:
        context["errors"] = _validation_messages(exc)
    else:
        uploads.discard(token, project_id=project.pk, user_id=uid)
        messages.success(request, f"Imported {version.row_count:,} examples as {version}.")
        return redirect("datasets:version", project_id=project.pk, version_id=version.pk)
    # Nothing was stored; the staged file goes too, so a failed upload leaves no trace.
    uploads.discard(token, project_id=project.pk, user_id=uid)
    context["mapping_used"] = services.mapping_to_dict(mapping)
    context["form"] = UploadForm(initial={**form.cleaned_data, "file": None, "staged": "",
                                          "dataset": form.cleaned_data["dataset"].pk
                                          if form.cleaned_data.get("dataset") else "",
                                          **mapping_initial(mapping)}, project=project)
    return _render_upload(request, context, status=400)


TOP_VALUES = 8


def _value_counts(version: DatasetVersion, name: str) -> dict[str, Any]:
    """The commonest values of an attribute, and how many values and rows the rest come to."""
    rows = (version.examples.annotate(v=KeyTextTransform(name, "attributes")).values("v")
            .annotate(n=Count("id")).order_by("-n", "v"))
    top = [(r["v"] or "", r["n"]) for r in rows[:TOP_VALUES]]
    n_values = rows.count()
    shown = sum(n for _, n in top)
    return {"top": top, "more_values": max(0, n_values - len(top)), "more_rows": version.row_count - shown}


@project_view()
def version_detail(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    _, version = selectors.version_get(request.user, access.project.pk, version_id)
    query = request.GET.get("q", "")[:200]
    page = Paginator(selectors.examples_search(version, query), EXAMPLES_PER_PAGE).get_page(request.GET.get("page"))
    attributes = [(name, _value_counts(version, name)) for name in version.attribute_names or []]
    labels = list(version.examples.values("label").annotate(n=Count("id")).order_by("-n", "label")[:30]) \
        if version.has_label else []
    context: dict[str, Any] = {
        "version": version,
        "dataset": version.dataset,
        "lineage": selectors.version_lineage(version),
        "page": page,
        "query": query,
        "attributes": attributes,
        "labels": labels,
        "reports": selectors.version_reports(version)[:10],
        "queues": selectors.version_queues(version),
        "siblings": version.dataset.versions.order_by("number"),
    }
    if access.is_lead:
        context.update(
            split_form=SplitForm(version=version, prefix="split"),
            rebalance_form=RebalanceForm(version=version, prefix="rebalance"),
            quality_form=QualityForm(version=version, prefix="quality",
                                     initial={"compare_to": _default_compare(version)}),
            queue_form=CurationQueueForm(prefix="queue", initial={
                "name": f"Review {version}", "sample_size": min(version.row_count, 50),
                "label_choices": ", ".join(r["label"] for r in labels if r["label"]) if len(labels) <= 9 else "",
            }),
        )
    return render(request, "datasets/version.html", context)


def _default_compare(version: DatasetVersion) -> int | None:
    """For a split child, suggest checking it against its sibling held-out split (the usual leakage question)."""
    if version.split_name and version.parent_id:
        other = "eval" if version.split_name != "eval" else "train"
        sibling = version.parent.children.filter(split_name=other).order_by("-number").first()  # type: ignore[union-attr]
        return sibling.pk if sibling else None
    return None


def _form_error_redirect(request: HttpRequest, form: Any, version: DatasetVersion) -> HttpResponse:
    errors = [e for errs in form.errors.values() for e in errs]
    messages.error(request, "Nothing was changed: " + " ".join(errors))
    return redirect("datasets:version", project_id=version.dataset.project_id, version_id=version.pk)


@project_view(min_role=Role.LEAD)
@require_POST
def version_split(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    _, version = selectors.version_get(request.user, access.project.pk, version_id, min_role=Role.LEAD)
    form = SplitForm(request.POST, version=version, prefix="split")
    if not form.is_valid():
        return _form_error_redirect(request, form, version)
    try:
        children = services.version_split(version=version, user=request.user, fractions=form.fractions(),
                                          seed=form.cleaned_data["seed"],
                                          stratify_by=form.cleaned_data.get("stratify_by") or None)
    except ValidationError as exc:
        messages.error(request, " ".join(_validation_messages(exc)))
    else:
        messages.success(request, "Split into " + ", ".join(f"{c.split_name} v{c.number} ({c.row_count})"
                                                            for c in children) + ".")
    return redirect("datasets:version", project_id=access.project.pk, version_id=version.pk)


@project_view(min_role=Role.LEAD)
@require_POST
def version_rebalance(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    _, version = selectors.version_get(request.user, access.project.pk, version_id, min_role=Role.LEAD)
    form = RebalanceForm(request.POST, version=version, prefix="rebalance")
    if not form.is_valid():
        return _form_error_redirect(request, form, version)
    try:
        child = services.version_rebalance(version=version, user=request.user, attribute=form.cleaned_data["attribute"],
                                           mode=form.cleaned_data["mode"], seed=form.cleaned_data["seed"])
    except ValidationError as exc:
        messages.error(request, " ".join(_validation_messages(exc)))
        return redirect("datasets:version", project_id=access.project.pk, version_id=version.pk)
    messages.success(request, f"Created {child} with {child.row_count:,} rows balanced over "
                              f"{form.cleaned_data['attribute']}.")
    return redirect("datasets:version", project_id=access.project.pk, version_id=child.pk)


# --------------------------------------------------------------------------------------------------------------------
# Quality reports


@project_view(min_role=Role.LEAD)
@require_POST
def quality_run(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    _, version = selectors.version_get(request.user, access.project.pk, version_id, min_role=Role.LEAD)
    form = QualityForm(request.POST, version=version, prefix="quality")
    if not form.is_valid():
        return _form_error_redirect(request, form, version)
    try:
        report = services.quality_report_request(version=version, user=request.user,
                                                 compare_to=form.cleaned_data.get("compare_to"))
    except ValidationError as exc:
        messages.error(request, " ".join(_validation_messages(exc)))
        return redirect("datasets:version", project_id=access.project.pk, version_id=version.pk)
    return redirect("datasets:quality", project_id=access.project.pk, report_id=report.pk)


@project_view()
def quality_detail(request: HttpRequest, access: Access, report_id: int) -> HttpResponse:
    _, report = selectors.report_get(request.user, access.project.pk, report_id)
    data = report.report or {}
    context: dict[str, Any] = {"report": report, "job": report.job, "data": data, "version": report.version}
    if data:
        context.update(figures=report_figures(data), field_rows=field_rows(data))
    return render(request, "datasets/quality.html", context)


# --------------------------------------------------------------------------------------------------------------------
# Curation


@project_view(min_role=Role.LEAD)
@require_POST
def curation_create(request: HttpRequest, access: Access, version_id: int) -> HttpResponse:
    _, version = selectors.version_get(request.user, access.project.pk, version_id, min_role=Role.LEAD)
    form = CurationQueueForm(request.POST, prefix="queue")
    if not form.is_valid():
        return _form_error_redirect(request, form, version)
    data = form.cleaned_data
    try:
        queue = services.curation_queue_create(
            version=version, name=data["name"], created_by=request.user, instructions=data.get("instructions") or "",
            label_choices=form.labels(), sample_size=data.get("sample_size"), seed=data["seed"],
            claim_minutes=data["claim_minutes"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(_validation_messages(exc)))
        return redirect("datasets:version", project_id=access.project.pk, version_id=version.pk)
    messages.success(request, f"Queue “{queue.name}” created with {queue.items.count()} examples.")
    return redirect("datasets:curation", project_id=access.project.pk, queue_id=queue.pk)


@project_view()
def curation_detail(request: HttpRequest, access: Access, queue_id: int) -> HttpResponse:
    _, queue = selectors.queue_get(request.user, access.project.pk, queue_id)
    context: dict[str, Any] = {
        "queue": queue,
        "version": queue.version,
        "progress": selectors.queue_progress(queue, request.user),
        "my_items": selectors.my_decided_items(queue, request.user).select_related("example")[:200],
    }
    if access.is_lead:
        context.update(summary=services.curation_summary(queue), annotators=selectors.queue_annotators(queue),
                       recent=queue.items.exclude(decision=CurationItem.Decision.PENDING)
                       .select_related("example", "decided_by").order_by("-decided_at")[:50])
    return render(request, "datasets/curation_detail.html", context)


def _history_neighbours(queue: CurationQueue, user: Any, item: CurationItem | None) -> tuple[int | None, int | None]:
    """(previous, next) among the items this annotator decided, ordered by when; for the j/k keys."""
    history = list(selectors.my_decided_items(queue, user).order_by("decided_at", "position")
                   .values_list("pk", flat=True))
    if item is None or item.pk not in history:
        return (history[-1] if history else None), None
    i = history.index(item.pk)
    return (history[i - 1] if i > 0 else None), (history[i + 1] if i + 1 < len(history) else None)


@project_view()
@require_http_methods(["GET", "POST"])
def curation_annotate(request: HttpRequest, access: Access, queue_id: int) -> HttpResponse:
    _, queue = selectors.queue_get(request.user, access.project.pk, queue_id)
    url = reverse("datasets:curation-annotate", kwargs={"project_id": access.project.pk, "queue_id": queue.pk})
    error: list[str] = []
    form = DecisionForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            posted = queue.items.filter(pk=form.cleaned_data["item"]).first()
            if posted is None:
                raise Http404("No such example in this queue")
            data = form.cleaned_data
            try:
                services.curation_decide(
                    item=posted, user=request.user, decision=data["decision"], label=data.get("label") or "",
                    fixed_prompt=data.get("fixed_prompt") or "", fixed_reference=data.get("fixed_reference") or "",
                    comment=data.get("comment") or "", seconds_spent=data.get("seconds") or 0.0,
                )
            except ValidationError as exc:
                error = _validation_messages(exc)
            else:
                if request.POST.get("return") == "history":
                    _, after = _history_neighbours(queue, request.user, posted)
                    return redirect(f"{url}?item={after}" if after else url)
                return redirect(url)
        else:
            error = [f"{k}: {' '.join(v)}" for k, v in form.errors.items()]

    reviewing = False
    item: CurationItem | None = None
    wanted = request.GET.get("item") or (request.POST.get("item") if error else None)
    if wanted:
        item = selectors.my_decided_items(queue, request.user).filter(pk=wanted).select_related("example").first()
        if item is None:  # not one of mine: fall back to the example this annotator holds
            item = queue.items.filter(pk=wanted, claimed_by=request.user,
                                      decision=CurationItem.Decision.PENDING).select_related("example").first()
        reviewing = item is not None and item.decision != CurationItem.Decision.PENDING
    if item is None:
        item = services.curation_next_item(queue=queue, user=request.user)
    previous, nxt = _history_neighbours(queue, request.user, item if reviewing else None)
    example = item.example if item else None
    context: dict[str, Any] = {
        "queue": queue,
        "item": item,
        "example": example,
        "editable_prompt": services.example_editable_prompt(example) if example else "",
        "chat_context": example.messages[:-1] if example and example.messages else [],
        "reviewing": reviewing,
        "previous_id": previous,
        "next_id": nxt,
        "progress": selectors.queue_progress(queue, request.user),
        "errors": error,
        "labels": list(enumerate(queue.label_choices or [], start=1)),
        "current_label": (item.label or (example.label if example else "")) if item else "",
    }
    return render(request, "datasets/curation_annotate.html", context, status=400 if error else 200)


@project_view(min_role=Role.LEAD)
@require_POST
def curation_apply(request: HttpRequest, access: Access, queue_id: int) -> HttpResponse:
    _, queue = selectors.queue_get(request.user, access.project.pk, queue_id, min_role=Role.LEAD)
    try:
        version = services.curation_apply(queue=queue, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(_validation_messages(exc)))
        return redirect("datasets:curation", project_id=access.project.pk, queue_id=queue.pk)
    messages.success(request, f"Created {version} from the decisions of “{queue.name}”.")
    return redirect("datasets:version", project_id=access.project.pk, version_id=version.pk)
