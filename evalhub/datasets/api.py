"""REST API of the data stage, under /api/projects/<project_id>/. Reads for every member; changes for leads."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.datasets import ingest, selectors, services, uploads
from evalhub.datasets.models import Dataset, DatasetVersion, Example, QualityReport
from evalhub.datasets.serializers import (
    DatasetSerializer,
    ExampleSerializer,
    ImportErrorSerializer,
    QualityReportCreateSerializer,
    QualityReportSerializer,
    UploadSerializer,
    VersionSerializer,
)
from evalhub.projects.models import Role


class DatasetListAPI(ProjectScopedMixin, generics.ListAPIView):
    """Datasets of the project with their versions."""

    serializer_class = DatasetSerializer

    def get_queryset(self) -> QuerySet[Dataset]:
        return selectors.dataset_list(self.access.project)


class DatasetDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    serializer_class = DatasetSerializer
    lookup_url_kwarg = "dataset_id"

    def get_queryset(self) -> QuerySet[Dataset]:
        return selectors.dataset_list(self.access.project)


class DatasetUploadAPI(ProjectScopedMixin, APIView):
    """Import a file as a new dataset, or as the next version of one. All or nothing: any bad row imports nothing
    and the answer lists every problem with its file, line and field."""

    min_role = Role.LEAD
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: VersionSerializer, 400: OpenApiResponse(ImportErrorSerializer, description="Nothing imported")},
    )
    def post(self, request: Request, project_id: int, **kwargs: Any) -> Response:
        serializer = UploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = self.access.project
        dataset = None
        if data.get("dataset") is not None:
            dataset = Dataset.objects.filter(project=project, pk=data["dataset"]).first()
            if dataset is None:
                raise Http404("No such dataset in this project")
        uploaded = data["file"]
        name = Path(uploaded.name).name
        if uploaded.size > settings.DATASET_MAX_UPLOAD_BYTES:
            return _import_error([ingest.RowError(name, None, None, f"the file is {uploaded.size:,} bytes; the limit "
                                                                     f"is {settings.DATASET_MAX_UPLOAD_BYTES:,} bytes")])
        with tempfile.TemporaryDirectory(prefix="evalhub-upload-") as tmp:
            path = Path(tmp) / uploads.safe_file_name(name)
            with open(path, "wb") as out:
                out.writelines(uploaded.chunks())
            fmt = data.get("format") or None
            suggested = None
            if not any(data.get(k) for k in ("prompt", "messages", "reference", "label", "id", "attributes")):
                try:
                    suggested = ingest.preview(path, fmt).suggested
                except ingest.DatasetImportError as exc:
                    return _import_error(exc.errors, exc.truncated)
            try:
                version = services.dataset_import(
                    project=project, user=request.user, path=path, display_name=name,
                    mapping=serializer.mapping(suggested), dataset=dataset,
                    dataset_name=(data.get("dataset_name") or "").strip() or None if dataset is None else None,
                    fmt=fmt, note=data.get("note") or "",
                )
            except ingest.DatasetImportError as exc:
                return _import_error(exc.errors, exc.truncated)
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED)


def _import_error(errors: list[ingest.RowError], truncated: bool = False) -> Response:
    body = {"detail": f"Nothing was imported: {len(errors)} problem(s).", "errors": [e.to_dict() for e in errors],
            "truncated": truncated}
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


class VersionListAPI(ProjectScopedMixin, generics.ListAPIView):
    """Versions of one dataset, newest first."""

    serializer_class = VersionSerializer

    def get_queryset(self) -> QuerySet[DatasetVersion]:
        dataset = Dataset.objects.filter(project=self.access.project, pk=self.kwargs["dataset_id"]).first()
        if dataset is None:
            raise Http404("No such dataset")
        return dataset.versions.select_related("dataset").order_by("-number")


class VersionDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    serializer_class = VersionSerializer
    lookup_url_kwarg = "version_id"

    def get_queryset(self) -> QuerySet[DatasetVersion]:
        return DatasetVersion.objects.filter(dataset__project=self.access.project).select_related("dataset")


def _version(view: ProjectScopedMixin, version_id: Any) -> DatasetVersion:
    version = DatasetVersion.objects.filter(dataset__project=view.access.project, pk=version_id).first()
    if version is None:
        raise Http404("No such version")
    return version


class ExampleListAPI(ProjectScopedMixin, generics.ListAPIView):
    """Examples of a version in order, paged (`limit`, `offset`); `q` searches prompt and reference."""

    serializer_class = ExampleSerializer

    @extend_schema(parameters=[OpenApiParameter("q", str, description="Text to look for in prompt or reference; "
                                                                       "an exact label or id also matches.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Example]:
        return selectors.examples_search(_version(self, self.kwargs["version_id"]),
                                         self.request.query_params.get("q", "")[:200])


class QualityReportListAPI(ProjectScopedMixin, generics.ListAPIView):
    """Quality reports of a version, newest first."""

    serializer_class = QualityReportSerializer

    def get_queryset(self) -> QuerySet[QualityReport]:
        return selectors.version_reports(_version(self, self.kwargs["version_id"]))


class QualityReportCreateAPI(ProjectScopedMixin, APIView):
    """Start a quality report of a version (a job); poll the report or its job until the job succeeds."""

    min_role = Role.LEAD

    @extend_schema(request=QualityReportCreateSerializer, responses={202: QualityReportSerializer})
    def post(self, request: Request, project_id: int, version_id: int, **kwargs: Any) -> Response:
        version = _version(self, version_id)
        serializer = QualityReportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        compare_to = None
        compare_id = serializer.validated_data.get("compare_to")
        if compare_id is not None:
            compare_to = selectors.version_in_project(self.access.project, compare_id)
            if compare_to is None:
                raise ValidationError({"compare_to": "No such version in this project."})
        report = services.quality_report_request(version=version, user=request.user, compare_to=compare_to)
        return Response(QualityReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)


class QualityReportDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    serializer_class = QualityReportSerializer
    lookup_url_kwarg = "report_id"

    def get_queryset(self) -> QuerySet[QualityReport]:
        return QualityReport.objects.filter(version__dataset__project=self.access.project).select_related("job")
