from django.urls import path

from evalhub.jobs import api

urlpatterns = [
    path("projects/<int:project_id>/jobs/<int:job_id>/", api.JobDetailAPI.as_view(), name="api-job-detail"),
    path("projects/<int:project_id>/jobs/<int:job_id>/cancel/", api.JobCancelAPI.as_view(), name="api-job-cancel"),
]
