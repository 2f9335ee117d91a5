"""Pages of the reviews stage.

Annotators: campaign list and overview, the keyboard-first rating page (reached only by opaque assignment tokens).
Reviewers: adjudication queue, corrections with diffs, agreement. Leads: rubrics, campaigns, gold items, results
with model versions, exports. Every view goes through `project_view` (the access chokepoint) first.
"""

from __future__ import annotations

import io
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role
from evalhub.reviews import analysis, selectors, services
from evalhub.reviews.diff import diff_segments, diff_stats
from evalhub.reviews.forms import (
    CampaignForm,
    CriterionFormSet,
    GuidelinesForm,
    RubricForm,
    ThresholdForm,
    criterion_initial,
    field_name,
    rating_values_from_post,
)
from evalhub.reviews.models import (
    AdjudicationStatus,
    AssignmentStatus,
    Campaign,
    CampaignItem,
    Correction,
    Rating,
    Rubric,
    Scale,
)
from evalhub.reviews.rubric_templates import TEMPLATES


def _messages_of(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return exc.message_dict
    return {"__all__": list(exc.messages)}


# --------------------------------------------------------------------------------------------------------------------
# Overview


@project_view()
def review_list(request: HttpRequest, access: Access) -> HttpResponse:
    campaigns = selectors.campaigns_for(access)
    rows = [
        (c, selectors.progress_for(c, access.user),
         c.adjudications.filter(status=AdjudicationStatus.OPEN).count() if access.is_reviewer else 0)
        for c in campaigns
    ]
    rubrics = list(selectors.rubrics_of(access.project)) if access.is_lead else []
    return render(request, "reviews/list.html", {"rows": rows, "rubrics": rubrics})


# --------------------------------------------------------------------------------------------------------------------
# Rubrics (leads)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def rubric_list(request: HttpRequest, access: Access) -> HttpResponse:
    if request.method == "POST":
        try:
            rubric = services.rubric_copy_template(
                project=access.project, template=request.POST.get("template", ""), created_by=access.user
            )
        except ValidationError as exc:
            for msgs in _messages_of(exc).values():
                for m in msgs:
                    messages.error(request, m)
        else:
            messages.success(request, f"Copied the template into “{rubric.name}”. Edit it to fit your task.")
            return redirect("reviews:rubric-edit", project_id=access.project.pk, rubric_id=rubric.pk)
    rubrics = selectors.rubrics_of(access.project)
    return render(request, "reviews/rubrics.html", {"rubrics": rubrics, "templates": TEMPLATES})


def _criteria_from_formset(formset: Any) -> list[dict[str, Any]]:
    return [f.spec() for f in formset.forms if f.has_changed() and f.is_valid() and not f.cleaned_data.get("DELETE")]


def _service_errors_to_forms(exc: ValidationError, form: Any, formset: Any) -> list[str]:
    """Put "criteria.<n>.<field>" errors on the n-th filled criterion form; return the rest as page messages."""
    filled = [f for f in formset.forms if f.has_changed() and not f.cleaned_data.get("DELETE")]
    rest: list[str] = []
    for key, msgs in _messages_of(exc).items():
        parts = key.split(".")
        if parts[0] == "criteria" and len(parts) == 3 and parts[1].isdigit() and int(parts[1]) <= len(filled):
            target = filled[int(parts[1]) - 1]
            target.add_error(parts[2] if parts[2] in target.fields else None, msgs)
        elif key in form.fields:
            form.add_error(key, msgs)
        else:
            rest.extend(msgs)
    return rest


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def rubric_new(request: HttpRequest, access: Access) -> HttpResponse:
    form = RubricForm(request.POST or None)
    formset = CriterionFormSet(request.POST or None, prefix="c")
    errors: list[str] = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            rubric = services.rubric_create(
                project=access.project, name=form.cleaned_data["name"],
                description=form.cleaned_data["description"], criteria=_criteria_from_formset(formset),
                created_by=access.user,
            )
        except ValidationError as exc:
            errors = _service_errors_to_forms(exc, form, formset)
        else:
            messages.success(request, f"Rubric “{rubric.name}” created.")
            return redirect("reviews:rubric-edit", project_id=access.project.pk, rubric_id=rubric.pk)
    return render(request, "reviews/rubric_form.html", {"form": form, "formset": formset, "errors": errors, "rubric": None})


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def rubric_edit(request: HttpRequest, access: Access, rubric_id: int) -> HttpResponse:
    rubric = Rubric.objects.filter(project=access.project, pk=rubric_id).first()
    if rubric is None:
        raise Http404("No such rubric")
    latest = services.rubric_latest_version(rubric)
    initial = [criterion_initial(c) for c in latest.criteria.all()]
    form = RubricForm(request.POST or None, initial={"name": rubric.name, "description": rubric.description})
    formset = CriterionFormSet(request.POST or None, prefix="c", initial=initial)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        try:
            version = services.rubric_update(
                rubric=rubric, criteria=_criteria_from_formset(formset), user=access.user,
                name=form.cleaned_data["name"], description=form.cleaned_data["description"],
                note=form.cleaned_data["note"],
            )
        except ValidationError as exc:
            errors = _service_errors_to_forms(exc, form, formset)
        else:
            if version.pk != latest.pk:
                messages.success(request, f"Saved as version {version.number}: campaigns keep the version they use.")
            else:
                messages.success(request, "Saved.")
            return redirect("reviews:rubric-edit", project_id=access.project.pk, rubric_id=rubric.pk)
    versions = [(v, v.campaigns.count()) for v in rubric.versions.order_by("-number")]
    return render(request, "reviews/rubric_form.html", {
        "form": form, "formset": formset, "errors": errors, "rubric": rubric, "latest": latest,
        "locked": services.rubric_version_locked(latest), "versions": versions,
    })


# --------------------------------------------------------------------------------------------------------------------
# Campaigns


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def campaign_new(request: HttpRequest, access: Access) -> HttpResponse:
    form = CampaignForm(request.POST or None, project=access.project)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            campaign = services.campaign_create(
                project=access.project, name=d["name"], rubric_version=d["rubric_version"],
                sample=services.SampleSpec(
                    run_ids=tuple(r.pk for r in d["runs"]), sample_size=d["sample_size"],
                    stratify_by=(d["stratify_by"] or "").strip(), seed=d["seed"] or 0,
                ),
                overlap=d["overlap"], annotator_ids=[u.pk for u in d["annotators"]],
                group_ids=[g.pk for g in d["groups"]], guidelines=d["guidelines"],
                show_reference=d["show_reference"], assignment_minutes=d["assignment_minutes"],
                likert_threshold=d["likert_threshold"], nominal_threshold=d["nominal_threshold"],
                created_by=access.user,
            )
        except ValidationError as exc:
            for key, msgs in _messages_of(exc).items():
                if key in form.fields:
                    form.add_error(key, msgs)
                else:
                    errors.extend(msgs)
        else:
            messages.success(request, f"Campaign “{campaign.name}” is open with {campaign.item_count} outputs.")
            return redirect("reviews:campaign", project_id=access.project.pk, campaign_id=campaign.pk)
    return render(request, "reviews/campaign_form.html", {"form": form, "errors": errors})


@project_view()
def campaign_detail(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    may_rate = services.campaign_may_rate(campaign, access.user)
    if not may_rate and not access.is_reviewer:
        raise PermissionDenied("You are not among this campaign's annotators.")
    context: dict[str, Any] = {
        "campaign": campaign, "may_rate": may_rate, "progress": selectors.progress_for(campaign, access.user),
        "criteria": selectors.criteria_of(campaign),
    }
    if access.is_reviewer:
        context["open_adjudications"] = selectors.adjudications_open(campaign).count()
        context["corrections"] = selectors.corrections_of(campaign).count()
    if access.is_lead:
        context["annotators"] = selectors.annotator_progress(campaign)
        context["guidelines_form"] = GuidelinesForm(initial={"guidelines": campaign.guidelines_markdown})
        context["threshold_form"] = ThresholdForm(initial={
            "likert_threshold": campaign.likert_threshold, "nominal_threshold": campaign.nominal_threshold,
        })
    return render(request, "reviews/campaign.html", context)


@project_view(min_role=Role.LEAD)
@require_POST
def campaign_settings(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    action = request.POST.get("action", "")
    try:
        if action in ("close", "open"):
            services.campaign_set_status(campaign=campaign, status="closed" if action == "close" else "open")
            messages.success(request, "Campaign closed." if action == "close" else "Campaign reopened.")
        elif action == "guidelines":
            services.campaign_update_guidelines(campaign=campaign, guidelines=request.POST.get("guidelines", ""))
            messages.success(request, "Guidelines saved.")
        elif action == "thresholds":
            services.campaign_update_thresholds(
                campaign=campaign, likert_threshold=request.POST.get("likert_threshold"),
                nominal_threshold=request.POST.get("nominal_threshold"),
            )
            messages.success(request, "Thresholds saved; every fully rated item was checked again.")
        else:
            messages.error(request, "Unknown action.")
    except ValidationError as exc:
        for msgs in _messages_of(exc).values():
            for m in msgs:
                messages.error(request, m)
    return redirect("reviews:campaign", project_id=access.project.pk, campaign_id=campaign.pk)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def campaign_gold(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    criteria = selectors.criteria_of(campaign)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        item = CampaignItem.objects.filter(campaign=campaign, token=request.POST.get("item", "")).first()
        if item is None:
            raise Http404("No such item")
        expected = None if request.POST.get("action") == "unset" else rating_values_from_post(criteria, request.POST)
        try:
            services.campaign_set_gold(campaign=campaign, item=item, expected=expected)
        except ValidationError as exc:
            errors = _messages_of(exc)
        else:
            messages.success(request, "Gold item saved." if expected is not None else "No longer a gold item.")
            return redirect(f"{reverse('reviews:gold', kwargs={'project_id': access.project.pk, 'campaign_id': campaign.pk})}?page={request.GET.get('page', 1)}")
    items = CampaignItem.objects.filter(campaign=campaign).select_related("output__example").order_by("-is_gold", "position")
    page = Paginator(items, 10).get_page(request.GET.get("page"))
    return render(request, "reviews/gold.html", {
        "campaign": campaign, "criteria": criteria, "page": page, "errors": errors,
        "fields": {c.name: field_name(c) for c in criteria},
    })


# --------------------------------------------------------------------------------------------------------------------
# Rating (annotators; blind)


def _rating_campaign(access: Access, campaign_id: int) -> Campaign:
    campaign = selectors.campaign_get(access, campaign_id)
    if not services.campaign_may_rate(campaign, access.user):
        raise PermissionDenied("You are not among this campaign's annotators.")
    return campaign


@project_view()
def rate_next(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = _rating_campaign(access, campaign_id)
    assignment = services.assignment_next(campaign=campaign, user=access.user)
    if assignment is None:
        last = (
            campaign.assignments.filter(annotator=access.user, status=AssignmentStatus.SUBMITTED)
            .order_by("-assigned_at", "-pk").values_list("token", flat=True).first()
        )
        return render(request, "reviews/done.html", {
            "campaign": campaign, "progress": selectors.progress_for(campaign, access.user), "last_token": last,
        })
    return redirect("reviews:rate", project_id=access.project.pk, campaign_id=campaign.pk, token=assignment.token)


def _rate_context(campaign: Campaign, access: Access, assignment: Any, view: selectors.RatingView,
                  errors: dict[str, list[str]] | None = None, posted: dict[str, Any] | None = None) -> dict[str, Any]:
    prev_token, next_token = selectors.history_neighbours(assignment)
    values = posted if posted is not None else view.values
    criteria_rows = []
    for c in view.criteria:
        current = values.get(c.name)
        chosen = {str(x) for x in current} if isinstance(current, list) else ({str(current)} if current not in (None, "") else set())
        criteria_rows.append({
            "c": c, "field": field_name(c), "choices": c.choices(), "chosen": chosen,
            "text": current if c.scale == Scale.TEXT and isinstance(current, str) else "",
            "error": (errors or {}).get(f"values.{c.name}"),
        })
    return {
        "campaign": campaign, "view": view, "criteria_rows": criteria_rows, "errors": errors or {},
        "progress": selectors.progress_for(campaign, access.user), "prev_token": prev_token,
        "next_token": next_token, "is_active": assignment.status == AssignmentStatus.ACTIVE,
        "editable_text": view.corrected_text if view.corrected_text is not None else view.output_text,
    }


@project_view()
@require_http_methods(["GET", "POST"])
def rate(request: HttpRequest, access: Access, campaign_id: int, token: str) -> HttpResponse:
    campaign = _rating_campaign(access, campaign_id)
    assignment = selectors.assignment_for(campaign, access.user, token)
    if assignment is None:
        # Someone else's (or a made-up) token: never show it; carry on with this annotator's own queue.
        messages.info(request, "That item is not in your queue; here is your next one.")
        return redirect("reviews:next", project_id=access.project.pk, campaign_id=campaign.pk)
    criteria = selectors.criteria_of(campaign)
    if request.method == "POST":
        posted = rating_values_from_post(criteria, request.POST)
        corrected = request.POST.get("corrected_text")
        if corrected is not None:
            corrected = corrected.replace("\r\n", "\n")  # browsers send textarea line breaks as CRLF
        try:
            services.rating_submit(
                campaign=campaign, user=access.user, assignment_token=token, values=posted,
                comment=request.POST.get("comment", ""), corrected_text=corrected,
                seconds_on_item=request.POST.get("seconds_on_item") or 0,
                submission_token=request.POST.get("submission_token", ""),
            )
        except ValidationError as exc:
            view = selectors.rating_view(assignment, campaign, criteria)
            view.comment = request.POST.get("comment", "")[:20_000].replace("\x00", "")
            context = _rate_context(campaign, access, assignment, view, _messages_of(exc), posted)
            return render(request, "reviews/rate.html", context, status=400)
        if request.POST.get("then") == "history":
            _, next_token = selectors.history_neighbours(assignment)
            if next_token:
                return redirect("reviews:rate", project_id=access.project.pk, campaign_id=campaign.pk, token=next_token)
        return redirect("reviews:next", project_id=access.project.pk, campaign_id=campaign.pk)
    view = selectors.rating_view(assignment, campaign, criteria)
    return render(request, "reviews/rate.html", _rate_context(campaign, access, assignment, view))


@project_view()
@require_POST
def rate_skip(request: HttpRequest, access: Access, campaign_id: int, token: str) -> HttpResponse:
    campaign = _rating_campaign(access, campaign_id)
    assignment = selectors.assignment_for(campaign, access.user, token)
    if assignment is not None and services.assignment_skip(assignment=assignment, user=access.user):
        messages.info(request, "Skipped. Someone else will rate that one.")
    return redirect("reviews:next", project_id=access.project.pk, campaign_id=campaign.pk)


# --------------------------------------------------------------------------------------------------------------------
# Reviewers


@project_view(min_role=Role.REVIEWER)
def adjudication_list(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    pending = list(selectors.adjudications_open(campaign)[:200])
    resolved = list(campaign.adjudications.filter(status=AdjudicationStatus.RESOLVED).select_related("reviewer").order_by("-resolved_at")[:50])
    return render(request, "reviews/adjudications.html", {"campaign": campaign, "pending": pending, "resolved": resolved})


@project_view(min_role=Role.REVIEWER)
@require_http_methods(["GET", "POST"])
def adjudicate(request: HttpRequest, access: Access, campaign_id: int, item_token: str) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    adjudication = selectors.adjudication_by_item_token(campaign, item_token)
    if adjudication is None:
        raise Http404("No such item to adjudicate")
    criteria = selectors.criteria_of(campaign)
    errors: dict[str, list[str]] = {}
    posted: dict[str, Any] | None = None
    if request.method == "POST":
        posted = rating_values_from_post(criteria, request.POST)
        try:
            services.adjudication_resolve(
                adjudication=adjudication, reviewer=access.user, values=posted, note=request.POST.get("note", "")
            )
        except ValidationError as exc:
            errors = _messages_of(exc)
        else:
            messages.success(request, "Final rating recorded.")
            following = selectors.adjudications_open(campaign).exclude(pk=adjudication.pk).first()
            if following is not None:
                return redirect("reviews:adjudicate", project_id=access.project.pk, campaign_id=campaign.pk,
                                item_token=following.item.token)
            return redirect("reviews:adjudications", project_id=access.project.pk, campaign_id=campaign.pk)
    item = adjudication.item
    flagged = {e["criterion"]: e["spread"] for e in adjudication.criteria}
    current = posted if posted is not None else {
        c.name: selectors._value_of(v) for v in adjudication.values.all() for c in criteria if c.pk == v.criterion_id
    }
    rows = []
    for c in criteria:
        value = current.get(c.name)
        chosen = {str(x) for x in value} if isinstance(value, list) else ({str(value)} if value not in (None, "") else set())
        rows.append({
            "c": c, "field": field_name(c), "choices": c.choices(), "chosen": chosen, "flagged": c.name in flagged,
            "spread": flagged.get(c.name), "error": errors.get(f"values.{c.name}"),
            "text": value if c.scale == Scale.TEXT and isinstance(value, str) else "",
        })
    corrections = [
        {"annotator": corr.rating.annotator.username, "segments": diff_segments(corr.original_text, corr.edited_text)}
        for corr in Correction.objects.filter(item=item).select_related("rating__annotator")
    ]
    return render(request, "reviews/adjudicate.html", {
        "campaign": campaign, "adjudication": adjudication, "item": item, "criteria_rows": rows,
        "ratings": selectors.item_ratings(item, criteria), "criteria": criteria, "errors": errors,
        "prompt": selectors._chat(item.output.example), "corrections": corrections,
        "status": 400 if errors else 200,
    }, status=400 if errors else 200)


@project_view(min_role=Role.REVIEWER)
def corrections(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    page = Paginator(selectors.corrections_of(campaign), 20).get_page(request.GET.get("page"))
    rows = []
    for corr in page:
        segments = diff_segments(corr.original_text, corr.edited_text)
        rows.append({"correction": corr, "segments": segments, "stats": diff_stats(segments)})
    return render(request, "reviews/corrections.html", {"campaign": campaign, "page": page, "rows": rows})


@project_view(min_role=Role.REVIEWER)
def agreement(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    criteria = selectors.criteria_of(campaign)
    report = analysis.agreement_report(campaign, criteria)
    annotators = analysis.annotator_report(campaign, criteria) if access.is_lead else []
    return render(request, "reviews/agreement.html", {
        "campaign": campaign, "report": report, "annotators": annotators,
        "kappa_charts": [(f"kappa-{i}", r.kappa_chart) for i, r in enumerate(report) if r.kappa_chart],
    })


# --------------------------------------------------------------------------------------------------------------------
# Leads: results and exports


@project_view(min_role=Role.LEAD)
def results(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    criteria = selectors.criteria_of(campaign)
    slice_by = request.GET.get("slice", "")[:100]
    report = analysis.results_report(campaign, slice_by=slice_by)
    if slice_by and slice_by not in report.attributes:
        slice_by = ""
        report.slice_by = ""
        report.slices = {}
    agreement_rows = analysis.agreement_report(campaign, criteria, charts=False)
    recent = []
    latest = (
        Rating.objects.filter(campaign=campaign).select_related("annotator", "item__output__run__model_version")
        .prefetch_related("values__criterion").order_by("-updated_at", "-pk")[:25]
    )
    for r in latest:
        recent.append({
            "rating": r, "model_version": r.item.output.run.model_version,
            "values": {v.criterion.name: v.display() for v in r.values.all()},
        })
    corrections = []
    for corr in selectors.corrections_of(campaign).select_related("item__output__run__model_version")[:10]:
        segments = diff_segments(corr.original_text, corr.edited_text)
        corrections.append({
            "correction": corr, "segments": segments, "stats": diff_stats(segments),
            "model_version": corr.item.output.run.model_version,
        })
    return render(request, "reviews/results.html", {
        "campaign": campaign, "report": report, "criteria": criteria, "agreement": agreement_rows,
        "annotators": analysis.annotator_report(campaign, criteria), "recent": recent, "corrections": corrections,
        "charts": [(f"chart-{i}", fig) for i, fig in enumerate(report.charts)],
    })


@project_view(min_role=Role.LEAD)
def export(request: HttpRequest, access: Access, campaign_id: int, fmt: str) -> HttpResponse:
    campaign = selectors.campaign_get(access, campaign_id)
    frame = analysis.export_frame(campaign)
    name = slugify(campaign.name) or f"campaign-{campaign.pk}"
    if fmt == "csv":
        response = HttpResponse(frame.to_csv(index=False), content_type="text/csv; charset=utf-8")
    elif fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        response = HttpResponse(buf.getvalue(), content_type="application/vnd.apache.parquet")
    else:
        raise Http404("Unknown format")
    response["Content-Disposition"] = f'attachment; filename="{name}-ratings.{fmt}"'
    return response
