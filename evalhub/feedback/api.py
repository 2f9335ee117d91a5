"""REST API of the feedback stage, under /api/projects/<project_id>/. Leads only."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.datasets.models import DatasetVersion
from evalhub.feedback import selectors, services
from evalhub.feedback.builders import ExportOptions
from evalhub.feedback.models import FeedbackExport, RetrainPipeline
from evalhub.feedback.serializers import (
    ExportCreateSerializer,
    FeedbackExportSerializer,
    RetrainCreateSerializer,
    RetrainPipelineSerializer,
    options_dict,
)
from evalhub.feedback.views import download_response
from evalhub.projects.models import Role


class ExportListAPI(ProjectScopedMixin, generics.ListCreateAPIView):
    """Feedback exports of the project; POST builds one (refused with 400 when the filters leave nothing)."""

    min_role = Role.LEAD
    serializer_class = FeedbackExportSerializer

    def get_queryset(self) -> QuerySet[FeedbackExport]:
        return selectors.exports(self.access)

    @extend_schema(request=ExportCreateSerializer, responses={201: FeedbackExportSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        options = ExportOptions(**options_dict(data, data.pop("kind")))
        export = services.export_create(
            project=self.access.project,
            user=request.user,
            options=options,
            name=data.get("name", ""),
            formats=data.get("formats") or [],
        )
        return Response(FeedbackExportSerializer(export).data, status=status.HTTP_201_CREATED)


class ExportDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    min_role = Role.LEAD
    serializer_class = FeedbackExportSerializer
    lookup_url_kwarg = "export_id"

    def get_queryset(self) -> QuerySet[FeedbackExport]:
        return selectors.exports(self.access)


class ExportDownloadAPI(ProjectScopedMixin, APIView):
    """The export's file: JSONL (default), Parquet, or the Hugging Face folder as a zip (when they were written)."""

    min_role = Role.LEAD

    @extend_schema(
        parameters=[OpenApiParameter("file", OpenApiTypes.STR, enum=["jsonl", "parquet", "hf"])],
        responses={200: OpenApiResponse(description="the file")},
    )
    def get(self, request: Request, project_id: int, export_id: int, **kwargs: Any) -> HttpResponseBase:
        export = selectors.export_get(self.access, export_id)
        return download_response(export, request.query_params.get("file", "jsonl"))


class RetrainListAPI(ProjectScopedMixin, generics.ListCreateAPIView):
    """Retrain pipelines; POST builds the export(s) and queues the first training run, or answers 400 with the
    reason and queues nothing."""

    min_role = Role.LEAD
    serializer_class = RetrainPipelineSerializer

    def get_queryset(self) -> QuerySet[RetrainPipeline]:
        return selectors.pipelines(self.access)

    @extend_schema(request=RetrainCreateSerializer, responses={201: RetrainPipelineSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = RetrainCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        d = serializer.validated_data
        eval_version = DatasetVersion.objects.filter(
            dataset__project=self.access.project, pk=d["eval_version"]
        ).first()
        if eval_version is None:
            raise ValidationError({"eval_version": "No such dataset version in this project."})
        sft = ExportOptions(**options_dict(dict(d["sft"]), "sft")) if d.get("sft") else None
        dpo = ExportOptions(**options_dict(dict(d["dpo"]), "dpo")) if d.get("dpo") else None
        pipeline = services.retrain_start(
            project=self.access.project,
            user=request.user,
            parent_id=d["parent"],
            eval_version=eval_version,
            mode=d["mode"],
            sft_options=sft,
            dpo_options=dpo,
            hyperparameters=d.get("hyperparameters") or {},
            decode=d.get("decode") or {},
            metrics=d.get("metrics"),
        )
        return Response(RetrainPipelineSerializer(pipeline).data, status=status.HTTP_201_CREATED)


class RetrainDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    min_role = Role.LEAD
    serializer_class = RetrainPipelineSerializer
    lookup_url_kwarg = "pipeline_id"

    def get_queryset(self) -> QuerySet[RetrainPipeline]:
        return selectors.pipelines(self.access)


class RetrainAdvanceAPI(ProjectScopedMixin, APIView):
    """Take every step whose previous job has finished (normally done automatically when a job ends)."""

    min_role = Role.LEAD

    @extend_schema(request=None, responses={200: RetrainPipelineSerializer})
    def post(self, request: Request, project_id: int, pipeline_id: int, **kwargs: Any) -> Response:
        p = services.retrain_advance(selectors.pipeline_get(self.access, pipeline_id))
        return Response(RetrainPipelineSerializer(selectors.pipeline_get(self.access, p.pk)).data)


class TimelineAPI(ProjectScopedMixin, APIView):
    """Every model version, newest first: data and annotations it came from, comparison with its parent."""

    min_role = Role.LEAD

    @extend_schema(
        responses={
            200: OpenApiResponse(description="[{version, parent, data, exports, elo, metrics, sentence}]")
        }
    )
    def get(self, request: Request, project_id: int, **kwargs: Any) -> Response:
        return Response([e.as_dict() for e in selectors.timeline(self.access.project)])
