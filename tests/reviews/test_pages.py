"""Lead and reviewer pages that change state: adjudicating, gold items, campaign settings."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.reviews import services
from evalhub.reviews.models import Adjudication, AdjudicationStatus, CampaignItem


def _fill(campaign: Any, users: list[Any], accuracy: list[int]) -> None:
    for user, level in zip(users, accuracy, strict=True):
        while (a := services.assignment_next(campaign=campaign, user=user)) is not None:
            services.rating_submit(campaign=campaign, user=user, assignment_token=a.token,
                                   values={"Accuracy": level, "Safe": 1})


@pytest.mark.django_db
def test_reviewer_adjudicates_on_the_page(world: Any, campaign: Any, annotators: list[Any], client_for: Any) -> None:
    _fill(campaign, [world.annotator, annotators[0]], [1, 5])
    pending = list(Adjudication.objects.filter(campaign=campaign, status=AdjudicationStatus.OPEN))
    assert len(pending) == campaign.item_count
    c = client_for(world.reviewer)
    url = f"/p/{world.project.pk}/reviews/c/{campaign.pk}/adjudicate/{pending[0].item.token}/"
    page = c.get(url).content.decode()
    assert "raters disagreed" in page and world.annotator.username in page
    missing = c.post(url, {"c2": "1"})
    assert missing.status_code == 400 and "Required: the raters disagreed" in missing.content.decode()
    done = c.post(url, {"c1": "3", "c2": "1", "note": "Middle ground."})
    assert done.status_code == 302 and "/adjudicate/" in done["Location"]  # on to the next one waiting
    pending[0].refresh_from_db()
    assert pending[0].status == AdjudicationStatus.RESOLVED and pending[0].reviewer == world.reviewer
    assert {v.criterion.name: v.number for v in pending[0].values.all()} == {"Accuracy": 3.0, "Safe": 1.0}
    assert client_for(world.annotator).get(url).status_code == 403


@pytest.mark.django_db
def test_lead_sets_gold_and_closes_the_campaign(world: Any, campaign: Any, client_for: Any) -> None:
    c = client_for(world.lead)
    base = f"/p/{world.project.pk}/reviews/c/{campaign.pk}"
    item = campaign.items.order_by("position").first()
    bad = c.post(f"{base}/gold/", {"item": item.token, "c1": "", "c2": ""})
    assert bad.status_code == 200 and "Give the expected rating" in bad.content.decode()
    assert c.post(f"{base}/gold/", {"item": item.token, "c1": "5", "c2": "1"}).status_code == 302
    item.refresh_from_db()
    assert item.is_gold and item.gold_expected == {"Accuracy": 5.0, "Safe": 1.0}
    assert c.post(f"{base}/gold/", {"item": "not-a-token", "c1": "5"}).status_code == 404
    assert c.post(f"{base}/gold/", {"item": item.token, "action": "unset"}).status_code == 302
    assert not CampaignItem.objects.get(pk=item.pk).is_gold

    c.post(f"{base}/settings/", {"action": "guidelines", "guidelines": "# New\n<script>x</script>"})
    campaign.refresh_from_db()
    assert campaign.guidelines_html.strip() == "<h1>New</h1>"
    c.post(f"{base}/settings/", {"action": "close"})
    campaign.refresh_from_db()
    assert not campaign.is_open
    done = client_for(world.annotator).get(f"{base}/next/")
    assert done.status_code == 200 and "This campaign is closed" in done.content.decode()


@pytest.mark.django_db
def test_rubric_table_names_the_real_likert_range(world: Any, campaign: Any, client_for: Any) -> None:
    c = client_for(world.lead)
    page = c.get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/").content.decode()
    assert "Likert 1–5" in page  # Accuracy has five levels
    assert "Pass / fail" in page
    assert "1..N" not in page
    form = c.get(f"/p/{world.project.pk}/reviews/rubrics/new/").content.decode()
    assert "1..N" not in form and '>Likert scale</option>' in form
