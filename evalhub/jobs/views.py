from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from evalhub.jobs import services
from evalhub.jobs.models import Job
from evalhub.jobs.serializers import JobSerializer
from evalhub.projects.access import Access, project_view
from evalhub.projects.models import Role


@project_view(min_role=Role.LEAD)
def job_list(request: HttpRequest, access: Access) -> HttpResponse:
    jobs = Job.objects.filter(project=access.project).defer("log", "result", "params")[:200]
    return render(request, "jobs/list.html", {"jobs": jobs})


@project_view(min_role=Role.LEAD)
def job_detail(request: HttpRequest, access: Access, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, project=access.project, pk=job_id)
    return render(request, "jobs/detail.html", {"job": job})


@project_view()
def job_status(request: HttpRequest, access: Access, job_id: int) -> JsonResponse:
    """Polled by progress bars on any page that shows a job (annotators see jobs too, e.g. a quality report)."""
    job = get_object_or_404(Job, project=access.project, pk=job_id)
    return JsonResponse(JobSerializer(job).data)


@project_view(min_role=Role.LEAD)
@require_POST
def job_cancel(request: HttpRequest, access: Access, job_id: int) -> HttpResponse:
    job = get_object_or_404(Job, project=access.project, pk=job_id)
    services.job_request_cancel(job)
    return redirect("jobs:detail", project_id=access.project.pk, job_id=job.pk)
