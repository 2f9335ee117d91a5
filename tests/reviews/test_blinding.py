"""Model identity never reaches annotators or reviewers: not in pages, DOM, API responses, URLs or element ids.

The model version, run and outputs get distinctive primary keys and a distinctive name, then every page and API
response an annotator (and a reviewer) can reach is rendered and searched for them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from evalhub.reviews import services
from tests.reviews.factories import make_campaign, make_runs

MV_NAME = "zebracorn-secret-adapter"
IDS = {"model_version": 765431, "run": 876541, "output": 987650, "number": 4242}


def forbidden(runs: Any) -> list[str]:
    words = [MV_NAME, "zebracorn", "adapter-0", "adapter-1"]
    for mv in runs.versions:
        words += [str(mv.pk), f"v{mv.number}", f"#{mv.number}", f"version {mv.number}", f"mv-{mv.pk}"]
        words.append(str(mv.number))
    for run in runs.runs:
        words += [str(run.pk), f"run-{run.pk}"]
    for o in runs.outputs:
        words.append(str(o.pk))
    return words


def assert_blind(text: str, words: list[str], where: str) -> None:
    for w in words:
        # Word boundaries for numbers so "4242" inside a longer random token cannot pass for an id by chance...
        pattern = rf"(?<![0-9]){re.escape(w)}(?![0-9])" if w.isdigit() else re.escape(w)
        assert not re.search(pattern, text, flags=re.IGNORECASE), f"{w!r} leaked in {where}"


@pytest.mark.django_db
def test_annotator_and_reviewer_never_see_model_identity(world: Any, client_for: Any, api_for: Any, annotators: list[Any]) -> None:
    runs = make_runs(world.project, n_examples=3, n_versions=2, version_names=[MV_NAME, "adapter-1"], ids=IDS)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2, guidelines="Rate **carefully**.")
    words = forbidden(runs)
    pid, cid = world.project.pk, campaign.pk
    seen: list[tuple[str, str]] = []

    page = client_for(world.annotator)
    for url in (f"/p/{pid}/reviews/", f"/p/{pid}/reviews/c/{cid}/", f"/p/{pid}/"):
        r = page.get(url)
        assert r.status_code == 200
        seen.append((url, r.content.decode()))
    # Rate through the pages: the redirects' URLs and every rating page, including a failed submit (400).
    first = True
    while True:
        r = page.get(f"/p/{pid}/reviews/c/{cid}/next/")
        if r.status_code == 200:
            seen.append(("done page", r.content.decode()))
            break
        location = r["Location"]
        seen.append(("next redirect", location))
        rating_page = page.get(location)
        seen.append((location, rating_page.content.decode()))
        if first:
            bad = page.post(location, {"c1": "9"})
            assert bad.status_code == 400
            seen.append(("400 page", bad.content.decode()))
            first = False
        done = page.post(location, {"c1": "1", "c2": "1", "corrected_text": "A better text.", "submission_token": location})
        seen.append(("submit redirect", done["Location"]))
        seen.append(("revisit", page.get(location).content.decode()))
        if not any(where == "overview while rating" for where, _ in seen):
            # The project overview with this annotator's counts in it.
            overview = page.get(f"/p/{pid}/").content.decode()
            assert "Round 1" in overview and "You rated 1 of about" in overview
            seen.append(("overview while rating", overview))

    api = api_for(annotators[0])
    base = f"/api/projects/{pid}/reviews/campaigns"
    seen.append(("api campaigns", api.get(f"{base}/").content.decode()))
    nxt = api.get(f"{base}/{cid}/next/")
    seen.append(("api next", nxt.content.decode()))
    token = nxt.json()["item"]["assignment"]
    seen.append(("api skip", api.post(f"{base}/{cid}/skip/", {"assignment": token}, format="json").content.decode()))
    token = api.get(f"{base}/{cid}/next/").json()["item"]["assignment"]
    submit = api.post(f"{base}/{cid}/ratings/", {"assignment": token, "values": {"Accuracy": 5, "Safe": 1}}, format="json")
    seen.append(("api submit", submit.content.decode()))
    seen.append(("api 400", api.post(f"{base}/{cid}/ratings/", {"assignment": token, "values": {"X": 1}}, format="json").content.decode()))
    services.campaign_update_thresholds(campaign=campaign, likert_threshold=0, nominal_threshold=0)

    # Reviewers adjudicate blind as well.
    rev = client_for(world.reviewer)
    for url in (f"/p/{pid}/reviews/c/{cid}/adjudicate/", f"/p/{pid}/reviews/c/{cid}/corrections/",
                f"/p/{pid}/reviews/c/{cid}/agreement/", f"/p/{pid}/reviews/c/{cid}/", f"/p/{pid}/"):
        r = rev.get(url)
        assert r.status_code == 200, url
        seen.append((url, r.content.decode()))
    adjudications = campaign.adjudications.all()
    assert adjudications.exists()
    for adj in adjudications:
        url = f"/p/{pid}/reviews/c/{cid}/adjudicate/{adj.item.token}/"
        seen.append((url, rev.get(url).content.decode()))
    seen.append(("api agreement", api_for(world.reviewer).get(f"{base}/{cid}/agreement/").content.decode()))

    assert len(seen) > 20
    for where, text in seen:
        assert_blind(text, words, where)

    # The same check finds the identity where it is meant to be: on the lead's results page.
    lead_page = client_for(world.lead).get(f"/p/{pid}/reviews/c/{cid}/results/").content.decode()
    assert MV_NAME in lead_page
