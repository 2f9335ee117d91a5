"""Votes: stored once, refused clearly (status and message) when not allowed, nothing stored on a refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evalhub.arena import services
from evalhub.arena.models import Assignment, Comparison, Vote
from tests.arena.factories import Eval, campaign, eval_with_runs

pytestmark = pytest.mark.django_db


def api_url(c: Any, what: str) -> str:
    return f"/api/projects/{c.project_id}/arena/campaigns/{c.pk}/{what}/"


@pytest.fixture
def served(world: Any, ev: Eval, api_for: Any) -> tuple[Any, Any, str]:
    c = campaign(world.project, ev, criteria=("accuracy", "tone"))
    api = api_for(world.annotator)
    token = api.get(api_url(c, "next")).json()["comparison"]["token"]
    return c, api, token


def test_vote_then_same_vote_again_is_stored_once(served: tuple[Any, Any, str]) -> None:
    c, api, token = served
    body = {"comparison": token, "choice": "b", "criteria": {"accuracy": "a"}, "reason": "B names the wood."}
    first = api.post(api_url(c, "votes"), body, format="json")
    assert first.status_code == 201 and first.json()["created"] is True
    again = api.post(api_url(c, "votes"), body, format="json")
    assert again.status_code == 200 and again.json()["created"] is False
    vote = Vote.objects.get()
    assert (vote.choice, vote.criteria, vote.reason) == ("b", {"accuracy": "a"}, "B names the wood.")
    assert Assignment.objects.get().status == "voted"
    assert Comparison.objects.get(token=token).n_votes == 1


def test_a_different_second_vote_is_a_conflict(served: tuple[Any, Any, str]) -> None:
    c, api, token = served
    api.post(api_url(c, "votes"), {"comparison": token, "choice": "a"}, format="json")
    r = api.post(api_url(c, "votes"), {"comparison": token, "choice": "b"}, format="json")
    assert r.status_code == 409
    assert r.json()["code"] == "already_voted" and "A is better" in r.json()["detail"]
    assert list(Vote.objects.values_list("choice", flat=True)) == ["a"]


def test_vote_on_a_comparison_not_served_to_me(world: Any, served: tuple[Any, Any, str], api_for: Any) -> None:
    c, _api, token = served
    other = Comparison.objects.filter(campaign=c).exclude(token=token).first()
    r = api_for(world.annotator).post(api_url(c, "votes"), {"comparison": other.token, "choice": "a"}, format="json")
    assert r.status_code == 403 and r.json()["code"] == "not_served"
    # Someone else's comparison is not mine either.
    r = api_for(world.reviewer).post(api_url(c, "votes"), {"comparison": token, "choice": "a"}, format="json")
    assert r.status_code == 403
    r = api_for(world.annotator).post(api_url(c, "votes"), {"comparison": "nope", "choice": "a"}, format="json")
    assert r.status_code == 404 and r.json()["code"] == "unknown_comparison"
    assert not Vote.objects.exists()


def test_vote_on_a_closed_campaign(world: Any, served: tuple[Any, Any, str]) -> None:
    c, api, token = served
    services.campaign_set_status(campaign=c, status="closed")
    r = api.post(api_url(c, "votes"), {"comparison": token, "choice": "a"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "campaign_closed"
    assert "closed" in r.json()["detail"]
    assert not Vote.objects.exists()
    nxt = api.get(api_url(c, "next")).json()
    assert nxt["comparison"] is None and "closed" in nxt["detail"]


def test_vote_after_skipping(served: tuple[Any, Any, str]) -> None:
    c, api, token = served
    assert api.post(api_url(c, "skip"), {"comparison": token}, format="json").status_code == 204
    r = api.post(api_url(c, "votes"), {"comparison": token, "choice": "a"}, format="json")
    assert r.status_code == 409 and r.json()["code"] == "skipped"


@pytest.mark.parametrize(("body", "field"), [
    ({"choice": "left"}, "choice"),
    ({"choice": "a", "criteria": {"charm": "a"}}, "criteria"),
    ({"choice": "a", "criteria": {"accuracy": "left"}}, "criteria"),
    ({"choice": "a", "reason": "x" * 2001}, "reason"),
    ({"choice": "a", "reason": "bad\u0000"}, "reason"),
    ({"choice": "a", "seconds": "soon"}, "seconds"),
    ({}, "comparison"),
])
def test_malformed_votes_name_the_field(served: tuple[Any, Any, str], body: dict[str, Any], field: str) -> None:
    c, api, token = served
    payload = {"comparison": token, **body} if body else {}
    r = api.post(api_url(c, "votes"), payload, format="json")
    assert r.status_code == 400 and field in r.json(), r.json()
    assert not Vote.objects.exists()


def test_service_refuses_criteria_outside_the_campaign(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev, criteria=("accuracy",))
    a = services.comparison_next(campaign=c, user=world.annotator)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as info:
        services.vote_submit(campaign=c, user=world.annotator, token=a.comparison.token, choice="a",
                             criteria={"charm": "b"})
    assert "not a criterion of this campaign" in info.value.message_dict["criteria"][0]


def test_late_vote_is_kept_while_a_slot_is_free_and_refused_once_it_was_given_away(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=1, n_versions=2)
    c = campaign(world.project, ev, overlap=1, claim_minutes=10)
    a = services.comparison_next(campaign=c, user=world.annotator)
    later = timezone.now() + timedelta(minutes=11)
    services.assignments_expire(c, later)
    assert Comparison.objects.get().n_taken == 0
    _vote, created = services.vote_submit(campaign=c, user=world.annotator, token=a.comparison.token, choice="a")
    assert created and Comparison.objects.get().n_taken == 1

    ev2 = eval_with_runs(world.project, n_examples=1, n_versions=2)
    c2 = campaign(world.project, ev2, overlap=1, claim_minutes=10)
    a2 = services.comparison_next(campaign=c2, user=world.annotator)
    b2 = services.comparison_next(campaign=c2, user=world.reviewer, now=timezone.now() + timedelta(minutes=11))
    assert b2 is not None and b2.comparison_id == a2.comparison_id
    with pytest.raises(services.ArenaRefusal) as info:
        services.vote_submit(campaign=c2, user=world.annotator, token=a2.comparison.token, choice="a")
    assert info.value.code == "expired" and info.value.http_status == 409


def test_keyboard_page_posts_a_vote_and_serves_the_next(world: Any, ev: Eval, client_for: Any) -> None:
    c = campaign(world.project, ev, criteria=("accuracy",))
    client = client_for(world.annotator)
    url = f"/p/{world.project.pk}/arena/{c.pk}/vote/"
    page = client.get(url).content.decode()
    token = Assignment.objects.get(annotator=world.annotator).comparison.token
    assert f'value="{token}"' in page
    r = client.post(url, {"comparison": token, "choice": "tie", "crit-0": "b", "reason": "Both fine.", "seconds": "4.2"})
    assert r.status_code == 302
    vote = Vote.objects.get()
    assert (vote.choice, vote.criteria, vote.reason, vote.seconds_spent) == ("tie", {"accuracy": "b"}, "Both fine.", 4.2)
    nxt = client.get(url).content.decode()
    assert token not in nxt and "Saved: Tie." in nxt
    # A different vote re-posted for the old comparison is refused with a message, nothing changes.
    r = client.post(url, {"comparison": token, "choice": "a"}, follow=True)
    assert "a vote cannot be changed" in r.content.decode()
    assert Vote.objects.get().choice == "tie"
    bad = client.post(url, {"comparison": Assignment.objects.get(status="open").comparison.token, "choice": "maybe"})
    assert bad.status_code == 400 and "choice" in bad.content.decode()
