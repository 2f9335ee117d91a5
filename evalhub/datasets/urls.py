from django.urls import path

from evalhub.datasets import views

app_name = "datasets"
urlpatterns = [
    path("p/<int:project_id>/data/", views.dataset_list, name="list"),
    path("p/<int:project_id>/data/upload/", views.dataset_upload, name="upload"),
    path("p/<int:project_id>/data/v/<int:version_id>/", views.version_detail, name="version"),
    path("p/<int:project_id>/data/v/<int:version_id>/split/", views.version_split, name="version-split"),
    path("p/<int:project_id>/data/v/<int:version_id>/rebalance/", views.version_rebalance, name="version-rebalance"),
    path("p/<int:project_id>/data/v/<int:version_id>/quality/", views.quality_run, name="quality-run"),
    path("p/<int:project_id>/data/v/<int:version_id>/curation/", views.curation_create, name="curation-create"),
    path("p/<int:project_id>/data/quality/<int:report_id>/", views.quality_detail, name="quality"),
    path("p/<int:project_id>/data/curation/<int:queue_id>/", views.curation_detail, name="curation"),
    path("p/<int:project_id>/data/curation/<int:queue_id>/annotate/", views.curation_annotate,
         name="curation-annotate"),
    path("p/<int:project_id>/data/curation/<int:queue_id>/apply/", views.curation_apply, name="curation-apply"),
]
