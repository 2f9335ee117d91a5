"""The annotator queue: overlap k, no repeats, resume, skip, expiry, going back, progress."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from evalhub.reviews import selectors, services
from evalhub.reviews.models import Assignment, AssignmentStatus, CampaignItem, Rating

GOOD = {"Accuracy": 4, "Safe": 1}


def rate_all(campaign: Any, user: Any) -> list[int]:
    """Rate everything the queue hands this user; returns the output ids they rated."""
    seen = []
    while (a := services.assignment_next(campaign=campaign, user=user)) is not None:
        seen.append(a.item.output_id)
        services.rating_submit(campaign=campaign, user=user, assignment_token=a.token, values=GOOD)
    return seen


@pytest.mark.django_db
def test_no_output_gets_more_than_k_and_nobody_rates_twice(world: Any, campaign: Any, annotators: list[Any]) -> None:
    per_user = {u.pk: rate_all(campaign, u) for u in [world.annotator, *annotators]}
    for rated in per_user.values():
        assert len(rated) == len(set(rated))
    counts = Counter(o for rated in per_user.values() for o in rated)
    assert set(counts.values()) == {2}  # k = 2, every one of the 12 outputs filled exactly
    assert len(counts) == campaign.item_count == 12
    assert sum(len(r) for r in per_user.values()) == 24
    assert not CampaignItem.objects.filter(campaign=campaign, open_slots__gt=0).exists()
    assert services.assignment_next(campaign=campaign, user=world.reviewer) is None


@pytest.mark.django_db
def test_next_resumes_the_held_item(world: Any, campaign: Any) -> None:
    first = services.assignment_next(campaign=campaign, user=world.annotator)
    again = services.assignment_next(campaign=campaign, user=world.annotator)
    assert first is not None and again is not None and first.pk == again.pk
    assert Assignment.objects.filter(annotator=world.annotator).count() == 1


@pytest.mark.django_db
def test_skip_frees_the_slot_for_others_but_not_for_the_skipper(world: Any, runs: Any, annotators: list[Any]) -> None:
    from tests.reviews.factories import make_campaign

    campaign = make_campaign(world.project, world.lead, runs, overlap=1)
    a = services.assignment_next(campaign=campaign, user=world.annotator)
    assert a is not None
    assert services.assignment_skip(assignment=a, user=world.annotator)
    assert not services.assignment_skip(assignment=a, user=world.annotator)  # already skipped: no second slot back
    assert CampaignItem.objects.get(pk=a.item_id).open_slots == 1
    mine = rate_all(campaign, world.annotator)
    assert a.item.output_id not in mine and len(mine) == campaign.item_count - 1
    theirs = services.assignment_next(campaign=campaign, user=annotators[0])
    assert theirs is not None and theirs.item_id == a.item_id
    with pytest.raises(ValidationError) as err:
        services.assignment_skip(assignment=theirs, user=world.annotator)
    assert "assignment" in err.value.message_dict


@pytest.mark.django_db
def test_expired_items_go_back_and_a_late_submit_is_kept_only_if_a_slot_is_free(
    world: Any, runs: Any, annotators: list[Any]
) -> None:
    from tests.reviews.factories import make_campaign

    campaign = make_campaign(world.project, world.lead, runs, overlap=1, assignment_minutes=10)
    held = services.assignment_next(campaign=campaign, user=world.annotator)
    assert held is not None
    later = timezone.now() + timedelta(minutes=11)
    # Another annotator asking after the hold ran out gets the same item: its slot came back.
    other = services.assignment_next(campaign=campaign, user=annotators[0], now=later)
    assert other is not None and other.item_id == held.item_id
    assert Assignment.objects.get(pk=held.pk).status == AssignmentStatus.EXPIRED
    services.rating_submit(campaign=campaign, user=annotators[0], assignment_token=other.token, values=GOOD)
    # The first annotator's late submit would exceed k = 1: refused, naming the assignment, nothing stored.
    with pytest.raises(ValidationError) as err:
        services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=held.token, values=GOOD)
    assert "assignment" in err.value.message_dict
    assert Rating.objects.filter(annotator=world.annotator).count() == 0

    # With a free slot, a late submit is kept.
    held2 = services.assignment_next(campaign=campaign, user=world.annotator, now=later)
    assert held2 is not None
    services.assignments_reclaim_expired(campaign=campaign, now=later + timedelta(minutes=11))
    assert Assignment.objects.get(pk=held2.pk).status == AssignmentStatus.EXPIRED
    services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=held2.token, values=GOOD)
    item = CampaignItem.objects.get(pk=held2.item_id)
    assert (item.open_slots, item.ratings_count) == (0, 1)


@pytest.mark.django_db
def test_going_back_revises_and_progress_counts(world: Any, campaign: Any) -> None:
    tokens = []
    for _ in range(3):
        a = services.assignment_next(campaign=campaign, user=world.annotator)
        assert a is not None
        tokens.append(a.token)
        services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=a.token, values=GOOD,
                               submission_token=f"t-{a.token}")
    current = services.assignment_next(campaign=campaign, user=world.annotator)
    assert current is not None
    prev, nxt = selectors.history_neighbours(current)
    assert prev == tokens[2] and nxt is None
    second = Assignment.objects.get(token=tokens[1])
    assert selectors.history_neighbours(second) == (tokens[0], tokens[2])
    result = services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=tokens[1],
                                    values={"Accuracy": 2, "Safe": 0}, submission_token="revise")
    assert result.revised and not result.created
    rating = Rating.objects.get(assignment=second)
    assert rating.revisions == 1 and {v.criterion.name: v.number for v in rating.values.all()} == {"Accuracy": 2, "Safe": 0}
    assert Rating.objects.count() == 3
    progress = selectors.progress_for(campaign, world.annotator)
    assert (progress.mine, progress.done, progress.wanted) == (3, 3, 24)
    assert progress.percent == pytest.approx(12.5)
    # The active item is still the one being held; revising did not move the queue.
    assert services.assignment_next(campaign=campaign, user=world.annotator).pk == current.pk  # type: ignore[union-attr]


@pytest.mark.django_db
def test_annotator_outside_the_chosen_list_gets_nothing(world: Any, runs: Any, annotators: list[Any], client_for: Any) -> None:
    from tests.reviews.factories import make_campaign

    campaign = make_campaign(world.project, world.lead, runs, annotator_ids=[annotators[0].pk])
    assert services.campaign_may_rate(campaign, annotators[0])
    assert not services.campaign_may_rate(campaign, world.annotator)
    page = client_for(world.annotator).get(f"/p/{world.project.pk}/reviews/")
    assert campaign.name not in page.content.decode()
    assert client_for(world.annotator).get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/next/").status_code == 403
