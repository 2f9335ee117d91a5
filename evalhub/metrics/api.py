"""REST API of the measure stage, under /api/projects/<project_id>/. Leads only."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.generation.models import GenerationRun
from evalhub.metrics import selectors, services
from evalhub.metrics.export import FORMATS, export_response
from evalhub.metrics.models import MetricRun
from evalhub.metrics.serializers import (
    AggregatesSerializer,
    ComparisonSerializer,
    MetricRunCreateSerializer,
    MetricRunSerializer,
)
from evalhub.projects.models import Role


class MetricRunListAPI(ProjectScopedMixin, generics.ListCreateAPIView):
    """Metric runs of the project; POST validates and queues one (BERTScore runs go to the GPU queue)."""

    min_role = Role.LEAD
    serializer_class = MetricRunSerializer

    def get_queryset(self) -> QuerySet[MetricRun]:
        return selectors.metric_runs(self.access)

    @extend_schema(request=MetricRunCreateSerializer, responses={201: MetricRunSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = MetricRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        gen = GenerationRun.objects.filter(project=self.access.project, pk=data["generation_run"]).first()
        if gen is None:
            return Response({"generation_run": ["No such generation run in this project."]}, status=status.HTTP_400_BAD_REQUEST)
        run = services.metric_run_create(
            generation_run=gen, metrics=data["metrics"], options=data.get("options") or {}, created_by=request.user
        )
        return Response(MetricRunSerializer(run).data, status=status.HTTP_201_CREATED)


class MetricRunDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    min_role = Role.LEAD
    serializer_class = MetricRunSerializer
    lookup_url_kwarg = "metric_run_id"

    def get_queryset(self) -> QuerySet[MetricRun]:
        return selectors.metric_runs(self.access)


def _not_ready(run: MetricRun) -> ValidationError:
    return ValidationError({"metric_run": f"Metric run #{run.pk} has not succeeded ({run.status})."})


class MetricAggregatesAPI(ProjectScopedMixin, APIView):
    """Mean of every score over examples with a 95 % bootstrap interval, overall and per slice of `slice`."""

    min_role = Role.LEAD

    @extend_schema(
        parameters=[OpenApiParameter("slice", OpenApiTypes.STR, description="a dataset attribute, e.g. category")],
        responses={200: AggregatesSerializer},
    )
    def get(self, request: Request, project_id: int, metric_run_id: int, **kwargs: Any) -> Response:
        run = selectors.metric_run_get(self.access, metric_run_id)
        if run.status != "succeeded":
            raise _not_ready(run)
        table = selectors.run_aggregates(run, slice_by=request.query_params.get("slice") or None)
        body = {
            "metric_run": run.pk, "slice_by": table.slice_by, "slice_names": table.slice_names,
            "refused": run.refused or {}, "corpus": run.corpus or {},
            "rows": [selectors.aggregate_dict(r) for r in table.rows],
        }
        return Response(AggregatesSerializer(body).data)


class MetricCompareAPI(ProjectScopedMixin, APIView):
    """B minus A for every metric both runs scored: delta, 95 % paired-bootstrap interval, p-value, per slice."""

    min_role = Role.LEAD

    @extend_schema(
        parameters=[
            OpenApiParameter("a", OpenApiTypes.INT, required=True, description="metric run id of version A (baseline)"),
            OpenApiParameter("b", OpenApiTypes.INT, required=True, description="metric run id of version B (candidate)"),
            OpenApiParameter("slice", OpenApiTypes.STR, description="a dataset attribute, e.g. category"),
        ],
        responses={200: ComparisonSerializer},
    )
    def get(self, request: Request, project_id: int, **kwargs: Any) -> Response:
        missing = {k: ["This parameter is required."] for k in ("a", "b") if not request.query_params.get(k)}
        if missing:
            return Response(missing, status=status.HTTP_400_BAD_REQUEST)
        a = selectors.metric_run_get(self.access, request.query_params["a"])
        b = selectors.metric_run_get(self.access, request.query_params["b"])
        table = selectors.run_comparison(a, b, slice_by=request.query_params.get("slice") or None)
        body = {"a": a.pk, "b": b.pk, "slice_by": table.slice_by, "rows": [selectors.comparison_dict(r) for r in table.rows]}
        return Response(ComparisonSerializer(body).data)


class MetricExportAPI(ProjectScopedMixin, APIView):
    """Per-output scores as a CSV or Parquet file (one row per output, one `score.<name>` column per score)."""

    min_role = Role.LEAD

    @extend_schema(
        parameters=[OpenApiParameter("file_format", OpenApiTypes.STR, enum=list(FORMATS), description="csv (default) or parquet")],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
                   (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request: Request, project_id: int, metric_run_id: int, **kwargs: Any) -> HttpResponse:
        run = selectors.metric_run_get(self.access, metric_run_id)
        fmt = request.query_params.get("file_format", "csv")
        if fmt not in FORMATS:
            return Response({"file_format": [f"Use one of: {', '.join(FORMATS)}."]}, status=status.HTTP_400_BAD_REQUEST)
        return export_response(run, fmt)
