"""Submitting ratings through the API and the page: idempotent, never loses a rating, bad input is a 400 that names
the field and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.reviews import services
from evalhub.reviews.models import Assignment, Correction, Rating, RatingValue


def api_url(world: Any, campaign: Any, what: str) -> str:
    return f"/api/projects/{world.project.pk}/reviews/campaigns/{campaign.pk}/{what}/"


@pytest.mark.django_db
def test_submit_returns_the_next_item_and_a_double_submit_stores_one_rating(world: Any, campaign: Any, api_for: Any) -> None:
    api = api_for(world.annotator)
    first = api.get(api_url(world, campaign, "next")).json()["item"]
    body = {"assignment": first["assignment"], "values": {"Accuracy": 4, "Safe": 1, "Tone": "Pushy",
            "Issues": ["Typos", "Too long"], "Notes": "Fine."}, "comment": "ok", "seconds_on_item": 12.5,
            "submission_token": "abc-1"}
    r1 = api.post(api_url(world, campaign, "ratings"), body, format="json")
    r2 = api.post(api_url(world, campaign, "ratings"), body, format="json")
    assert r1.status_code == 201 and r2.status_code == 200
    assert r1.json()["rating"]["created"] and not r2.json()["rating"]["created"]
    assert Rating.objects.count() == 1 and RatingValue.objects.count() == 5
    nxt = r1.json()["item"]
    assert nxt["assignment"] != first["assignment"] and r2.json()["item"]["assignment"] == nxt["assignment"]
    assert r1.json()["progress"]["mine"] == 1
    rating = Rating.objects.get()
    assert rating.seconds_on_item == 12.5 and rating.comment == "ok"
    values = {v.criterion.name: v.display() for v in rating.values.select_related("criterion")}
    assert values == {"Accuracy": "4", "Safe": "pass", "Tone": "Pushy", "Issues": "Typos, Too long", "Notes": "Fine."}


@pytest.mark.django_db
def test_a_rating_is_stored_when_submitted_without_any_broker(world: Any, campaign: Any, settings: Any) -> None:
    # The broker points nowhere: submitting never touches it, the rating is committed in the request.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    a = services.assignment_next(campaign=campaign, user=world.annotator)
    assert a is not None
    services.rating_submit(campaign=campaign, user=world.annotator, assignment_token=a.token, values={"Accuracy": 3, "Safe": 0})
    assert Rating.objects.filter(assignment=a).exists()


def _bad_cases(other_token: str, token: str) -> list[tuple[str, dict[str, Any], str]]:
    ok = {"Accuracy": 3, "Safe": 1}
    return [
        ("out of range", {"assignment": token, "values": {"Accuracy": 6, "Safe": 1}}, "values.Accuracy"),
        ("level zero", {"assignment": token, "values": {"Accuracy": 0, "Safe": 1}}, "values.Accuracy"),
        ("not a number", {"assignment": token, "values": {"Accuracy": "four", "Safe": 1}}, "values.Accuracy"),
        ("fractional level", {"assignment": token, "values": {"Accuracy": 3.5, "Safe": 1}}, "values.Accuracy"),
        ("bool as level", {"assignment": token, "values": {"Accuracy": True, "Safe": 1}}, "values.Accuracy"),
        ("binary 2", {"assignment": token, "values": {"Accuracy": 3, "Safe": 2}}, "values.Safe"),
        ("unknown label", {"assignment": token, "values": {**ok, "Tone": "Shouty"}}, "values.Tone"),
        ("unknown multi-label", {"assignment": token, "values": {**ok, "Issues": ["Typos", "Nope"]}}, "values.Issues"),
        ("not in rubric", {"assignment": token, "values": {**ok, "Persuasiveness": 5}}, "values.Persuasiveness"),
        ("required missing", {"assignment": token, "values": {"Safe": 1}}, "values.Accuracy"),
        ("values not an object", {"assignment": token, "values": [3, 1]}, "values"),
        ("someone else's item", {"assignment": other_token, "values": ok}, "assignment"),
        ("made-up item", {"assignment": "no-such-token", "values": ok}, "assignment"),
        ("missing item", {"values": ok}, "assignment"),
        ("10 MB comment", {"assignment": token, "values": ok, "comment": "x" * 10_000_000}, "comment"),
        ("NUL in comment", {"assignment": token, "values": ok, "comment": "bad\x00byte"}, "comment"),
        ("NUL in text answer", {"assignment": token, "values": {**ok, "Notes": "a\x00"}}, "values.Notes"),
        ("NUL in correction", {"assignment": token, "values": ok, "corrected_text": "x\x00y"}, "corrected_text"),
        ("NUL in token", {"assignment": token + "\x00", "values": ok}, "assignment"),
        ("NUL in criterion name", {"assignment": token, "values": {**ok, "A\x00": 1}}, "values.'A\\x00'"),
        ("negative time", {"assignment": token, "values": ok, "seconds_on_item": -4}, "seconds_on_item"),
        ("comment not text", {"assignment": token, "values": ok, "comment": {"a": 1}}, "comment"),
    ]


@pytest.mark.django_db
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(
    world: Any, campaign: Any, api_for: Any, annotators: list[Any]
) -> None:
    api = api_for(world.annotator)
    token = api.get(api_url(world, campaign, "next")).json()["item"]["assignment"]
    other = api_for(annotators[0]).get(api_url(world, campaign, "next")).json()["item"]["assignment"]
    for name, body, field in _bad_cases(other, token):
        r = api.post(api_url(world, campaign, "ratings"), body, format="json")
        assert r.status_code == 400, (name, r.status_code)
        assert field in r.json(), (name, r.json())
        assert Rating.objects.count() == 0 and Correction.objects.count() == 0, name
    for raw in (b"[1, 2]", b"{not json", b'"text"'):
        r = api.post(api_url(world, campaign, "ratings"), raw, content_type="application/json")
        assert r.status_code == 400, raw
    assert Assignment.objects.get(token=token).status == "active"
    # After all that, the real submit still works.
    ok = api.post(api_url(world, campaign, "ratings"), {"assignment": token, "values": {"Accuracy": 3, "Safe": 1}}, format="json")
    assert ok.status_code == 201


@pytest.mark.django_db
def test_bad_input_on_the_page_is_a_400_with_the_message(world: Any, campaign: Any, client_for: Any) -> None:
    c = client_for(world.annotator)
    r = c.get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/next/")
    rate_url = r["Location"]
    bad = c.post(rate_url, {"c1": "7", "c2": "1", "comment": "y" * 10_001, "submission_token": "s1"})
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "Must be a whole number from 1 to 5" in page and "At most 10,000 characters" in page
    assert Rating.objects.count() == 0
    nul = c.post(rate_url, {"c1": "3", "c2": "1", "comment": "a\x00b", "submission_token": "s2"})
    assert nul.status_code == 400 and Rating.objects.count() == 0


@pytest.mark.django_db
def test_page_submit_stores_rating_correction_and_time(world: Any, campaign: Any, client_for: Any) -> None:
    c = client_for(world.annotator)
    rate_url = c.get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/next/")["Location"]
    assignment = Assignment.objects.get(annotator=world.annotator)
    original = assignment.item.output.text
    # Unchanged text (as a browser sends it, CRLF line ends) is not a correction.
    r = c.post(rate_url, {"c1": "5", "c2": "1", "c4": ["Typos"], "corrected_text": original.replace("\n", "\r\n"),
                          "seconds_on_item": "8.5", "submission_token": "p1"})
    assert r.status_code == 302 and r["Location"].endswith("/next/")
    assert not Correction.objects.exists()
    rating = Rating.objects.get()
    assert rating.seconds_on_item == 8.5 and rating.seconds_server >= 0
    # Revising it with an edit stores the correction next to the original.
    edited = original.replace("Comfortable", "Soft\nand comfortable")
    r = c.post(rate_url, {"c1": "4", "c2": "1", "corrected_text": edited.replace("\n", "\r\n"), "then": "history",
                          "submission_token": "p2"})
    assert r.status_code == 302
    corr = Correction.objects.get()
    assert (corr.original_text, corr.edited_text) == (original, edited)
    page = c.get(rate_url).content.decode()
    assert "you corrected it" in page and "Soft\nand comfortable" in page
    # Putting the text back removes the correction.
    c.post(rate_url, {"c1": "4", "c2": "1", "corrected_text": original, "submission_token": "p3"})
    assert not Correction.objects.exists() and Rating.objects.count() == 1


@pytest.mark.django_db
def test_someone_elses_token_on_the_page_shows_nothing_of_it(world: Any, campaign: Any, client_for: Any, annotators: list[Any]) -> None:
    theirs = services.assignment_next(campaign=campaign, user=annotators[0])
    assert theirs is not None
    c = client_for(world.annotator)
    r = c.get(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/rate/{theirs.token}/")
    assert r.status_code == 302 and r["Location"].endswith("/next/")
    r = c.post(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/rate/{theirs.token}/", {"c1": "3", "c2": "1"})
    assert r.status_code == 302 and not Rating.objects.exists()
    r = c.post(f"/p/{world.project.pk}/reviews/c/{campaign.pk}/rate/{theirs.token}/skip/")
    assert Assignment.objects.get(pk=theirs.pk).status == "active"


@pytest.mark.django_db
def test_closed_campaign_takes_no_ratings(world: Any, campaign: Any, api_for: Any) -> None:
    api = api_for(world.annotator)
    token = api.get(api_url(world, campaign, "next")).json()["item"]["assignment"]
    services.campaign_set_status(campaign=campaign, status="closed")
    r = api.post(api_url(world, campaign, "ratings"), {"assignment": token, "values": {"Accuracy": 3, "Safe": 1}}, format="json")
    assert r.status_code == 400 and "closed" in r.json()["assignment"][0]
    assert api.get(api_url(world, campaign, "next")).json()["item"] is None
