"""REST API of the reviews stage. Annotators: campaigns, next item, submit (which returns the next item), skip.
Reviewers: agreement. Leads: results per model version, rubrics.

Input is validated by the services; a ValidationError becomes a 400 naming each field (see evalhub.core.api).
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.projects.models import Role
from evalhub.reviews import analysis, selectors, services
from evalhub.reviews.models import Campaign
from evalhub.reviews.serializers import (
    AgreementRowSerializer,
    CampaignOutSerializer,
    NextSerializer,
    RatingSubmitSerializer,
    ResultsSerializer,
    RubricInSerializer,
    RubricOutSerializer,
    SkipSerializer,
)


def _progress(p: selectors.Progress) -> dict[str, Any]:
    return {"mine": p.mine, "my_share": p.my_share, "done": p.done, "wanted": p.wanted}


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


class _CampaignMixin(ProjectScopedMixin):
    def campaign(self, campaign_id: int, *, rating: bool = False) -> Campaign:
        campaign = selectors.campaign_get(self.access, campaign_id)
        if rating and not services.campaign_may_rate(campaign, self.access.user):
            raise PermissionDenied("You are not among this campaign's annotators.")
        return campaign

    def next_payload(self, campaign: Campaign, *, known_free: bool = False) -> dict[str, Any]:
        assignment = services.assignment_next(campaign=campaign, user=self.access.user, known_free=known_free)
        item = selectors.rating_view(assignment, campaign).as_api() if assignment is not None else None
        return {"item": item, "progress": _progress(selectors.progress_for(campaign, self.access.user))}


class CampaignListAPI(_CampaignMixin, APIView):
    """Campaigns you may rate (reviewers and leads: every campaign), with your progress."""

    @extend_schema(responses=CampaignOutSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        out = []
        for c in selectors.campaigns_for(self.access):
            out.append({
                "id": c.pk, "name": c.name, "status": c.status, "overlap": c.overlap,
                "rubric": str(c.rubric_version), "guidelines_html": c.guidelines_html,
                "progress": _progress(selectors.progress_for(c, self.access.user)),
            })
        return Response(out)


class NextItemAPI(_CampaignMixin, APIView):
    """The item to rate now: the one you hold, else a new one (null when nothing is left for you)."""

    @extend_schema(responses=NextSerializer)
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        return Response(self.next_payload(self.campaign(campaign_id, rating=True)))


class RatingSubmitAPI(_CampaignMixin, APIView):
    """Submit (or revise) a rating and get the next item in the same answer. Idempotent per submission_token."""

    @extend_schema(request=RatingSubmitSerializer, responses=NextSerializer)
    def post(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign(campaign_id, rating=True)
        data = request.data
        if not isinstance(data, dict):
            return Response({"non_field_errors": ["Send a JSON object."]}, status=status.HTTP_400_BAD_REQUEST)
        result = services.rating_submit(
            campaign=campaign, user=self.access.user, assignment_token=data.get("assignment"),
            values=data.get("values"), comment=data.get("comment", ""), corrected_text=data.get("corrected_text"),
            seconds_on_item=data.get("seconds_on_item", 0), submission_token=data.get("submission_token", ""),
        )
        body = {
            "rating": {"assignment": data.get("assignment"), "created": result.created, "revised": result.revised},
            **self.next_payload(campaign, known_free=result.was_active),
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


class SkipAPI(_CampaignMixin, APIView):
    """Give the item back unrated; you will not be offered it again. Returns the next item."""

    @extend_schema(request=SkipSerializer, responses=NextSerializer)
    def post(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign(campaign_id, rating=True)
        token = request.data.get("assignment") if isinstance(request.data, dict) else None
        assignment = selectors.assignment_for(campaign, self.access.user, token) if isinstance(token, str) else None
        if assignment is None:
            return Response({"assignment": ["This item is not assigned to you."]}, status=status.HTTP_400_BAD_REQUEST)
        skipped = services.assignment_skip(assignment=assignment, user=self.access.user)
        return Response({"skipped": skipped, **self.next_payload(campaign)})


class AgreementAPI(_CampaignMixin, APIView):
    """Krippendorff's alpha per criterion (level fitting the scale) and pairwise Cohen's kappa."""

    min_role = Role.REVIEWER

    @extend_schema(responses=AgreementRowSerializer(many=True))
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign(campaign_id)
        report = analysis.agreement_report(campaign, charts=False)
        return Response([
            {"criterion": r.title, "level": r.level, "alpha": r.alpha, "units": r.n_units, "ratings": r.n_ratings,
             "raters": r.rater_names, "kappa": r.kappa, "mean_kappa": r.mean_kappa}
            for r in report
        ])


class ResultsAPI(_CampaignMixin, APIView):
    """Per model version and criterion: mean of final values with a 95 % bootstrap interval (leads only)."""

    min_role = Role.LEAD

    @extend_schema(responses=ResultsSerializer)
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign(campaign_id)
        slice_by = str(request.query_params.get("slice", ""))[:100]
        report = analysis.results_report(campaign, slice_by=slice_by)
        cells = [
            {"model_version": c.model_version, "criterion": c.criterion, "mean": _num(c.estimate.value),
             "low": _num(c.estimate.low), "high": _num(c.estimate.high), "n": c.estimate.n, "adjudicated": c.adjudicated}
            for c in report.cells
        ]
        slices = {
            crit: {s: {mv: {"mean": _num(e.value), "low": _num(e.low), "high": _num(e.high), "n": e.n}
                       for mv, e in per.items()} for s, per in by_slice.items()}
            for crit, by_slice in report.slices.items()
        }
        return Response({"cells": cells, "slice_by": report.slice_by, "slices": slices})


class RubricListAPI(ProjectScopedMixin, APIView):
    """Rubrics with their versions and criteria; POST creates one (from criteria, or by copying a template)."""

    min_role = Role.LEAD

    @extend_schema(responses=RubricOutSerializer(many=True))
    def get(self, request: Request, project_id: int) -> Response:
        out = []
        for r in selectors.rubrics_of(self.access.project):
            out.append({
                "id": r.pk, "name": r.name, "description": r.description,
                "versions": [
                    {"id": v.pk, "number": v.number,
                     "criteria": [services.criterion_spec_of(c) for c in v.criteria.all()]}
                    for v in r.versions.order_by("-number")
                ],
            })
        return Response(out)

    @extend_schema(request=RubricInSerializer, responses={201: RubricOutSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        if data.get("template"):
            rubric = services.rubric_copy_template(
                project=self.access.project, template=str(data["template"]), created_by=self.access.user,
                name=data.get("name") if isinstance(data.get("name"), str) else None,
            )
        else:
            rubric = services.rubric_create(
                project=self.access.project, name=data.get("name", ""), description=data.get("description", ""),
                criteria=data.get("criteria") or [], created_by=self.access.user,
            )
        version = services.rubric_latest_version(rubric)
        return Response(
            {"id": rubric.pk, "name": rubric.name, "version": {"id": version.pk, "number": version.number}},
            status=status.HTTP_201_CREATED,
        )

