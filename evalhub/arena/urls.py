from django.urls import path

from evalhub.arena import views

app_name = "arena"
P = "p/<int:project_id>/arena/"
urlpatterns = [
    path(P, views.campaign_list, name="list"),
    path(P + "new/", views.campaign_create, name="create"),
    path(P + "import/", views.campaign_import, name="import"),
    path(P + "<int:campaign_id>/", views.campaign_detail, name="detail"),
    path(P + "<int:campaign_id>/vote/", views.vote, name="vote"),
    path(P + "<int:campaign_id>/status/", views.campaign_status, name="status"),
    path(P + "<int:campaign_id>/leaderboard/", views.leaderboard, name="leaderboard"),
    path(P + "<int:campaign_id>/annotators/", views.annotator_stats, name="annotators"),
]
