from django.urls import path

from evalhub.datasets import api

P = "projects/<int:project_id>/"
urlpatterns = [
    path(P + "datasets/", api.DatasetListAPI.as_view(), name="api-dataset-list"),
    path(P + "datasets/upload/", api.DatasetUploadAPI.as_view(), name="api-dataset-upload"),
    path(P + "datasets/<int:dataset_id>/", api.DatasetDetailAPI.as_view(), name="api-dataset-detail"),
    path(P + "datasets/<int:dataset_id>/versions/", api.VersionListAPI.as_view(), name="api-version-list"),
    path(P + "versions/<int:version_id>/", api.VersionDetailAPI.as_view(), name="api-version-detail"),
    path(P + "versions/<int:version_id>/examples/", api.ExampleListAPI.as_view(), name="api-example-list"),
    path(P + "versions/<int:version_id>/quality-reports/", api.QualityReportListAPI.as_view(),
         name="api-quality-report-list"),
    path(P + "versions/<int:version_id>/quality-reports/run/", api.QualityReportCreateAPI.as_view(),
         name="api-quality-report-create"),
    path(P + "quality-reports/<int:report_id>/", api.QualityReportDetailAPI.as_view(),
         name="api-quality-report-detail"),
]
