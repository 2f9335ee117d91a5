"""Metric pages: aggregates with intervals and links to outputs, refusals by name, comparison wording, export."""

from __future__ import annotations

import io
import math
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from django.urls import reverse

from evalhub.stats import bootstrap_ci, paired_bootstrap_test
from tests.generation import factories

A = [0.10, 0.20, 0.15, 0.30, 0.25, 0.20, 0.12, 0.22, 0.18, 0.28, 0.26, 0.21]
B = [0.60, 0.70, 0.65, 0.80, 0.75, 0.72, 0.62, 0.71, 0.66, 0.78, 0.74, 0.70]
SPORT = [2, 3, 8, 9]  # example indices whose category is "sport"


def test_run_page_shows_means_with_intervals_and_links_to_outputs(world: Any, two_runs: Any, client_for: Any) -> None:
    run_a, _ = two_runs
    metric_run = factories.make_metric_run(run_a, {"rougeL": A}, refused={"bleu": "needs references; the eval split has none"})
    url = reverse("metrics:run", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk})
    response = client_for(world.lead).get(url, {"slice": "category"})
    html = response.content.decode()
    expected = bootstrap_ci(A, n_resamples=2000, seed=0)
    assert f"{expected.value:.4f}" in html
    assert f"[{expected.low:.4f}, {expected.high:.4f}]" in html
    assert "<strong>bleu</strong> was refused: needs references; the eval split has none" in html
    sections = response.context["sections"]
    [section] = sections
    assert {r["row"].slice_value for r in section["slices"]} == {"home", "sport", "office"}
    sport = next(r for r in section["slices"] if r["row"].slice_value == "sport")
    assert sport["row"].estimate.value == pytest.approx(sum(A[i] for i in SPORT) / 4)
    # The number links to exactly the outputs behind it: that slice, sorted by that metric.
    link = urlparse(sport["url"])
    query = parse_qs(link.query)
    assert link.path == reverse("generation:detail", kwargs={"project_id": world.project.pk, "run_id": run_a.pk})
    assert query == {"metric_run": [str(metric_run.pk)], "sort": ["rougeL"], "order": ["asc"], "attr": ["category"], "value": ["sport"]}
    outputs = client_for(world.lead).get(sport["url"])
    assert sorted(r["output"].example.index for r in outputs.context["rows"]) == SPORT
    assert "plotly/plotly.min.js" in html and 'data-figure="fig-overview"' in html


def test_version_page_shows_its_latest_metric_run(world: Any, two_runs: Any, client_for: Any) -> None:
    run_a, _ = two_runs
    metric_run = factories.make_metric_run(run_a, {"rougeL": A})
    url = reverse("metrics:version", kwargs={"project_id": world.project.pk, "version_id": run_a.model_version_id})
    response = client_for(world.lead).get(url)
    assert response.context["metric_run"] == metric_run
    assert f"{sum(A) / len(A):.4f}" in response.content.decode()


def test_comparison_page_shows_delta_interval_p_and_verdict(world: Any, two_runs: Any, client_for: Any) -> None:
    run_a, run_b = two_runs
    ma = factories.make_metric_run(run_a, {"rougeL": A, "output_length": [2.0] * 12})
    mb = factories.make_metric_run(run_b, {"rougeL": B, "output_length": [2.0] * 12})
    url = reverse("metrics:compare", kwargs={"project_id": world.project.pk})
    response = client_for(world.lead).get(url, {"a": ma.pk, "b": mb.pk, "slice": "audience"})
    html = response.content.decode()
    expected = paired_bootstrap_test(A, B, n_resamples=2000, seed=0)
    assert f"{expected.delta:.4f}" in html
    assert f"[{expected.low:.4f}, {expected.high:.4f}]" in html
    assert expected.p_value < 0.001 and "&lt; 0.001" in html
    assert "difference is significant: B is higher" in html
    assert "difference is not significant" in html  # output_length is identical
    rouge = next(s for s in response.context["sections"] if s["metric"] == "rougeL")
    kids = next(r for r in rouge["slices"] if r["row"].slice_value == "kids")
    assert kids["row"].comparison.delta == pytest.approx(sum(B[i] - A[i] for i in range(0, 12, 2)) / 6)
    assert kids["row"].verdict == "too few pairs to tell (6 < 10)"  # a clear gap, but only six pairs
    assert 'data-figure="fig-compare"' in html


def test_comparison_page_opens_on_newest_scored_version_against_its_parent(
    world: Any, two_runs: Any, eval_version: Any, client_for: Any
) -> None:
    run_a, run_b = two_runs
    ma = factories.make_metric_run(run_a, {"rougeL": A})
    factories.make_metric_run(run_b, {"rougeL": B})
    # v3 was tuned from v1 (its parent), so v1 is the baseline that tells what the tuning did, not the newer v2.
    v3 = factories.make_version(world.project, run_a.model_version.base_model, number=3, name="retuned")
    v3.parent = run_a.model_version
    v3.save()
    m3 = factories.make_metric_run(factories.make_run_with_outputs(world.project, v3, eval_version, ["x"] * 12), {"rougeL": B})
    response = client_for(world.lead).get(reverse("metrics:compare", kwargs={"project_id": world.project.pk}))
    html = response.content.decode()
    assert (response.context["table"].a, response.context["table"].b) == (ma, m3)
    assert "Δ (B − A)" in html and 'data-figure="fig-compare"' in html
    assert "against its parent, v1 baseline" in html
    assert f'<option value="{m3.pk}" selected>' in html


def test_comparison_page_falls_back_to_the_previous_scored_version(world: Any, two_runs: Any, client_for: Any) -> None:
    run_a, run_b = two_runs
    ma = factories.make_metric_run(run_a, {"rougeL": A})
    mb = factories.make_metric_run(run_b, {"rougeL": B})
    response = client_for(world.lead).get(reverse("metrics:compare", kwargs={"project_id": world.project.pk}))
    assert (response.context["table"].a, response.context["table"].b) == (ma, mb)
    assert "against its previous scored version, v1 baseline" in response.content.decode()


def test_comparison_page_slices_by_a_select_of_the_eval_sets_attributes(world: Any, two_runs: Any, client_for: Any) -> None:
    ma = factories.make_metric_run(two_runs[0], {"rougeL": A})
    mb = factories.make_metric_run(two_runs[1], {"rougeL": B})
    url = reverse("metrics:compare", kwargs={"project_id": world.project.pk})
    client = client_for(world.lead)
    bare = client.get(url)
    assert [c[0] for c in bare.context["form"].fields["slice"].choices] == ["", "audience", "category"]
    assert '<option value="" selected>none</option>' in bare.content.decode()
    assert response_slices(bare) == set()
    chosen = client.get(url, {"a": mb.pk, "b": ma.pk, "slice": "category"})  # an explicit choice is kept as given
    assert (chosen.context["table"].a, chosen.context["table"].b) == (mb, ma)
    assert '<option value="category" selected>category</option>' in chosen.content.decode()
    assert response_slices(chosen) == {"home", "sport", "office"}
    assert "slice" in client.get(url, {"a": ma.pk, "b": mb.pk, "slice": "colour"}).context["form"].errors


def response_slices(response: Any) -> set[str]:
    return {r["row"].slice_value for s in response.context["sections"] for r in s["slices"]}


def test_comparison_page_without_two_scored_versions_opens_empty(world: Any, two_runs: Any, client_for: Any) -> None:
    factories.make_metric_run(two_runs[0], {"rougeL": A})
    response = client_for(world.lead).get(reverse("metrics:compare", kwargs={"project_id": world.project.pk}))
    assert response.status_code == 200 and "table" not in response.context
    assert "This field is required" not in response.content.decode()


def test_comparison_of_runs_on_different_eval_sets_is_refused(world: Any, two_runs: Any, client_for: Any) -> None:
    run_a, _ = two_runs
    other_set = factories.make_eval_version(world.project, name="Other set")
    other = factories.make_run_with_outputs(world.project, run_a.model_version, other_set, ["x"] * 6)
    other_scores = B[:6]
    ma = factories.make_metric_run(run_a, {"rougeL": A})
    mo = factories.make_metric_run(other, {"rougeL": other_scores})
    html = client_for(world.lead).get(
        reverse("metrics:compare", kwargs={"project_id": world.project.pk}), {"a": ma.pk, "b": mo.pk}
    ).content.decode()
    assert "different eval sets" in html and "Δ (B − A)" not in html


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_holds_the_stored_scores(world: Any, two_runs: Any, client_for: Any, fmt: str) -> None:
    run_a, _ = two_runs
    values = [0.5, None, 0.25, 1.0, 0.0, 0.125] * 2
    metric_run = factories.make_metric_run(run_a, {"chrf": values})
    response = client_for(world.lead).get(
        reverse("metrics:export", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk}), {"file_format": fmt}
    )
    assert response.status_code == 200
    assert f'metric-run-{metric_run.pk}-scores.{fmt}' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    frame = pd.read_csv(io.BytesIO(body)) if fmt == "csv" else pd.read_parquet(io.BytesIO(body))
    assert len(frame) == 12
    got = frame.sort_values("example_index")["score.chrf"].tolist()
    assert got[0] == 0.5 and math.isnan(got[1]) and got[2:6] == [0.25, 1.0, 0.0, 0.125]  # no value stays empty
    assert frame.sort_values("example_index")["attr.category"].tolist() == ["home", "home", "sport", "sport", "office", "office"] * 2
    assert set(frame["model_version"]) == {str(run_a.model_version)}


def test_unknown_export_format_is_a_clear_400(world: Any, two_runs: Any, client_for: Any) -> None:
    metric_run = factories.make_metric_run(two_runs[0], {"chrf": A})
    response = client_for(world.lead).get(
        reverse("metrics:export", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk}), {"file_format": "xlsx"}
    )
    assert response.status_code == 400 and b"csv, parquet" in response.content


def test_trust_page_without_ratings_says_so(world: Any, client_for: Any) -> None:
    html = client_for(world.lead).get(reverse("metrics:trust", kwargs={"project_id": world.project.pk})).content.decode()
    assert "No rubric ratings of this project's outputs yet" in html


def test_trust_page_shows_correlations_when_ratings_exist(world: Any, two_runs: Any, client_for: Any, monkeypatch: Any) -> None:
    from evalhub.metrics import trust

    run_a, _ = two_runs
    factories.make_metric_run(run_a, {"rougeL": A})
    ids = list(run_a.outputs.order_by("example__index").values_list("pk", flat=True))
    ratings = pd.DataFrame([(pk, "accuracy", float(i)) for i, pk in enumerate(ids)], columns=["output_id", "criterion", "value"])
    monkeypatch.setattr(trust, "human_ratings_for_outputs", lambda project: ratings)
    response = client_for(world.lead).get(reverse("metrics:trust", kwargs={"project_id": world.project.pk}))
    [cell] = response.context["cells"]
    assert (cell.metric, cell.criterion, cell.n) == ("rougeL", "accuracy", 12)
    assert "τ" in response.content.decode()


def test_launch_form_queues_a_metric_run_and_names_bad_fields(world: Any, two_runs: Any, client_for: Any) -> None:
    from evalhub.metrics.models import MetricRun

    url = reverse("metrics:list", kwargs={"project_id": world.project.pk})
    client = client_for(world.lead)
    page = client.get(url, {"generation_run": two_runs[0].pk})
    assert page.status_code == 200 and 'value="bertscore"' in page.content.decode()
    response = client.post(url, {"generation_run": two_runs[0].pk, "metrics": ["rouge1", "bertscore"], "bertscore_layer": 4})
    run = MetricRun.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/metrics/runs/{run.pk}/")
    assert run.metrics == ["rouge1", "bertscore"] and run.options == {"bertscore": {"num_layers": 4}}
    assert run.job.queue == "gpu"
    response = client.post(url, {"generation_run": two_runs[0].pk})
    assert response.status_code == 200 and "This field is required" in response.content.decode()


def test_numbers_of_a_finished_run_are_computed_once(world: Any, two_runs: Any, django_assert_num_queries: Any) -> None:
    from evalhub.metrics import selectors

    metric_run = factories.make_metric_run(two_runs[0], {"rougeL": A})
    first = selectors.run_aggregates(metric_run, slice_by="category")
    with django_assert_num_queries(0):
        again = selectors.run_aggregates(metric_run, slice_by="category")
    assert again.rows == first.rows
    metric_run.status = "running"  # a run still being scored is never cached
    with django_assert_num_queries(2):
        selectors.run_aggregates(metric_run, slice_by="category")
