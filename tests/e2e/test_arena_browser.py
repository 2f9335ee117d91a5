"""In a real browser: an annotator votes with the keyboard only, and neither the page nor its DOM says which side
is which model; the lead then reads the leaderboard. Screenshots of both pages go to /tmp for a person to look at.

Self-contained (its own Chromium and login fixtures), so it does not depend on other apps' browser fixtures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop here

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VOTE_SHOT = Path("/tmp/evalhub-arena-vote.png")
BOARD_SHOT = Path("/tmp/evalhub-arena-leaderboard.png")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
NAMES = ["shelfwriter-base", "shelfwriter-lora-r8", "shelfwriter-dpo", "shelfwriter-long-ctx"]
PRODUCTS = [
    ("Oak bookshelf", "solid oak, 180 cm tall, five shelves, hand-oiled finish", "home"),
    ("Linen duvet cover", "stonewashed French linen, 200 x 200 cm, breathable", "bedroom"),
    ("Cast-iron skillet", "pre-seasoned, 28 cm, oven safe to 260 °C", "kitchen"),
    ("Ceramic planter", "matte glaze, drainage hole, 30 cm wide", "garden"),
]
STYLES = [
    "{name}. It is good. Buy it.",
    "Meet the {name}: {facts}. Built to last and easy to love, it brings quiet craftsmanship to everyday life.",
    ("The {name} combines {facts}. Whether you are styling a new space or refreshing an old one, it fits right in "
     "— and it is made to be used for years."),
    "{name} — {facts}. A dependable choice.",
]


@pytest.fixture
def arena_browser(browser: Any) -> Any:
    """The suite's one Chromium (tests/e2e/conftest.py): Playwright's sync API allows one instance per thread."""
    return browser


def new_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    return page


def sign_in(page: Any, site: str, user: Any) -> None:
    page.goto(f"{site}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "/login/" not in page.url


def build(world: Any, n_prompts: int = 24) -> Any:
    from tests.arena.factories import campaign, eval_with_runs

    def text(v: int, i: int) -> str:
        name, facts, _ = PRODUCTS[i % len(PRODUCTS)]
        return STYLES[v].format(name=name, facts=facts)

    ev = eval_with_runs(world.project, n_examples=n_prompts, n_versions=4, names=NAMES, text=text, first_number=1)
    from evalhub.datasets.models import Example

    for i, ex in enumerate(ev.examples):
        name, facts, room = PRODUCTS[i % len(PRODUCTS)]
        Example.objects.filter(pk=ex.pk).update(
            prompt=f"Write a product description for: {name} ({facts}).", attributes={"room": room})
    return campaign(world.project, ev, user=world.lead, name="Product pages, April", overlap=3,
                    stop_when_decided=False, criteria=("accuracy", "persuasiveness"),
                    instructions="Pick the description a shopper would trust more. Facts must match the prompt.")


def test_annotator_votes_with_the_keyboard_blind(world: Any, arena_browser: Any, live_server: Any) -> None:
    from evalhub.arena.models import Vote

    c = build(world)
    site = str(live_server.url).rstrip("/")
    page = new_page(arena_browser)
    sign_in(page, site, world.annotator)
    page.goto(f"{site}/p/{world.project.pk}/arena/{c.pk}/vote/")

    def check_blind() -> None:
        assert page.locator(".side-label").all_inner_texts() == ["A", "B"]
        dom = page.evaluate("""() => ({
            html: document.documentElement.outerHTML,
            ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
            attrs: Array.from(document.querySelectorAll('*')).flatMap(e => Array.from(e.attributes).map(a => a.value)),
            url: location.href, title: document.title })""")
        text = (dom["html"] + " ".join(dom["attrs"]) + dom["url"] + dom["title"]).lower()
        for needle in [*NAMES, "shelfwriter", "v1 ", "v2 ", "v3 ", "v4 ", "model_version", "generation run"]:
            assert needle not in text, f"the voting page reveals {needle!r}"
        assert not [i for i in dom["ids"] if re.search(r"\d", i)], dom["ids"]
        assert re.fullmatch(rf"{re.escape(site)}/p/{world.project.pk}/arena/{c.pk}/vote/", dom["url"])

    check_blind()
    page.screenshot(path=str(VOTE_SHOT), full_page=True)

    # ? opens the help, ? closes it.
    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    page.keyboard.press("?")
    assert not page.locator("#help-dialog").is_visible()

    tokens = []
    # 1: A is better.
    tokens.append(page.locator("input[name=comparison]").input_value())
    with page.expect_navigation():
        page.keyboard.press("1")
    check_blind()
    # b: B is better, after picking criteria with c + arrows and typing a reason with r.
    tokens.append(page.locator("input[name=comparison]").input_value())
    assert tokens[1] != tokens[0]
    page.keyboard.press("c")
    page.keyboard.press("ArrowRight")  # accuracy: A -> B
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.keyboard.type("B states the size and the finish.")
    page.keyboard.press("Escape")
    with page.expect_navigation():
        page.keyboard.press("b")
    assert "Saved: B is better." in page.inner_text(".messages")
    # 3: tie; 4: both bad; s: skip.
    for key in ("3", "x", "s"):
        tokens.append(page.locator("input[name=comparison]").input_value())
        with page.expect_navigation():
            page.keyboard.press(key)
        check_blind()
    votes = {v.comparison.token: v for v in Vote.objects.filter(annotator=world.annotator).select_related("comparison")}
    assert [votes[t].choice for t in tokens[:4]] == ["a", "b", "tie", "both_bad"]
    assert votes[tokens[1]].criteria == {"accuracy": "b"}
    assert votes[tokens[1]].reason == "B states the size and the finish."
    assert tokens[4] not in votes and all(v.seconds_spent > 0 for v in votes.values())
    assert page.js_errors == []
    page.context.close()


def test_lead_reads_the_leaderboard(world: Any, arena_browser: Any, live_server: Any) -> None:
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership
    from tests.arena.factories import simulate_campaign_votes

    c = build(world, n_prompts=40)
    raters = [get_user_model().objects.create_user(n, password=PASSWORD)
              for n in ("amira", "bo", "chen", "dana", "eli", "fatou")]
    for u in raters:
        Membership.objects.create(project=world.project, user=u, role="annotator")
    simulate_campaign_votes(c, [-60.0, 40.0, 110.0, -20.0], seed=11, tie_rate=0.12, both_bad_rate=0.04,
                            users=raters, per_comparison=3)
    site = str(live_server.url).rstrip("/")
    page = new_page(arena_browser)
    sign_in(page, site, world.lead)
    page.goto(f"{site}/p/{world.project.pk}/arena/{c.pk}/leaderboard/?slice=room")
    charts = page.locator(".chart[data-figure]")
    n = charts.count()
    assert n == 5
    page.wait_for_function("n => document.querySelectorAll('.chart[data-drawn=\"1\"] svg.main-svg').length >= n", arg=n)
    table = page.inner_text("#leaderboard-table")
    assert all(name in table for name in NAMES)
    assert page.locator("#leaderboard-table tbody tr").first.inner_text().split("\t")[1].strip() == "v3 shelfwriter-dpo"
    assert "left-side win share" in page.inner_text(".kpis").lower()
    page.screenshot(path=str(BOARD_SHOT), full_page=True)
    assert page.js_errors == []
    page.context.close()
