"""Outputs, corrections, comments and names holding HTML/JS render as inert text on every reviews page."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.reviews import services
from tests.reviews.factories import make_campaign, make_rubric, make_runs

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(2)">'


@pytest.mark.django_db
def test_payloads_render_as_text(world: Any, client_for: Any, annotators: list[Any]) -> None:
    texts = {(0, 0): f"Great shoe {SCRIPT}", (1, 0): f"Light {IMG} and cheap", (0, 1): "</textarea>" + SCRIPT}
    runs = make_runs(world.project, n_examples=2, n_versions=2, texts=texts, version_names=[f"v{SCRIPT}", "plain"])
    rubric = make_rubric(world.project, world.lead, name=f"Rubric {IMG}", criteria=[
        {"name": f"Acc{SCRIPT}", "scale": "likert", "anchors": [IMG, "b", "c"], "description": SCRIPT},
        {"name": "Tone", "scale": "categorical", "options": [SCRIPT, "calm"]},
    ])
    campaign = make_campaign(world.project, world.lead, runs, overlap=2, rubric=rubric, name=f"Round {SCRIPT}",
                             guidelines=f"Hi {SCRIPT} {IMG}")
    pid, cid = world.project.pk, campaign.pk
    pages: list[str] = []
    for user, level in ((world.annotator, "1"), (annotators[0], "3")):
        c = client_for(user)
        while (r := c.get(f"/p/{pid}/reviews/c/{cid}/next/")).status_code == 302:
            pages.append(c.get(r["Location"]).content.decode())
            c.post(r["Location"], {"c1": level, "c2": SCRIPT, "comment": SCRIPT,
                                   "corrected_text": f"Fixed {SCRIPT} {IMG}", "submission_token": r["Location"]})
        pages.append(r.content.decode())
    assert len(pages) == 10
    reviewer, lead = client_for(world.reviewer), client_for(world.lead)
    adj = campaign.adjudications.first()
    assert adj is not None
    for client, url in [
        (reviewer, f"/p/{pid}/reviews/c/{cid}/corrections/"),
        (reviewer, f"/p/{pid}/reviews/c/{cid}/adjudicate/{adj.item.token}/"),
        (reviewer, f"/p/{pid}/reviews/c/{cid}/agreement/"),
        (lead, f"/p/{pid}/reviews/c/{cid}/results/"),
        (lead, f"/p/{pid}/reviews/c/{cid}/"),
        (lead, f"/p/{pid}/reviews/c/{cid}/gold/"),
        (lead, f"/p/{pid}/reviews/"),
        (lead, f"/p/{pid}/reviews/rubrics/"),
        (lead, f"/p/{pid}/reviews/rubrics/{rubric.pk}/"),
    ]:
        r = client.get(url)
        assert r.status_code == 200, url
        pages.append(r.content.decode())
    for html in pages:
        assert SCRIPT not in html
        assert "<img src=x" not in html and "onerror=\"alert" not in html
    joined = "\n".join(pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in joined  # shown, as text
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in joined
    # The diff shows the correction's payload as text inside <ins>.
    assert "<ins>" in joined and "Fixed &lt;script&gt;" in joined
    assert services.guidelines_render(SCRIPT) == ""
