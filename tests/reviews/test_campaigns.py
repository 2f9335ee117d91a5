"""Campaigns: mixed runs, stratified sampling of examples, shuffled order, sanitised guidelines, gold items."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.generation.models import RunStatus
from evalhub.reviews import services
from evalhub.reviews.models import CampaignItem
from tests.reviews.factories import make_campaign, make_runs


@pytest.mark.django_db
def test_campaign_mixes_runs_and_shuffles_them(world: Any) -> None:
    runs = make_runs(world.project, n_examples=20, n_versions=3)
    campaign = make_campaign(world.project, world.lead, runs, overlap=3)
    items = list(CampaignItem.objects.filter(campaign=campaign).order_by("position").select_related("output__run"))
    assert len(items) == 60 == campaign.item_count
    by_model = [it.output.run.model_version_id for it in items]
    assert Counter(by_model) == {mv.pk: 20 for mv in runs.versions}
    # Shuffled: the queue order does not run through one model's outputs first.
    longest = max(len(list(g)) for _, g in __import__("itertools").groupby(by_model))
    assert longest < 10
    assert all(it.open_slots == 3 for it in items)


@pytest.mark.django_db
def test_sampling_is_stratified_by_attribute_and_paired_across_models(world: Any) -> None:
    runs = make_runs(world.project, n_examples=30, n_versions=2)  # categories cycle: 10 of each
    campaign = make_campaign(world.project, world.lead, runs, sample={"sample_size": 9, "stratify_by": "category", "seed": 3})
    items = CampaignItem.objects.filter(campaign=campaign).select_related("output__example")
    examples = {it.output.example_id: it.output.example.attributes["category"] for it in items}
    assert len(examples) == 9
    assert Counter(examples.values()) == {"shoes": 3, "kitchen": 3, "garden": 3}
    # Every chosen example is rated for both model versions (the comparison is on the same prompts).
    assert Counter(it.output.example_id for it in items) == dict.fromkeys(examples, 2)
    again = make_campaign(world.project, world.lead, runs, name="Again",
                          sample={"sample_size": 9, "stratify_by": "category", "seed": 3})
    assert {it.output.example_id for it in again.items.select_related("output")} == set(examples)


def test_stratified_sample_keeps_uneven_shares() -> None:
    keys = list(range(100))
    groups = ["a"] * 70 + ["b"] * 20 + ["c"] * 10
    chosen = services._stratified_sample(keys, groups, 10, seed=0)
    assert Counter(groups[k] for k in chosen) == {"a": 7, "b": 2, "c": 1}
    assert len(set(chosen)) == 10


@pytest.mark.django_db
def test_guidelines_markdown_is_rendered_and_sanitised(world: Any, runs: Any) -> None:
    md = "# Rate copy\n\n**Be strict** about facts.\n\n<script>alert(1)</script>\n\n[x](javascript:alert(2)) <img src=x onerror=alert(3)>"
    campaign = make_campaign(world.project, world.lead, runs, guidelines=md)
    html = campaign.guidelines_html
    assert "<h1>Rate copy</h1>" in html and "<strong>Be strict</strong>" in html
    for bad in ("<script", "onerror", "javascript:"):
        assert bad not in html
    assert campaign.guidelines_markdown == md


@pytest.mark.django_db
def test_campaign_input_is_checked(world: Any, runs: Any) -> None:
    other_runs = make_runs(world.other_project, n_examples=2)
    with pytest.raises(ValidationError) as err:
        make_campaign(world.project, world.lead, other_runs)
    assert "runs" in err.value.message_dict
    runs.runs[0].status = RunStatus.RUNNING
    runs.runs[0].save()
    with pytest.raises(ValidationError) as err:
        make_campaign(world.project, world.lead, runs, overlap=0)
    assert {"runs", "overlap"} <= set(err.value.message_dict)
    assert not world.project.review_campaigns.exists()


@pytest.mark.django_db
def test_gold_items_are_rated_by_everyone_and_validated(world: Any, campaign: Any, annotators: list[Any]) -> None:
    item = campaign.items.order_by("position").first()
    with pytest.raises(ValidationError) as err:
        services.campaign_set_gold(campaign=campaign, item=item, expected={"Accuracy": 9})
    assert "values.Accuracy" in err.value.message_dict
    services.campaign_set_gold(campaign=campaign, item=item, expected={"Accuracy": 4, "Safe": 1})
    item.refresh_from_db()
    campaign.refresh_from_db()
    assert item.is_gold and item.gold_expected == {"Accuracy": 4.0, "Safe": 1.0}
    assert campaign.gold_count == 1 and campaign.ratings_wanted == (campaign.item_count - 1) * 2
    # k = 2, yet all five annotators get the gold item (it is first in the queue).
    for user in [world.annotator, *annotators]:
        a = services.assignment_next(campaign=campaign, user=user)
        assert a is not None and a.item_id == item.pk
    services.campaign_set_gold(campaign=campaign, item=item, expected=None)
    item.refresh_from_db()
    assert not item.is_gold and item.open_slots == 0


@pytest.mark.django_db
def test_campaign_page_creates_a_campaign(world: Any, client_for: Any, runs: Any) -> None:
    rubric = services.rubric_copy_template(project=world.project, template="content", created_by=world.lead)
    c = client_for(world.lead)
    r = c.post(f"/p/{world.project.pk}/reviews/campaigns/new/", {
        "name": "Copy round", "rubric_version": services.rubric_latest_version(rubric).pk,
        "runs": [run.pk for run in runs.runs], "overlap": 2, "seed": 0, "guidelines": "Read **twice**.",
        "assignment_minutes": 30, "likert_threshold": 1, "nominal_threshold": 0.34,
        "annotators": [world.annotator.pk],
    })
    assert r.status_code == 302, r.content.decode()[:2000]
    campaign = world.project.review_campaigns.get()
    assert campaign.item_count == 12 and list(campaign.annotators.all()) == [world.annotator]
    assert services.campaign_may_rate(campaign, world.annotator)
    assert not services.campaign_may_rate(campaign, world.reviewer)
    page = c.get(r["Location"]).content.decode()
    assert "<strong>twice</strong>" in page
    # The reviewer is not among the annotators: sees the campaign but cannot rate in it.
    rc = client_for(world.reviewer)
    assert rc.get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/next/").status_code == 403
