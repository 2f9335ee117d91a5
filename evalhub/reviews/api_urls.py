from django.urls import path

from evalhub.reviews import api

_C = "projects/<int:project_id>/reviews/campaigns/<int:campaign_id>"

urlpatterns = [
    path("projects/<int:project_id>/reviews/campaigns/", api.CampaignListAPI.as_view(), name="api-review-campaigns"),
    path(f"{_C}/next/", api.NextItemAPI.as_view(), name="api-review-next"),
    path(f"{_C}/ratings/", api.RatingSubmitAPI.as_view(), name="api-review-submit"),
    path(f"{_C}/skip/", api.SkipAPI.as_view(), name="api-review-skip"),
    path(f"{_C}/agreement/", api.AgreementAPI.as_view(), name="api-review-agreement"),
    path(f"{_C}/results/", api.ResultsAPI.as_view(), name="api-review-results"),
    path("projects/<int:project_id>/reviews/rubrics/", api.RubricListAPI.as_view(), name="api-review-rubrics"),
]
