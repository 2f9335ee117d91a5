from django.urls import path

from evalhub.jobs import views

app_name = "jobs"
urlpatterns = [
    path("p/<int:project_id>/jobs/", views.job_list, name="list"),
    path("p/<int:project_id>/jobs/<int:job_id>/", views.job_detail, name="detail"),
    path("p/<int:project_id>/jobs/<int:job_id>/status/", views.job_status, name="status"),
    path("p/<int:project_id>/jobs/<int:job_id>/cancel/", views.job_cancel, name="cancel"),
]
