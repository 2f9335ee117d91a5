"""Adjudication, results per model version with bootstrap intervals and slices, exports, ratings_frame, diffs."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from evalhub.reviews import analysis, selectors, services
from evalhub.reviews.diff import diff_segments, diff_stats
from evalhub.reviews.models import Adjudication, AdjudicationStatus, CampaignItem
from tests.reviews.factories import make_campaign, make_runs


def rate(campaign: Any, user: Any, values_for: Any) -> None:
    while (a := services.assignment_next(campaign=campaign, user=user)) is not None:
        services.rating_submit(campaign=campaign, user=user, assignment_token=a.token, values=values_for(a))


@pytest.mark.django_db
def test_disagreement_goes_to_a_reviewer_whose_rating_is_final(world: Any, campaign: Any, annotators: list[Any]) -> None:
    # Output texts decide: ratings of model 0 agree (4 and 4); model 1's disagree (1 and 5) on Accuracy.
    def by(user_value: int) -> Any:
        return lambda a: {"Accuracy": 4 if a.item.output.run.model_version.name == "adapter-0" else user_value, "Safe": 1}

    rate(campaign, world.annotator, by(1))
    rate(campaign, annotators[0], by(5))
    open_ = Adjudication.objects.filter(campaign=campaign, status=AdjudicationStatus.OPEN)
    flagged_items = set(open_.values_list("item__output__run__model_version__name", flat=True))
    assert flagged_items == {"adapter-1"} and open_.count() == 6
    adj = open_.first()
    assert adj.criteria == [{"criterion": "Accuracy", "spread": 4.0}]  # type: ignore[union-attr]
    assert CampaignItem.objects.filter(needs_adjudication=True).count() == 6

    with pytest.raises(ValidationError) as err:
        services.adjudication_resolve(adjudication=adj, reviewer=world.reviewer, values={"Safe": 1})  # type: ignore[arg-type]
    assert "values.Accuracy" in err.value.message_dict
    services.adjudication_resolve(adjudication=adj, reviewer=world.reviewer, values={"Accuracy": 2}, note="facts wrong")  # type: ignore[arg-type]
    adj.refresh_from_db()  # type: ignore[union-attr]
    assert adj.status == AdjudicationStatus.RESOLVED and adj.reviewer == world.reviewer  # type: ignore[union-attr]

    frame = selectors.ratings_frame(world.project)
    assert list(frame.columns) == ["output_id", "criterion", "value", "annotator_id", "adjudicated"]
    assert frame["output_id"].dtype == "int64" and frame["value"].dtype == "float64" and frame["adjudicated"].dtype == bool
    acc = frame[(frame["criterion"] == "Accuracy") & (frame["output_id"] == adj.item.output_id)]  # type: ignore[union-attr]
    assert acc[["value", "annotator_id", "adjudicated"]].values.tolist() == [[2.0, world.reviewer.pk, True]]
    # Everything else keeps one row per annotator.
    assert len(frame[frame["criterion"] == "Safe"]) == 24
    assert len(frame[frame["criterion"] == "Accuracy"]) == 23
    assert set(frame["criterion"]) == {"Accuracy", "Safe"}  # labels and text are not numeric

    # Thresholds raised: the remaining open items no longer disagree enough.
    services.campaign_update_thresholds(campaign=campaign, likert_threshold=4, nominal_threshold=0.34)
    assert Adjudication.objects.filter(campaign=campaign, status=AdjudicationStatus.OPEN).count() == 0
    assert Adjudication.objects.filter(status=AdjudicationStatus.RESOLVED).count() == 1


@pytest.mark.django_db
def test_results_per_model_version_with_intervals_and_slices(world: Any, annotators: list[Any]) -> None:
    runs = make_runs(world.project, n_examples=12, n_versions=2)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2)
    rng = np.random.default_rng(0)
    planted = {runs.versions[0].name: 2, runs.versions[1].name: 4}

    def values_for(a: Any) -> dict[str, Any]:
        base = planted[a.item.output.run.model_version.name]
        return {"Accuracy": int(np.clip(base + rng.integers(0, 2), 1, 5)), "Safe": 1, "Tone": "On brand"}

    for user in [world.annotator, annotators[0]]:
        rate(campaign, user, values_for)
    report = analysis.results_report(campaign, slice_by="category", n_resamples=500)
    labels = {mv.name: f"v{mv.number} {mv.name}" for mv in runs.versions}
    low = report.table["Accuracy"][labels["adapter-0"]]
    high = report.table["Accuracy"][labels["adapter-1"]]
    # Recompute the expected means straight from the stored ratings.
    frame = selectors.ratings_frame(world.project)
    items = analysis.items_frame(campaign)[["output_id", "model_version"]]
    acc = frame[frame["criterion"] == "Accuracy"].merge(items, on="output_id")
    per_output = acc.groupby(["model_version", "output_id"])["value"].mean().groupby("model_version").mean()
    assert low.estimate.value == pytest.approx(per_output[labels["adapter-0"]])
    assert high.estimate.value == pytest.approx(per_output[labels["adapter-1"]])
    assert low.estimate.n == high.estimate.n == 12
    assert low.estimate.low <= low.estimate.value <= low.estimate.high < high.estimate.low
    assert analysis.OVERALL in report.table  # two numeric criteria: a weighted overall score too
    assert set(report.slices["Accuracy"]) == {"garden", "kitchen", "shoes"}
    assert report.slices["Accuracy"]["shoes"][labels["adapter-0"]].n == 4
    tone = next(t for t in report.label_tables if t["criterion"] == "Tone")
    assert tone["counts"][labels["adapter-1"]]["On brand"] == 24
    assert len(report.charts) >= 4  # means + one distribution per labelled/numeric criterion


@pytest.mark.django_db
def test_exports_read_back_with_pandas(world: Any, campaign: Any, client_for: Any, annotators: list[Any]) -> None:
    rate(campaign, world.annotator, lambda a: {"Accuracy": 3, "Safe": 0, "Issues": ["Typos"], "Notes": "Résumé, \"quoted\""})
    a = services.assignment_next(campaign=campaign, user=annotators[0])
    services.rating_submit(campaign=campaign, user=annotators[0], assignment_token=a.token,  # type: ignore[union-attr]
                           values={"Accuracy": 5, "Safe": 1}, corrected_text="Better copy.")
    c = client_for(world.lead)
    base = f"/p/{world.project.pk}/reviews/c/{campaign.pk}/export"
    csv = c.get(f"{base}.csv")
    assert csv.status_code == 200 and "attachment" in csv["Content-Disposition"]
    from_csv = pd.read_csv(io.StringIO(csv.content.decode()))
    parquet = pd.read_parquet(io.BytesIO(c.get(f"{base}.parquet").content))
    for frame in (from_csv, parquet):
        assert len(frame) == 12 * 4 + 2  # 12 ratings x 4 answered criteria, plus 2 values of the last rating
        assert set(frame["model_version"]) == {"v1 adapter-0", "v2 adapter-1"}
        assert "attr_category" in frame.columns
        notes = frame[frame["criterion"] == "Notes"]["value"]
        assert set(notes) == {'Résumé, "quoted"'}
        assert (frame["corrected_text"].fillna("") == "Better copy.").sum() == 2
    assert c.get(f"{base}.xlsx").status_code == 404
    assert client_for(world.reviewer).get(f"{base}.csv").status_code == 403


def test_diff_segments_rebuild_both_texts() -> None:
    pairs = [
        ("The shoe is red and light.", "The shoe is bright red, light and waterproof."),
        ("", "new text"),
        ("old text", ""),
        ("same", "same"),
        ("line one\nline two", "line one\n\nline 2"),
        ("<script>alert(1)</script> hi", "hi"),
    ]
    for a, b in pairs:
        seg = diff_segments(a, b)
        assert "".join(t for op, t in seg if op != "insert") == a
        assert "".join(t for op, t in seg if op != "delete") == b
    seg = diff_segments("The shoe is red.", "The shoe is blue.")
    assert ("delete", "red.") in seg and ("insert", "blue.") in seg
    assert diff_stats(seg) == {"added": 1, "removed": 1}
