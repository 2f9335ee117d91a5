from django.urls import path

from evalhub.arena import api

P = "projects/<int:project_id>/arena/campaigns/"
C = P + "<int:campaign_id>/"
urlpatterns = [
    path(P, api.CampaignListAPI.as_view(), name="api-arena-campaign-list"),
    path(P + "create/", api.CampaignCreateAPI.as_view(), name="api-arena-campaign-create"),
    path(P + "import/", api.CampaignImportAPI.as_view(), name="api-arena-import"),
    path(C, api.CampaignDetailAPI.as_view(), name="api-arena-campaign-detail"),
    path(C + "status/", api.CampaignStatusAPI.as_view(), name="api-arena-campaign-status"),
    path(C + "next/", api.NextComparisonAPI.as_view(), name="api-arena-next"),
    path(C + "votes/", api.VoteAPI.as_view(), name="api-arena-vote"),
    path(C + "skip/", api.SkipAPI.as_view(), name="api-arena-skip"),
    path(C + "leaderboard/", api.LeaderboardAPI.as_view(), name="api-arena-leaderboard"),
    path(C + "annotators/", api.AnnotatorStatsAPI.as_view(), name="api-arena-annotators"),
]
