from django.urls import path

from evalhub.tuning import api

P = "projects/<int:project_id>/"
urlpatterns = [
    path(f"{P}base-models/", api.BaseModelListAPI.as_view(), name="api-base-model-list"),
    path(f"{P}training-runs/", api.TrainingRunListCreateAPI.as_view(), name="api-training-run-list"),
    path(
        f"{P}training-runs/<int:run_id>/", api.TrainingRunDetailAPI.as_view(), name="api-training-run-detail"
    ),
    path(
        f"{P}training-runs/<int:run_id>/cancel/",
        api.TrainingRunCancelAPI.as_view(),
        name="api-training-run-cancel",
    ),
    path(
        f"{P}training-runs/<int:run_id>/losses/",
        api.TrainingRunLossesAPI.as_view(),
        name="api-training-run-losses",
    ),
    path(f"{P}model-versions/", api.ModelVersionListAPI.as_view(), name="api-model-version-list"),
    path(
        f"{P}model-versions/<int:version_id>/",
        api.ModelVersionDetailAPI.as_view(),
        name="api-model-version-detail",
    ),
    path(f"{P}sweeps/", api.SweepListCreateAPI.as_view(), name="api-sweep-list"),
    path(f"{P}sweeps/<int:sweep_id>/", api.SweepDetailAPI.as_view(), name="api-sweep-detail"),
]
