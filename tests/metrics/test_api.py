"""API of runs, outputs and metric results (numbers checked against evalhub.stats on the same values)."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from django.urls import reverse

from evalhub.stats import bootstrap_ci, paired_bootstrap_test
from tests.generation import factories

A = [0.10, 0.20, 0.15, 0.30, 0.25, 0.20, 0.12, 0.22, 0.18, 0.28, 0.26, 0.21]
B = [0.60, 0.70, 0.65, 0.80, 0.75, 0.72, 0.62, 0.71, 0.66, 0.78, 0.74, 0.70]


def test_outputs_are_paged_filtered_and_carry_scores(world: Any, two_runs: Any, api_for: Any) -> None:
    run_a, _ = two_runs
    metric_run = factories.make_metric_run(run_a, {"rougeL": A})
    url = reverse("api-output-list", kwargs={"project_id": world.project.pk, "run_id": run_a.pk})
    api = api_for(world.lead)
    body = api.get(url, {"limit": 4}).json()
    assert body["count"] == 12 and len(body["results"]) == 4 and body["next"]
    body = api.get(url, {"attr": "category", "value": "office", "metric_run": metric_run.pk, "sort": "rougeL", "order": "desc"}).json()
    assert [(r["example_index"], r["scores"]["rougeL"]) for r in body["results"]] == [(10, 0.26), (4, 0.25), (11, 0.21), (5, 0.20)]
    assert body["results"][0]["attributes"] == {"category": "office", "audience": "kids"}


def test_aggregates_endpoint(world: Any, two_runs: Any, api_for: Any) -> None:
    metric_run = factories.make_metric_run(two_runs[0], {"rougeL": A}, corpus={"rougeL": 0.2})
    url = reverse("api-metric-aggregates", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk})
    body = api_for(world.lead).get(url, {"slice": "audience"}).json()
    overall = next(r for r in body["rows"] if r["slice"] is None)
    expected = bootstrap_ci(A, n_resamples=2000, seed=0)
    assert (overall["mean"], overall["low"], overall["high"]) == pytest.approx((expected.value, expected.low, expected.high))
    assert {r["slice"] for r in body["rows"]} == {None, "kids", "adults"}
    assert body["slice_names"] == ["audience", "category"]
    bad = api_for(world.lead).get(url, {"slice": "colour"})
    assert bad.status_code == 400 and "colour" in bad.json()["slice"][0]


def test_compare_endpoint(world: Any, two_runs: Any, api_for: Any) -> None:
    ma = factories.make_metric_run(two_runs[0], {"rougeL": A})
    mb = factories.make_metric_run(two_runs[1], {"rougeL": B})
    url = reverse("api-metric-compare", kwargs={"project_id": world.project.pk})
    body = api_for(world.lead).get(url, {"a": ma.pk, "b": mb.pk}).json()
    [row] = body["rows"]
    expected = paired_bootstrap_test(A, B, n_resamples=2000, seed=0)
    assert (row["delta"], row["low"], row["high"], row["p_value"]) == pytest.approx(
        (expected.delta, expected.low, expected.high, expected.p_value)
    )
    assert row["significant"] is True and row["n_pairs"] == 12
    assert api_for(world.lead).get(url, {"a": ma.pk}).status_code == 400


def test_export_endpoint_parquet(world: Any, two_runs: Any, api_for: Any) -> None:
    metric_run = factories.make_metric_run(two_runs[0], {"rougeL": A})
    url = reverse("api-metric-export", kwargs={"project_id": world.project.pk, "metric_run_id": metric_run.pk})
    response = api_for(world.lead).get(url, {"file_format": "parquet"})
    frame = pd.read_parquet(io.BytesIO(b"".join(response.streaming_content)))
    assert frame.sort_values("example_index")["score.rougeL"].tolist() == A


def test_create_generation_run_refuses_missing_model_files_by_field(world: Any, eval_version: Any, api_for: Any, tmp_path: Any) -> None:
    base = factories.make_base("vanished", tmp_path / "gone")
    version = factories.make_version(world.project, base, number=9)
    url = reverse("api-generation-run-list", kwargs={"project_id": world.project.pk})
    response = api_for(world.lead).post(url, {"model_version": version.pk, "eval_version": eval_version.pk}, format="json")
    assert response.status_code == 400
    assert "“vanished” is missing" in response.json()["model_version"][0]


def test_create_generation_run_refuses_other_projects_objects(world: Any, api_for: Any, tmp_path: Any) -> None:
    other_eval = factories.make_eval_version(world.other_project, name="Theirs")
    base = factories.make_base("mine", tmp_path)
    version = factories.make_version(world.project, base, number=3)
    url = reverse("api-generation-run-list", kwargs={"project_id": world.project.pk})
    response = api_for(world.lead).post(url, {"model_version": version.pk, "eval_version": other_eval.pk}, format="json")
    assert response.status_code == 400 and "eval_version" in response.json()


def test_metric_run_create_validation(world: Any, two_runs: Any, api_for: Any) -> None:
    url = reverse("api-metric-run-list", kwargs={"project_id": world.project.pk})
    response = api_for(world.lead).post(url, {"generation_run": two_runs[0].pk, "metrics": []}, format="json")
    assert response.status_code == 400 and "metrics" in response.json()
    response = api_for(world.lead).post(url, {"generation_run": 999999, "metrics": ["rouge"]}, format="json")
    assert response.status_code == 400 and "generation_run" in response.json()
