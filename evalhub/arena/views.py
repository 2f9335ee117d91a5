"""Pages of the arena stage.

Annotators (and everyone else) vote on blind comparisons; only leads create campaigns, import preference data, see
the leaderboard (which names the versions) and the per-annotator statistics. The voting page is built from
`selectors.blind_comparison` alone, so it cannot name a model: its sides are "A" and "B", its only reference to the
comparison is a random token.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evalhub.arena import charts, selectors, services
from evalhub.arena.forms import CampaignForm, ImportForm
from evalhub.arena.models import CampaignKind, CampaignStatus, Choice
from evalhub.arena.preferences import PreferenceImportError
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role

CHOICE_KEYS = [
    (Choice.A, "1", "a", "A is better"),
    (Choice.B, "2", "b", "B is better"),
    (Choice.TIE, "3", "t", "Tie"),
    (Choice.BOTH_BAD, "4", "x", "Both bad"),
]


def _errors(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{field}: {m}" if field != "__all__" else m for field, msgs in exc.message_dict.items() for m in msgs]
    return list(exc.messages)


@project_view()
def campaign_list(request: HttpRequest, access: Access) -> HttpResponse:
    campaigns = list(selectors.campaign_list(access))
    rows = []
    for c in campaigns:
        row: dict[str, Any] = {"campaign": c, "votes": c.n_votes_total, "may_vote": selectors.may_vote(c, request.user)}
        if access.sees_model_identity:
            row["contestants"] = [x.label for x in selectors.contestants(c)]
        else:
            row["my_votes"] = c.votes.filter(annotator=request.user).count()
        rows.append(row)
    return render(request, "arena/list.html", {"rows": rows})


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def campaign_create(request: HttpRequest, access: Access) -> HttpResponse:
    form = CampaignForm(request.POST or None, project=access.project)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(
                project=access.project, user=request.user, runs=list(form.cleaned_data["runs"]),
                options=form.options(), max_prompts=form.cleaned_data.get("max_prompts"),
                annotators=list(form.cleaned_data.get("annotators") or []),
            )
        except ValidationError as exc:
            errors = _errors(exc)
        else:
            messages.success(request, f"Campaign “{campaign.name}” created with {campaign.comparisons.count():,} comparisons.")
            return redirect("arena:detail", project_id=access.project.pk, campaign_id=campaign.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "arena/create.html", {"form": form, "errors": errors}, status=status)


@project_view(min_role=Role.LEAD)
@require_http_methods(["GET", "POST"])
def campaign_import(request: HttpRequest, access: Access) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, project=access.project)
    errors: list[str] = []
    truncated = False
    if request.method == "POST" and form.is_valid():
        uploaded = form.cleaned_data["file"]
        name = Path(uploaded.name).name
        limit = int(getattr(settings, "DATASET_MAX_UPLOAD_BYTES", 200 * 1024 * 1024))
        if uploaded.size > limit:
            errors = [f"{name}: the file is {uploaded.size:,} bytes; the limit is {limit:,} bytes"]
        else:
            try:
                with tempfile.TemporaryDirectory(prefix="evalhub-arena-") as tmp:
                    path = Path(tmp) / "upload.jsonl"
                    with open(path, "wb") as out:
                        out.writelines(uploaded.chunks())
                    d = form.cleaned_data
                    campaign = services.campaign_import(
                        project=access.project, user=request.user, path=path, display_name=name,
                        options=form.options(), chosen_name=d["chosen_name"], rejected_name=d["rejected_name"],
                        record_labels=bool(d.get("record_labels")),
                        open_for_annotators=bool(d.get("open_for_annotators")),
                        annotators=list(d.get("annotators") or []),
                    )
            except PreferenceImportError as exc:
                errors, truncated = [str(e) for e in exc.errors], exc.truncated
            except ValidationError as exc:
                errors = _errors(exc)
            else:
                messages.success(request, f"Imported {campaign.comparisons.count():,} preference pairs from {name}.")
                return redirect("arena:detail", project_id=access.project.pk, campaign_id=campaign.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "arena/import.html", {"form": form, "errors": errors, "truncated": truncated}, status=status)


@project_view()
def campaign_detail(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    _, campaign = selectors.campaign_get(request.user, access.project.pk, campaign_id)
    context: dict[str, Any] = {
        "campaign": campaign,
        "progress": selectors.progress(campaign, request.user),
        "may_vote": selectors.may_vote(campaign, request.user),
    }
    if access.sees_model_identity:
        people = selectors.contestants(campaign)
        names = {c.index: c.label for c in people}
        decided = sorted(selectors.decided_pairs(campaign)) if campaign.stop_when_decided else []
        context.update(contestants=people, decided=[(names[i], names[j]) for i, j in decided],
                       annotators=list(campaign.annotators.order_by("username")))
    return render(request, "arena/detail.html", context)


@project_view(min_role=Role.LEAD)
@require_POST
def campaign_status(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    _, campaign = selectors.campaign_get(request.user, access.project.pk, campaign_id, min_role=Role.LEAD)
    status = request.POST.get("status", "")
    try:
        services.campaign_set_status(campaign=campaign, status=status)
    except ValidationError as exc:
        messages.error(request, " ".join(_errors(exc)))
    else:
        messages.success(request, "Campaign reopened." if status == CampaignStatus.OPEN else "Campaign closed.")
    return redirect("arena:detail", project_id=access.project.pk, campaign_id=campaign.pk)


def _criteria_from_post(request: HttpRequest, criteria: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, name in enumerate(criteria):
        value = request.POST.get(f"crit-{i}", "")
        if value:
            out[name] = value
    return out


@project_view()
@require_http_methods(["GET", "POST"])
def vote(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    """Blind voting. GET shows the comparison in hand (or the next one); POST votes or skips, then shows the next."""
    _, campaign = selectors.campaign_get(request.user, access.project.pk, campaign_id)
    here = redirect("arena:vote", project_id=access.project.pk, campaign_id=campaign.pk)
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        token = request.POST.get("comparison", "")
        try:
            if request.POST.get("action") == "skip":
                services.comparison_skip(campaign=campaign, user=request.user, token=token)
                messages.info(request, "Skipped.")
            else:
                vote_, created = services.vote_submit(
                    campaign=campaign, user=request.user, token=token, choice=request.POST.get("choice", ""),
                    criteria=_criteria_from_post(request, list(campaign.criteria)),
                    reason=request.POST.get("reason", ""), seconds=request.POST.get("seconds") or 0,
                )
                messages.success(request, f"Saved: {Choice(vote_.choice).label}." if created else "Already saved.")
            return here
        except services.ArenaRefusal as exc:
            if exc.code in ("already_voted", "expired", "skipped", "not_served", "unknown_comparison"):
                messages.error(request, exc.message)
                return here
            errors, status = [exc.message], exc.http_status
        except ValidationError as exc:
            errors, status = _errors(exc), 400
    context: dict[str, Any] = {"campaign": campaign, "errors": errors, "choices": CHOICE_KEYS, "comparison": None}
    try:
        assignment = services.comparison_next(campaign=campaign, user=request.user)
    except services.ArenaRefusal as exc:
        context["refusal"] = exc.message
        return render(request, "arena/vote.html", context, status=exc.http_status)
    if assignment is not None:
        context["comparison"] = selectors.blind_comparison(assignment)
        context["criteria"] = list(enumerate(campaign.criteria))
    context["progress"] = selectors.progress(campaign, request.user)
    return render(request, "arena/vote.html", context, status=status)


@project_view(min_role=Role.LEAD)
def leaderboard(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    _, campaign = selectors.campaign_get(request.user, access.project.pk, campaign_id, min_role=Role.LEAD)
    slice_attr = (request.GET.get("slice") or "")[:100] or None
    lb = selectors.leaderboard(campaign, slice_attribute=slice_attr)
    names = [c.label for c in lb.contestants]
    b = lb.board
    figures: dict[str, Any] = {}
    pair_rows = lb.pair_rows()
    pct = f"{100 * campaign.confidence:g}"
    if not b.empty:
        figures["fig-ratings"] = charts.ratings_forest(names, b, title=f"Rating (Elo scale) with {pct} % interval")
        figures["fig-winrate"] = charts.matrix_heatmap(
            names, b.win_rate, title="Observed win rate, row vs column", fmt=".0%",
            colorscale="RdBu", zmid=0.5, zmin=0, zmax=1)
        figures["fig-battles"] = charts.matrix_heatmap(
            names, [[None if i == j else float(x) for j, x in enumerate(row)] for i, row in enumerate(b.battles)],
            title="Battles (votes) between row and column",
            fmt=".0f", colorscale="Blues", zmin=0, zmax=max(1, max(max(row) for row in b.battles)))
        figures["fig-pairs"] = charts.pairwise_whiskers(pair_rows, title=f"P(X beats Y) with {pct} % interval")
    if lb.slices:
        figures["fig-slices"] = charts.slices_forest(names, lb.slices, title=f"Ratings by {lb.slice_attribute}, {pct} % intervals")
    by_criterion = selectors.criteria_leaderboard(campaign)
    if any(not c.empty for c in by_criterion):
        figures["fig-criteria"] = charts.criteria_forest(
            names, by_criterion, title=f"Ratings by criterion, {pct} % intervals")
    slice_tables = [
        {"value": s.value, "n_votes": s.n_votes, "board": s.board,
         "cells": [{"rating": s.board.ratings[c.index], "low": s.board.low[c.index], "high": s.board.high[c.index],
                    "rank": s.board.ranks[c.index], "battles": s.board.n_battles[c.index]} for c in lb.contestants]}
        for s in lb.slices
    ]
    context = {
        "campaign": campaign, "lb": lb, "board": b, "rows": _with_bars(lb.rows()), "pair_rows": pair_rows, "names": names,
        "figures": figures, "figure_ids": list(figures), "slice_tables": slice_tables, "by_criterion": by_criterion,
        "criterion_rounds": selectors.CRITERION_ROUNDS, "criteria_chart": "fig-criteria" in figures,
        "imported": campaign.kind == CampaignKind.IMPORTED,
        "bias_significant": bool(b.bias.n and b.bias.p_value < 1 - campaign.confidence),
    }
    return render(request, "arena/leaderboard.html", context)


def _with_bars(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds an interval bar on a scale shared by all rows (percent positions) and a tied-rank flag."""
    finite = [r for r in rows if all(math.isfinite(r[k]) for k in ("rating", "low", "high"))]
    ranks = [r["rank"] for r in rows]
    for r in rows:
        r["tied"] = ranks.count(r["rank"]) > 1
    if not finite:
        return rows
    lo = min(min(r["low"] for r in finite), 1000.0)
    hi = max(max(r["high"] for r in finite), 1000.0)
    span = max(hi - lo, 1e-9)
    pad = 0.04 * span
    lo, span = lo - pad, span + 2 * pad

    def pos(x: float) -> float:
        return round(100 * (x - lo) / span, 2)

    for r in finite:
        r["bar"] = {"left": pos(r["low"]), "width": round(pos(r["high"]) - pos(r["low"]), 2), "point": pos(r["rating"]),
                    "mid": pos(1000.0)}
    return rows


@project_view(min_role=Role.LEAD)
def annotator_stats(request: HttpRequest, access: Access, campaign_id: int) -> HttpResponse:
    _, campaign = selectors.campaign_get(request.user, access.project.pk, campaign_id, min_role=Role.LEAD)
    stats = selectors.annotator_stats(campaign)
    return render(request, "arena/annotators.html", {
        "campaign": campaign, "stats": stats, "n_flagged": sum(1 for s in stats if s.flagged),
        "min_units": selectors.MIN_UNITS_TO_FLAG,
    })

