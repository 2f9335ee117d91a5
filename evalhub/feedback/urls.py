from django.urls import path

from evalhub.feedback import views

app_name = "feedback"
P = "p/<int:project_id>/feedback/"
urlpatterns = [
    path(P, views.feedback_list, name="list"),
    path(P + "exports/new/", views.export_create, name="export-create"),
    path(P + "exports/<int:export_id>/", views.export_detail, name="export-detail"),
    path(P + "exports/<int:export_id>/download/", views.export_download, name="export-download"),
    path(P + "retrain/", views.retrain_create, name="retrain"),
    path(P + "retrain/<int:pipeline_id>/", views.pipeline_detail, name="pipeline"),
    path(P + "retrain/<int:pipeline_id>/advance/", views.pipeline_advance, name="pipeline-advance"),
    path(P + "retrain/<int:pipeline_id>/cancel/", views.pipeline_cancel, name="pipeline-cancel"),
    path("p/<int:project_id>/timeline/", views.timeline, name="timeline"),
]
