from django.urls import path, register_converter

from evalhub.reviews import views


class TokenConverter:
    """Opaque item tokens (secrets.token_urlsafe)."""

    regex = r"[A-Za-z0-9_-]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TokenConverter, "token")

app_name = "reviews"
urlpatterns = [
    path("p/<int:project_id>/reviews/", views.review_list, name="list"),
    path("p/<int:project_id>/reviews/rubrics/", views.rubric_list, name="rubrics"),
    path("p/<int:project_id>/reviews/rubrics/new/", views.rubric_new, name="rubric-new"),
    path("p/<int:project_id>/reviews/rubrics/<int:rubric_id>/", views.rubric_edit, name="rubric-edit"),
    path("p/<int:project_id>/reviews/campaigns/new/", views.campaign_new, name="campaign-new"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/", views.campaign_detail, name="campaign"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/settings/", views.campaign_settings, name="campaign-settings"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/gold/", views.campaign_gold, name="gold"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/next/", views.rate_next, name="next"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/rate/<token:token>/", views.rate, name="rate"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/rate/<token:token>/skip/", views.rate_skip, name="skip"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/adjudicate/", views.adjudication_list, name="adjudications"),
    path(
        "p/<int:project_id>/reviews/c/<int:campaign_id>/adjudicate/<token:item_token>/",
        views.adjudicate,
        name="adjudicate",
    ),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/corrections/", views.corrections, name="corrections"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/agreement/", views.agreement, name="agreement"),
    path("p/<int:project_id>/reviews/c/<int:campaign_id>/results/", views.results, name="results"),
    path(
        "p/<int:project_id>/reviews/c/<int:campaign_id>/export.<str:fmt>",
        views.export,
        name="export",
    ),
]
