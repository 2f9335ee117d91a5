from django.urls import path

from evalhub.tuning import views

app_name = "tuning"
urlpatterns = [
    path("p/<int:project_id>/tuning/", views.run_list, name="list"),
    path("p/<int:project_id>/tuning/runs/new/", views.run_create, name="run-create"),
    path("p/<int:project_id>/tuning/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("p/<int:project_id>/tuning/runs/<int:run_id>/losses/", views.run_losses, name="run-losses"),
    path("p/<int:project_id>/tuning/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("p/<int:project_id>/tuning/compare/", views.compare, name="compare"),
    path("p/<int:project_id>/tuning/models/", views.model_list, name="model-list"),
    path("p/<int:project_id>/tuning/models/base/", views.model_create_base, name="model-create-base"),
    path("p/<int:project_id>/tuning/models/<int:version_id>/", views.model_detail, name="model-detail"),
    path(
        "p/<int:project_id>/tuning/models/<int:version_id>/adapter.zip",
        views.model_adapter,
        name="model-adapter",
    ),
    path(
        "p/<int:project_id>/tuning/models/<int:version_id>/export/", views.model_export, name="model-export"
    ),
    path(
        "p/<int:project_id>/tuning/models/<int:version_id>/merged.zip",
        views.model_merged,
        name="model-merged",
    ),
    path("p/<int:project_id>/tuning/sweeps/", views.sweep_list, name="sweep-list"),
    path("p/<int:project_id>/tuning/sweeps/new/", views.sweep_create, name="sweep-create"),
    path("p/<int:project_id>/tuning/sweeps/<int:sweep_id>/", views.sweep_detail, name="sweep-detail"),
    path(
        "p/<int:project_id>/tuning/sweeps/<int:sweep_id>/promote/", views.sweep_promote, name="sweep-promote"
    ),
]
