from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evalhub.core.api import ProjectScopedMixin
from evalhub.jobs import services
from evalhub.jobs.models import Job
from evalhub.jobs.serializers import JobSerializer
from evalhub.projects.models import Role


class JobDetailAPI(ProjectScopedMixin, generics.RetrieveAPIView):
    """Status and progress of one job (poll this)."""

    serializer_class = JobSerializer
    lookup_url_kwarg = "job_id"

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Job.objects.filter(project=self.access.project)


class JobCancelAPI(ProjectScopedMixin, APIView):
    """Ask a job to stop. Queued jobs are cancelled at once; running ones stop at their next check."""

    min_role = Role.LEAD
    serializer_class = JobSerializer

    def post(self, request: Request, project_id: int, job_id: int, **kwargs: Any) -> Response:
        job = get_object_or_404(Job, project=self.access.project, pk=job_id)
        return Response(JobSerializer(services.job_request_cancel(job)).data)
