from django.urls import path

from evalhub.generation import api

P = "projects/<int:project_id>/"
urlpatterns = [
    path(P + "generation-runs/", api.GenerationRunListAPI.as_view(), name="api-generation-run-list"),
    path(P + "generation-runs/<int:run_id>/", api.GenerationRunDetailAPI.as_view(), name="api-generation-run-detail"),
    path(P + "generation-runs/<int:run_id>/outputs/", api.OutputListAPI.as_view(), name="api-output-list"),
]
