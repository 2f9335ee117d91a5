from django.urls import path

from evalhub.metrics import views

app_name = "metrics"
urlpatterns = [
    path("p/<int:project_id>/metrics/", views.run_list, name="list"),
    path("p/<int:project_id>/metrics/runs/<int:metric_run_id>/", views.run_detail, name="run"),
    path("p/<int:project_id>/metrics/runs/<int:metric_run_id>/export/", views.export, name="export"),
    path("p/<int:project_id>/metrics/versions/<int:version_id>/", views.version_detail, name="version"),
    path("p/<int:project_id>/metrics/compare/", views.compare, name="compare"),
    path("p/<int:project_id>/metrics/trust/", views.trust_page, name="trust"),
]
