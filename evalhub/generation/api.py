"""REST API of the generation stage, under /api/projects/<project_id>/. Leads only: runs name model versions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from evalhub.core.api import ProjectScopedMixin
from evalhub.datasets.models import DatasetVersion
from evalhub.generation import selectors, services
from evalhub.generation.models import GenerationRun, Output
from evalhub.generation.serializers import (
    GenerationRunCreateSerializer,
    GenerationRunSerializer,
    OutputSerializer,
)
from evalhub.metrics.models import MetricRun
from evalhub.projects.models import Role
from evalhub.tuning.models import ModelVersion


class GenerationRunListAPI(ProjectScopedMixin, generics.ListCreateAPIView):
    """Generation runs of the project (newest first); POST validates and queues one on the GPU queue."""

    min_role = Role.LEAD
    serializer_class = GenerationRunSerializer

    def get_queryset(self) -> QuerySet[GenerationRun]:
        return selectors.generation_runs(self.access)

    @extend_schema(request=GenerationRunCreateSerializer, responses={201: GenerationRunSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = GenerationRunCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = self.access.project
        version = ModelVersion.objects.filter(project=project, pk=data["model_version"]).select_related("base_model").first()
        eval_version = DatasetVersion.objects.filter(dataset__project=project, pk=data["eval_version"]).select_related("dataset").first()
        errors = {}
        if version is None:
            errors["model_version"] = ["No such model version in this project."]
        if eval_version is None:
            errors["eval_version"] = ["No such dataset version in this project."]
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        run = services.generation_run_create(
            project=project, model_version=version, eval_version=eval_version,  # type: ignore[arg-type]
            settings=data.get("settings") or {}, created_by=request.user,
        )
        return Response(GenerationRunSerializer(run).data, status=status.HTTP_201_CREATED)


class GenerationRunDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    min_role = Role.LEAD
    serializer_class = GenerationRunSerializer
    lookup_url_kwarg = "run_id"

    def get_queryset(self) -> QuerySet[GenerationRun]:
        return selectors.generation_runs(self.access)


OUTPUT_PARAMETERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description="text in the output, prompt or reference"),
    OpenApiParameter("attr", OpenApiTypes.STR, description="dataset attribute to filter on (with `value`)"),
    OpenApiParameter("value", OpenApiTypes.STR, description="the attribute's value; `(missing)` for examples without it"),
    OpenApiParameter("flag", OpenApiTypes.STR, enum=["empty", "repaired", "length", "error"]),
    OpenApiParameter("metric_run", OpenApiTypes.INT, description="include this metric run's scores (and sort by them)"),
    OpenApiParameter("sort", OpenApiTypes.STR, description="a score name of `metric_run`, e.g. rougeL"),
    OpenApiParameter("order", OpenApiTypes.STR, enum=["asc", "desc"]),
]


class OutputListAPI(ProjectScopedMixin, generics.ListAPIView):
    """Outputs of a run, paged (`limit`, `offset`), filtered and optionally sorted by a metric."""

    min_role = Role.LEAD
    serializer_class = OutputSerializer

    def _run(self) -> GenerationRun:
        if not hasattr(self, "_cached_run"):
            self._cached_run = selectors.generation_run_get(self.access, self.kwargs["run_id"])
        return self._cached_run

    def _metric_run(self) -> MetricRun | None:
        wanted = self.request.query_params.get("metric_run", "")
        if not wanted:
            return None
        run = MetricRun.objects.filter(
            generation_run=self._run(), project=self.access.project, pk=int(wanted) if wanted.isdigit() else -1
        ).first()
        if run is None:
            raise Http404("No such metric run for this generation run")
        return run

    def get_queryset(self) -> QuerySet[Output]:
        params = self.request.query_params
        attr = params.get("attr", "").strip()
        flt = selectors.OutputFilter(
            q=params.get("q", "").strip()[:200], attr=attr, value=params.get("value") if attr else None,
            metric_run=self._metric_run(), sort=params.get("sort", "").strip(), descending=params.get("order") == "desc",
            flag=params.get("flag", "") if params.get("flag") in {"empty", "repaired", "length", "error"} else "",
        )
        self._filter = flt
        return selectors.outputs_filtered(self._run(), flt)

    @extend_schema(parameters=OUTPUT_PARAMETERS)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.get_queryset()
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        scores = selectors.scores_for_outputs(self._filter.metric_run, [o.pk for o in rows])
        data = OutputSerializer(rows, many=True, context={**self.get_serializer_context(), "scores": scores}).data
        return self.get_paginated_response(data) if page is not None else Response(data)
