from django.urls import path

from evalhub.metrics import api

P = "projects/<int:project_id>/"
urlpatterns = [
    path(P + "metric-runs/", api.MetricRunListAPI.as_view(), name="api-metric-run-list"),
    path(P + "metric-runs/compare/", api.MetricCompareAPI.as_view(), name="api-metric-compare"),
    path(P + "metric-runs/<int:metric_run_id>/", api.MetricRunDetailAPI.as_view(), name="api-metric-run-detail"),
    path(P + "metric-runs/<int:metric_run_id>/aggregates/", api.MetricAggregatesAPI.as_view(), name="api-metric-aggregates"),
    path(P + "metric-runs/<int:metric_run_id>/export/", api.MetricExportAPI.as_view(), name="api-metric-export"),
]
