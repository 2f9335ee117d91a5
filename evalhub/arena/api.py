"""REST API of the arena, under /api/projects/<project_id>/arena/.

Annotators: list campaigns, get the next comparison (blind: token, prompt, texts "a" and "b"), vote, skip.
Leads: create campaigns, import preference files, open/close, leaderboard, annotator statistics.

Vote answers: 201 a new vote; 200 the same vote sent again (nothing stored twice); 400 a malformed vote (the field
is named); 403 a comparison not served to you; 404 an unknown token; 409 a different second vote, a skipped or
expired comparison, or a closed campaign. Every refusal has {"detail": message, "code": code}.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.arena import selectors, services
from evalhub.arena.models import Campaign
from evalhub.arena.preferences import PreferenceImportError
from evalhub.arena.serializers import (
    CampaignCreateSerializer,
    CampaignSerializer,
    CriterionBoardSerializer,
    ImportSerializer,
    LeadCampaignSerializer,
    NextSerializer,
    ProgressSerializer,
    SkipSerializer,
    StatusSerializer,
    VoteResultSerializer,
    VoteSerializer,
)
from evalhub.core.api import ProjectScopedMixin
from evalhub.generation.models import GenerationRun
from evalhub.projects.models import Role


def _refusal(exc: services.ArenaRefusal) -> Response:
    return Response({"detail": exc.message, "code": exc.code}, status=exc.http_status)


def _options(data: dict[str, Any]) -> services.CampaignOptions:
    return services.CampaignOptions(
        name=data["name"], instructions=data.get("instructions") or "", scheduling=data["scheduling"],
        overlap=data["overlap"], stop_when_decided=data["stop_when_decided"], confidence=data["confidence"],
        min_votes_to_decide=data["min_votes_to_decide"], criteria=tuple(data.get("criteria") or ()),
        both_bad_as=data["both_bad_as"], claim_minutes=data["claim_minutes"], seed=data.get("seed"),
    )


def _annotators(view: ProjectScopedMixin, ids: list[int]) -> list[Any]:
    users = list(get_user_model().objects.filter(pk__in=ids, memberships__project=view.access.project))
    if len(users) != len(set(ids)):
        raise ValidationError({"annotators": "Every annotator must be a member of this project."})
    return users


class _CampaignMixin(ProjectScopedMixin):
    def campaign(self) -> Campaign:
        campaign = Campaign.objects.filter(project=self.access.project, pk=self.kwargs["campaign_id"]).first()  # type: ignore[attr-defined]
        if campaign is None:
            raise Http404("No such campaign")
        return campaign

    def campaign_data(self, campaign: Campaign) -> dict[str, Any]:
        if self.access.sees_model_identity:
            return LeadCampaignSerializer(campaign).data
        return CampaignSerializer(campaign).data


class CampaignListAPI(_CampaignMixin, generics.ListAPIView):
    """Campaigns of the project (annotators: the open ones and those they voted in). Contestants for leads only."""

    serializer_class = CampaignSerializer

    def get_queryset(self) -> Any:
        return selectors.campaign_list(self.access).prefetch_related("contestants__model_version")

    def get_serializer_class(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request, no access
            return LeadCampaignSerializer
        return LeadCampaignSerializer if self.access.sees_model_identity else CampaignSerializer


class CampaignDetailAPI(_CampaignMixin, APIView):
    @extend_schema(responses={200: LeadCampaignSerializer})
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()
        body = self.campaign_data(campaign)
        body["progress"] = ProgressSerializer.of(selectors.progress(campaign, request.user))
        return Response(body)


class CampaignCreateAPI(ProjectScopedMixin, APIView):
    """Create a campaign from two or more finished generation runs over the same eval version."""

    min_role = Role.LEAD

    @extend_schema(request=CampaignCreateSerializer, responses={201: LeadCampaignSerializer})
    def post(self, request: Request, project_id: int) -> Response:
        s = CampaignCreateSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        runs = list(GenerationRun.objects.filter(project=self.access.project, pk__in=d["runs"]))
        if len(runs) != len(set(d["runs"])):
            raise ValidationError({"runs": "Every run must be a generation run of this project."})
        order = {pk: i for i, pk in enumerate(d["runs"])}
        runs.sort(key=lambda r: order[r.pk])
        campaign = services.campaign_create(
            project=self.access.project, user=request.user, runs=runs, options=_options(d),
            max_prompts=d.get("max_prompts"), annotators=_annotators(self, d.get("annotators") or []),
        )
        return Response(LeadCampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)


class CampaignImportAPI(ProjectScopedMixin, APIView):
    """Import preference pairs (JSONL) as a campaign of two sources. All or nothing; errors name file and line."""

    min_role = Role.LEAD
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(request={"multipart/form-data": ImportSerializer},
                   responses={201: LeadCampaignSerializer, 400: OpenApiResponse(description="Nothing imported")})
    def post(self, request: Request, project_id: int) -> Response:
        s = ImportSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        uploaded = d["file"]
        name = Path(uploaded.name).name
        limit = int(getattr(settings, "DATASET_MAX_UPLOAD_BYTES", 200 * 1024 * 1024))
        if uploaded.size > limit:
            return Response({"detail": "Nothing was imported.", "errors": [
                {"file": name, "line": None, "field": None,
                 "message": f"the file is {uploaded.size:,} bytes; the limit is {limit:,} bytes"}]}, status=400)
        with tempfile.TemporaryDirectory(prefix="evalhub-arena-") as tmp:
            path = Path(tmp) / "upload.jsonl"
            with open(path, "wb") as out:
                out.writelines(uploaded.chunks())
            try:
                campaign = services.campaign_import(
                    project=self.access.project, user=request.user, path=path, display_name=name,
                    options=_options(d), chosen_name=d["chosen_name"], rejected_name=d["rejected_name"],
                    record_labels=d["record_labels"], open_for_annotators=d["open_for_annotators"],
                    annotators=_annotators(self, d.get("annotators") or []),
                )
            except PreferenceImportError as exc:
                return Response({"detail": f"Nothing was imported: {len(exc.errors)} problem(s).",
                                 "errors": [e.to_dict() for e in exc.errors], "truncated": exc.truncated}, status=400)
        body = LeadCampaignSerializer(campaign).data
        body["n_pairs"] = campaign.comparisons.count()
        return Response(body, status=status.HTTP_201_CREATED)


class CampaignStatusAPI(_CampaignMixin, APIView):
    """Close a campaign (no more votes; comparisons in hand are released) or reopen it."""

    min_role = Role.LEAD

    @extend_schema(request=StatusSerializer, responses={200: LeadCampaignSerializer})
    def post(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()
        s = StatusSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        campaign = services.campaign_set_status(campaign=campaign, status=s.validated_data["status"])
        return Response(LeadCampaignSerializer(campaign).data)


class NextComparisonAPI(_CampaignMixin, APIView):
    """The comparison to judge now: the one you hold, else a new one. `comparison` is null when none is left."""

    @extend_schema(responses={200: NextSerializer})
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()
        try:
            assignment = services.comparison_next(campaign=campaign, user=request.user)
        except services.ArenaRefusal as exc:
            return _refusal(exc)
        progress = ProgressSerializer.of(selectors.progress(campaign, request.user))
        if assignment is None:
            why = "This campaign is closed." if not campaign.is_open else "Nothing is left for you in this campaign."
            return Response({"comparison": None, "detail": why, "progress": progress})
        return Response({"comparison": selectors.blind_comparison(assignment), "detail": "", "progress": progress})


class VoteAPI(_CampaignMixin, APIView):
    """Vote on a comparison served to you: a (left response better), b (right), tie or both_bad."""

    @extend_schema(request=VoteSerializer, responses={201: VoteResultSerializer, 200: VoteResultSerializer,
                                                      403: OpenApiResponse(description="not served to you"),
                                                      409: OpenApiResponse(description="already voted differently, "
                                                                                       "skipped, expired or closed")})
    def post(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()  # an unknown campaign is a 404 before the body is looked at
        s = VoteSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        d = s.validated_data
        try:
            vote, created = services.vote_submit(
                campaign=campaign, user=request.user, token=d["comparison"], choice=d["choice"],
                criteria=d.get("criteria") or {}, reason=d.get("reason") or "", seconds=d.get("seconds") or 0.0,
            )
        except services.ArenaRefusal as exc:
            return _refusal(exc)
        body = {"comparison": d["comparison"], "choice": vote.choice, "criteria": vote.criteria, "reason": vote.reason,
                "created": created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class SkipAPI(_CampaignMixin, APIView):
    """Give a served comparison back without voting; you are not shown it again."""

    @extend_schema(request=SkipSerializer, responses={204: None})
    def post(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()
        s = SkipSerializer(data=request.data)
        s.is_valid(raise_exception=True)
        try:
            services.comparison_skip(campaign=campaign, user=request.user, token=s.validated_data["comparison"])
        except services.ArenaRefusal as exc:
            return _refusal(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeaderboardAPI(_CampaignMixin, APIView):
    """Ratings (Elo scale) with bootstrap intervals, ranks with ties, pairwise P(X beats Y), win-rate and battle
    matrices, position bias; with `slice=<attribute>` the same per attribute value; `by_criterion`: the same fit per
    rubric criterion on the votes that judged it, with wins / losses / ties per version."""

    min_role = Role.LEAD

    @extend_schema(
        parameters=[OpenApiParameter("slice", str, description="prompt attribute to slice by")],
        responses=inline_serializer(
            name="ArenaLeaderboard",
            fields={
                "campaign": serializers.IntegerField(),
                "contestants": serializers.ListField(child=serializers.DictField()),
                "board": serializers.DictField(help_text="ratings, intervals, ranks, win probabilities, matrices, position bias"),
                "slice_attribute": serializers.CharField(allow_null=True),
                "slice_attributes": serializers.ListField(child=serializers.CharField()),
                "slices": serializers.ListField(child=serializers.DictField()),
                "external_agreement": serializers.DictField(allow_null=True),
                "imported_labels": serializers.IntegerField(),
                "by_criterion": CriterionBoardSerializer(many=True, help_text="one fit per rubric criterion"),
            },
        ),
    )
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        campaign = self.campaign()
        attr = (request.query_params.get("slice") or "")[:100] or None
        lb = selectors.leaderboard(campaign, slice_attribute=attr)
        people = LeadCampaignSerializer(campaign).data["contestants"]
        return Response({
            "campaign": campaign.pk,
            "contestants": people,
            "board": lb.board.as_dict(),
            "slice_attribute": lb.slice_attribute,
            "slice_attributes": lb.slice_attributes,
            "slices": [{"value": s.value, "n_votes": s.n_votes, "board": s.board.as_dict()} for s in lb.slices],
            "external_agreement": _clean_nan(lb.external_agreement.as_dict()) if lb.external_agreement else None,
            "imported_labels": lb.n_import_votes,
            "by_criterion": [CriterionBoardSerializer.of(c) for c in selectors.criteria_leaderboard(campaign)],
        })


class AnnotatorStatsAPI(_CampaignMixin, APIView):
    """Per-annotator vote counts, position bias, agreement with the consensus, and who is flagged."""

    min_role = Role.LEAD

    @extend_schema(
        responses=inline_serializer(
            name="ArenaAnnotatorStats", fields={"annotators": serializers.ListField(child=serializers.DictField())}
        )
    )
    def get(self, request: Request, project_id: int, campaign_id: int) -> Response:
        from dataclasses import asdict

        stats = selectors.annotator_stats(self.campaign())
        return Response({"annotators": [_clean_nan(asdict(s)) for s in stats]})


def _clean_nan(d: dict[str, Any]) -> dict[str, Any]:
    import math

    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
