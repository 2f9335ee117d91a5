"""In a real browser: log in, see a bad upload's line-level error, import a good file, run its quality report and
see the charts drawn; label a curation queue with the keyboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.datasets.conftest import make_rows, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/evalhub-quality.png")


def test_upload_errors_then_quality_report_with_charts(world: Any, page: Any, login: Any, site: str,
                                                       tmp_path: Path) -> None:
    login(page, world.lead)
    assert page.locator("text=Product copy").first.is_visible()

    bad_rows = make_rows(5)
    bad_rows[2]["reference"] = ["a", "list"]
    bad = write_jsonl(tmp_path / "bad.jsonl", bad_rows)
    page.goto(f"{site}/p/{world.project.pk}/data/upload/")
    page.set_input_files("input[name=file]", str(bad))
    page.fill("input[name=dataset_name]", "Products")
    page.click("button[value=import]")
    errors = page.locator("#import-errors")
    errors.wait_for()
    assert 'bad.jsonl, line 3, field "reference": expected text, got a list' in errors.inner_text()
    assert "Nothing was imported" in errors.inner_text()

    rows = make_rows(80, seed=4)
    rows[60]["prompt"] = rows[12]["prompt"]  # an exact duplicate
    rows[70]["prompt"] = rows[33]["prompt"] + " extra"  # a near duplicate
    for i, row in enumerate(rows):
        row["category"] = "kitchen" if i < 50 else ("garden" if i < 77 else "office")
    good = write_jsonl(tmp_path / "products.jsonl", rows)
    page.set_input_files("input[name=file]", str(good))
    page.fill("input[name=dataset_name]", "Products")
    with page.expect_navigation():
        page.click("button[value=import]")
    assert "/data/v/" in page.url
    assert "Imported 80 examples as Products v1." in page.inner_text(".messages")

    with page.expect_navigation():
        page.click("text=Run quality report")
    assert "/data/quality/" in page.url
    charts = page.locator(".chart[data-figure]")
    n_charts = charts.count()
    assert n_charts >= 5  # overview, both length histograms, coverage of category and of tone
    page.wait_for_function(
        "n => document.querySelectorAll('.chart[data-drawn=\"1\"] svg.main-svg').length >= n", arg=n_charts)
    for i in range(n_charts):
        assert charts.nth(i).locator("svg.main-svg").count() >= 1
    findings = page.inner_text("#findings")
    assert "exact duplicate" in findings and "near-duplicate" in findings
    assert "61" in page.inner_text("text=Exact duplicate prompts >> xpath=../..")  # line 61 repeats line 13
    assert not page.js_errors, page.js_errors
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_curation_with_the_keyboard(world: Any, page: Any, login: Any, site: str, tmp_path: Path) -> None:
    from evalhub.datasets import services
    from evalhub.datasets.ingest import ColumnMapping
    from evalhub.datasets.models import CurationItem

    path = write_jsonl(tmp_path / "p.jsonl", make_rows(4))
    version = services.dataset_import(project=world.project, user=world.lead, path=path, display_name=path.name,
                                      mapping=ColumnMapping(prompt="prompt", reference="reference", id="id"),
                                      dataset_name="Products")
    queue = services.curation_queue_create(version=version, name="Tone", created_by=world.lead,
                                           label_choices=["warm", "plain"])
    login(page, world.annotator)
    page.goto(f"{site}/p/{world.project.pk}/data/curation/{queue.pk}/annotate/")
    first = page.inner_text("#prompt-text")

    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    assert page.locator("input[data-digit='2']").is_checked()
    with page.expect_navigation():
        page.keyboard.press("a")
    decided = CurationItem.objects.get(queue=queue, decision="accept")
    assert (decided.label, decided.decided_by_id) == ("plain", world.annotator.pk)
    assert decided.seconds_spent > 0
    assert page.inner_text("#prompt-text") != first

    # e opens the editor; Ctrl+Enter saves the fix.
    page.keyboard.press("e")
    page.fill("#fixed_reference", "A better reference, written by hand.")
    with page.expect_navigation():
        page.keyboard.press("Control+Enter")
    fixed = CurationItem.objects.get(queue=queue, decision="fix")
    assert fixed.fixed_reference == "A better reference, written by hand."

    # k goes back to the last decision, r there revises it to a rejection.
    with page.expect_navigation():
        page.keyboard.press("k")
    assert "you chose: Fix" in page.inner_text(".example-card")
    with page.expect_navigation():
        page.keyboard.press("r")
    fixed.refresh_from_db()
    assert fixed.decision == "reject"
    assert not page.js_errors, page.js_errors
