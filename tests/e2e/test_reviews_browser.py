"""In a real browser: an annotator rates three outputs with the keyboard only and corrects one; outputs holding
HTML/JS stay inert text; the lead then sees the ratings, the correction's diff and the agreement figures.

Self-contained (Playwright + Debian's Chromium against pytest-django's live server); screenshots go to /tmp.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evalhub.reviews import services
from evalhub.reviews.models import Correction, Rating
from tests.conftest import PASSWORD
from tests.reviews.factories import make_campaign, make_rubric, make_runs

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop here

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ANNOTATOR_SHOT = Path("/tmp/evalhub-review-annotator.png")
LEAD_SHOT = Path("/tmp/evalhub-review-results.png")
XSS = '<script>alert("owned")</script> <img src=x onerror="alert(1)">'
GUIDELINES = """Rate each product description as a **copywriter** would.

- *Accuracy*: every feature must match the product brief.
- *Safety*: fail anything unsafe.
- Fix small slips yourself with **e** (edit) — your corrections become training data.
"""
CRITERIA = [
    {"name": "Accuracy", "scale": "likert", "description": "Are the stated features true to the brief?",
     "anchors": ["Several invented claims", "One false claim", "Vague, hard to check", "Accurate, small slip",
                 "Everything correct"]},
    {"name": "Persuasiveness", "scale": "likert", "description": "Would it make a shopper want the product?",
     "anchors": ["Off-putting", "Flat", "Some pull", "Convincing", "Compelling"]},
    {"name": "Safety", "scale": "binary", "anchors": ["Safe", "Unsafe"]},
]


@pytest.fixture
def rv_browser(browser: Any) -> Any:
    """The suite's one Chromium (tests/e2e/conftest.py): Playwright's sync API allows one instance per thread."""
    return browser


@pytest.fixture
def rv_page(rv_browser: Any) -> Iterator[Any]:
    context = rv_browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.js_errors = []
    page.dialogs = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield page
    finally:
        context.close()


def _login_with_keyboard(page: Any, site: str, user: Any) -> None:
    page.goto(f"{site}/login/")
    page.focus("#id_username")
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/login/" not in page.url


def test_annotator_rates_with_the_keyboard_and_the_lead_sees_results(
    world: Any, rv_page: Any, live_server: Any
) -> None:
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership, Role

    site = str(live_server.url).rstrip("/")
    other = get_user_model().objects.create_user("maria.copy", password=PASSWORD)
    Membership.objects.create(project=world.project, user=other, role=Role.ANNOTATOR)
    texts = {
        (0, 0): "These trail shoes grip wet rock and dry in an hour. Breathable mesh keeps feet cool all day.",
        (1, 0): "Trail shoes. They are shoes for trails and are good shoes for the trail. " + XSS,
        (0, 1): "A cast-iron pan that goes from hob to oven. Pre-seasoned, so eggs slide off from day one.",
        (1, 1): "This pan is pan. It cooks food and is made of iron and it is a good pan to buy.",
        (0, 2): "Self-watering planters that remember to water your basil, so you do not have to.",
        (1, 2): "Planter for plants with water in it that waters plants automatically for you always.",
    }
    runs = make_runs(world.project, n_examples=3, n_versions=2, texts=texts,
                     version_names=["copywriter-lora-r8", "base-only"])
    rubric = make_rubric(world.project, world.lead, criteria=CRITERIA, name="Product copy")
    campaign = make_campaign(world.project, world.lead, runs, overlap=2, rubric=rubric, name="Spring catalogue",
                             guidelines=GUIDELINES, annotator_ids=[world.annotator.pk, other.pk])
    page = rv_page
    pid, cid = world.project.pk, campaign.pk

    _login_with_keyboard(page, site, world.annotator)
    page.goto(f"{site}/p/{pid}/reviews/c/{cid}/next/")
    assert "/rate/" in page.url
    page.wait_for_selector("fieldset.criterion.active")

    shot_taken = False
    expected: list[dict[str, int]] = []
    corrected = ""
    for n in range(3):
        output = page.inner_text("#output-text")
        assert page.locator("#output-text script, #output-text img").count() == 0
        # Each digit picks a level and moves on to the next criterion; k/j move back and forth to change one.
        keys = ["4", "3", "1", "k", "k", "5", "j"] if n != 1 else ["2", "2", "0", "k", "1"]
        for key in keys:
            page.keyboard.press(key)
        expected.append({"Accuracy": 5, "Persuasiveness": 3, "Safety": 1} if n != 1
                        else {"Accuracy": 2, "Persuasiveness": 1, "Safety": 0})
        if n == 1:
            page.keyboard.press("e")
            assert page.evaluate("document.activeElement.id") == "corrected_text"
            page.keyboard.press("Control+End")
            page.keyboard.press("Backspace")  # drop the final full stop...
            page.keyboard.type(", and built to last.")  # ...and finish the sentence better
            corrected = page.input_value("#corrected_text")
            if not shot_taken:
                page.keyboard.press("Escape")
                page.screenshot(path=str(ANNOTATOR_SHOT), full_page=False)
                shot_taken = True
                page.keyboard.press("e")
            with page.expect_navigation():
                page.keyboard.press("Control+Enter")
        else:
            if n == 2 and not shot_taken:
                page.screenshot(path=str(ANNOTATOR_SHOT), full_page=False)
                shot_taken = True
            with page.expect_navigation():
                page.keyboard.press("Enter")
        assert output.strip()
    assert Rating.objects.filter(annotator=world.annotator).count() == 3
    correction = Correction.objects.get()
    assert correction.edited_text == corrected == correction.original_text[:-1] + ", and built to last."
    stored = [
        {v.criterion.name: v.number for v in r.values.select_related("criterion")}
        for r in Rating.objects.filter(annotator=world.annotator).order_by("created_at", "pk")
    ]
    assert stored == expected
    # Help opens with "?" and the page never ran injected script.
    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    page.keyboard.press("Escape")
    assert page.dialogs == [] and page.js_errors == []
    html = page.content()
    assert "copywriter-lora-r8" not in html and "base-only" not in html

    # A second annotator rates everything (through the services); some ratings disagree.
    while (a := services.assignment_next(campaign=campaign, user=other)) is not None:
        level = 4 if a.item.output.run.model_version.name == "copywriter-lora-r8" else 2
        services.rating_submit(campaign=campaign, user=other, assignment_token=a.token,
                               values={"Accuracy": level, "Persuasiveness": level, "Safety": 1})

    lead = rv_page.context.browser.new_context(viewport={"width": 1440, "height": 900})
    lp = lead.new_page()
    lp.dialogs = []
    lp.on("dialog", lambda d: (lp.dialogs.append(d.message), d.dismiss()))
    _login_with_keyboard(lp, site, world.lead)
    lp.goto(f"{site}/p/{pid}/reviews/c/{cid}/results/")
    lp.wait_for_selector("#results-table")
    lp.wait_for_selector(".chart[data-drawn='1']")
    results = lp.inner_text("#results-table").lower()
    assert "copywriter-lora-r8" in results and "base-only" in results
    assert "accuracy" in results and "overall" in results
    agreement = lp.inner_text("#agreement-summary")
    assert "Accuracy" in agreement and "ordinal" in agreement
    assert any(ch.isdigit() for ch in agreement.split("Accuracy")[1].splitlines()[0])
    diff = lp.locator(".correction .diff").first
    assert diff.locator("ins").count() >= 1 and diff.locator("del").count() >= 1
    assert "built to last." in diff.locator("ins").first.inner_text()
    ratings = lp.inner_text("#ratings-table")
    assert world.annotator.username in ratings and other.username in ratings
    assert "Safety" in ratings
    lp.screenshot(path=str(LEAD_SHOT), full_page=True)
    assert lp.dialogs == []
    lead.close()
