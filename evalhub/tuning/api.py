"""REST API of the fine-tuning stage, under /api/projects/<project_id>/. Leads only, like the pages."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.datasets.models import DatasetVersion
from evalhub.projects.models import Role
from evalhub.tuning import selectors, services
from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun
from evalhub.tuning.serializers import (
    BaseModelSerializer,
    LossHistorySerializer,
    ModelVersionSerializer,
    SweepCreateSerializer,
    SweepSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
)

M = TypeVar("M", bound=Model)


def _pick(queryset: QuerySet[M], pk: int | None, field: str, what: str) -> M | None:
    """An object the request names by id, which must be one this project may use (else a 400 naming the field)."""
    if pk is None:
        return None
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise ValidationError({field: f"no {what} with id {pk} in this project"})
    return obj


class _Lead(ProjectScopedMixin):
    min_role = Role.LEAD


class BaseModelListAPI(_Lead, generics.ListAPIView):
    """Base models registered on this installation (shared by every project)."""

    serializer_class = BaseModelSerializer
    queryset = BaseModel.objects.all()


class TrainingRunListCreateAPI(_Lead, generics.ListCreateAPIView):
    """Training runs of the project (sweep trials included); POST validates and queues a run on the gpu queue."""

    serializer_class = TrainingRunSerializer

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return selectors.runs_of_project(self.access.project, include_trials=True)

    @extend_schema(request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = TrainingRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = self.access.project
        versions = DatasetVersion.objects.filter(dataset__project=project)
        run = services.training_run_create(
            project=project,
            user=request.user,
            base_model=_pick(BaseModel.objects.all(), v["base_model"], "base_model", "base model"),
            train_version=_pick(versions, v["train_version"], "train_version", "dataset version"),
            val_version=_pick(versions, v.get("val_version"), "val_version", "dataset version"),
            parent_version=_pick(
                ModelVersion.objects.filter(project=project),
                v.get("parent_version"),
                "parent_version",
                "model version",
            ),
            method=v["method"],
            placement=v.get("placement"),
            hyperparameters=v.get("hyperparameters") or {},
            name=v.get("name", ""),
        )
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_201_CREATED)


class TrainingRunDetailAPI(_Lead, generics.RetrieveAPIView):
    serializer_class = TrainingRunSerializer
    lookup_url_kwarg = "run_id"

    def get_queryset(self) -> QuerySet[TrainingRun]:
        return selectors.runs_of_project(self.access.project, include_trials=True)


class TrainingRunCancelAPI(_Lead, APIView):
    """Ask a run to stop: a queued run is cancelled at once, a running one after its step (with a checkpoint)."""

    serializer_class = TrainingRunSerializer

    @extend_schema(request=None, responses={200: TrainingRunSerializer})
    def post(self, request: Request, project_id: int, run_id: int, **kwargs: Any) -> Response:
        run = get_object_or_404(
            TrainingRun.objects.select_related("job"), project=self.access.project, pk=run_id
        )
        return Response(TrainingRunSerializer(services.training_run_cancel(run)).data)


class TrainingRunLossesAPI(_Lead, APIView):
    """Train and validation loss so far (step/loss arrays), for live charts."""

    serializer_class = LossHistorySerializer

    @extend_schema(responses={200: LossHistorySerializer})
    def get(self, request: Request, project_id: int, run_id: int, **kwargs: Any) -> Response:
        run = get_object_or_404(
            TrainingRun.objects.select_related("job"), project=self.access.project, pk=run_id
        )
        return Response(LossHistorySerializer(services.loss_series(run)).data)


class ModelVersionListAPI(_Lead, generics.ListAPIView):
    serializer_class = ModelVersionSerializer

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return selectors.versions_of_project(self.access.project)


class ModelVersionDetailAPI(_Lead, generics.RetrieveAPIView):
    serializer_class = ModelVersionSerializer
    lookup_url_kwarg = "version_id"

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return selectors.versions_of_project(self.access.project)


class SweepListCreateAPI(_Lead, generics.ListCreateAPIView):
    """Sweeps of the project; POST validates the search space and queues the sweep on the gpu queue."""

    serializer_class = SweepSerializer

    def get_queryset(self) -> QuerySet[Sweep]:
        return selectors.sweeps_of_project(self.access.project).prefetch_related("trials")

    @extend_schema(request=SweepCreateSerializer, responses={201: SweepSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = SweepCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        project = self.access.project
        versions = DatasetVersion.objects.filter(dataset__project=project)
        sweep = services.sweep_create(
            project=project,
            user=request.user,
            name=v["name"],
            base_model=_pick(BaseModel.objects.all(), v["base_model"], "base_model", "base model"),
            train_version=_pick(versions, v["train_version"], "train_version", "dataset version"),
            val_version=_pick(versions, v["val_version"], "val_version", "dataset version"),
            method=v["method"],
            hyperparameters=v.get("hyperparameters") or {},
            search_space=v.get("search_space"),
            n_trials=v["n_trials"],
            seed=v["seed"],
            initial_trials=v.get("initial_trials") or [],
            pruner_startup_trials=v["pruner_startup_trials"],
            pruner_warmup_steps=v["pruner_warmup_steps"],
        )
        return Response(SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)


class SweepDetailAPI(_Lead, generics.RetrieveAPIView):
    serializer_class = SweepSerializer
    lookup_url_kwarg = "sweep_id"

    def get_queryset(self) -> QuerySet[Sweep]:
        return selectors.sweeps_of_project(self.access.project).prefetch_related("trials")
