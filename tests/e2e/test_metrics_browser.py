"""In a real browser: a metric run's charts and the comparison chart are drawn by plotly.js, with no script error,
and an output carrying markup stays text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.generation import factories

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/evalhub-compare.png")
A = [0.10, 0.20, 0.15, 0.30, 0.25, 0.20, 0.12, 0.22, 0.18, 0.28, 0.26, 0.21]
B = [0.60, 0.70, 0.65, 0.80, 0.75, 0.72, 0.62, 0.71, 0.66, 0.78, 0.74, 0.70]


def test_charts_draw_and_markup_stays_text(world: Any, page: Any, login: Any, site: str) -> None:
    from evalhub.tuning.models import BaseModel

    eval_version = factories.make_eval_version(world.project, repeat=2)
    base = BaseModel.objects.create(name="browser-base", source_kind="folder", path_or_id="/nonexistent")
    va = factories.make_version(world.project, base, number=1, name="baseline")
    vb = factories.make_version(world.project, base, number=2, name="candidate")
    texts = ['<img src=x onerror="document.title=\'owned\'">', "", *["plain"] * 10]
    run_a = factories.make_run_with_outputs(world.project, va, eval_version, texts)
    run_b = factories.make_run_with_outputs(world.project, vb, eval_version, ["better"] * 12)
    ma = factories.make_metric_run(run_a, {"rougeL": A, "output_length": [1.0, 0.0, *[1.0] * 10]})
    mb = factories.make_metric_run(run_b, {"rougeL": B, "output_length": [1.0] * 12})

    login(page, world.lead)
    page.goto(f"{site}/p/{world.project.pk}/metrics/runs/{ma.pk}/?slice=category")
    page.wait_for_selector('[data-figure="fig-overview"][data-drawn="1"]')
    assert page.locator("[data-figure][data-drawn='1']").count() >= 3  # overview, distributions, slice bars
    page.screenshot(path="/tmp/evalhub-metric-run.png", full_page=True)
    page.goto(f"{site}/p/{world.project.pk}/metrics/compare/?a={ma.pk}&b={mb.pk}&slice=audience")
    page.wait_for_selector('[data-figure="fig-compare"][data-drawn="1"]')
    assert "difference is significant: B is higher" in page.inner_text("table.comparison")
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.goto(f"{site}/p/{world.project.pk}/generation/{run_a.pk}/")
    assert "onerror=" in page.inner_text("table.outputs")  # shown as text ...
    assert page.title() != "owned"  # ... never run
    page.screenshot(path="/tmp/evalhub-outputs.png", full_page=True)
    assert page.js_errors == []
