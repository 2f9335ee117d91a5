from django.urls import path

from evalhub.feedback import api

P = "projects/<int:project_id>/"
urlpatterns = [
    path(P + "feedback-exports/", api.ExportListAPI.as_view(), name="api-feedback-export-list"),
    path(
        P + "feedback-exports/<int:export_id>/",
        api.ExportDetailAPI.as_view(),
        name="api-feedback-export-detail",
    ),
    path(
        P + "feedback-exports/<int:export_id>/download/",
        api.ExportDownloadAPI.as_view(),
        name="api-feedback-export-download",
    ),
    path(P + "retrains/", api.RetrainListAPI.as_view(), name="api-feedback-retrain-list"),
    path(
        P + "retrains/<int:pipeline_id>/", api.RetrainDetailAPI.as_view(), name="api-feedback-retrain-detail"
    ),
    path(
        P + "retrains/<int:pipeline_id>/advance/",
        api.RetrainAdvanceAPI.as_view(),
        name="api-feedback-retrain-advance",
    ),
    path(P + "timeline/", api.TimelineAPI.as_view(), name="api-feedback-timeline"),
]
