from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from evalhub.datasets.models import Dataset
from evalhub.projects.access import Access, project_view


@project_view()
def dataset_list(request: HttpRequest, access: Access) -> HttpResponse:
    datasets = Dataset.objects.filter(project=access.project).prefetch_related("versions")
    return render(request, "datasets/list.html", {"datasets": datasets})
