"""The quality report as a job: planted duplicates, near duplicates and leakage are found and shown with charts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from evalhub.datasets import services
from evalhub.datasets.models import QualityReport
from evalhub.jobs.models import JobStatus
from evalhub.jobs.tasks import execute_job
from tests.datasets.conftest import make_rows

pytestmark = pytest.mark.django_db


def _planted(import_rows: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Train has an exact duplicate pair and a near-duplicate pair; eval shares one prompt exactly with train and
    one nearly (a word added)."""
    train_rows = make_rows(60, seed=1, prefix="t")
    eval_rows = make_rows(20, seed=2, prefix="e")
    train_rows[40]["prompt"] = train_rows[10]["prompt"]  # lines 11 and 41
    # Near duplicates: one word added (Jaccard 11/12), lines 21 and 51.
    train_rows[50]["prompt"] = train_rows[20]["prompt"] + " zzzword"
    eval_rows[3]["prompt"] = train_rows[5]["prompt"]  # exact leak: eval line 4 = train line 6
    eval_rows[7]["prompt"] = train_rows[30]["prompt"] + " qqqword"  # near leak: eval line 8 ~ train line 31
    train = import_rows(train_rows, name="Train")
    held_out = import_rows(eval_rows, name="Eval")
    return train, held_out, {"train": train_rows, "eval": eval_rows}


def test_job_finds_planted_duplicates_near_duplicates_and_leakage(world: Any, import_rows: Any,
                                                                  django_capture_on_commit_callbacks: Any) -> None:
    train, held_out, _ = _planted(import_rows)
    with django_capture_on_commit_callbacks(execute=True):
        report = services.quality_report_request(version=train, user=world.lead)
        leak_report = services.quality_report_request(version=held_out, user=world.lead, compare_to=train)
    for r in (report, leak_report):
        r.refresh_from_db()
        r.job.refresh_from_db()
        assert r.job.status == JobStatus.SUCCEEDED, r.job.error
        assert r.job.result["report_id"] == r.pk

    data = report.report
    assert [g["lines"] for g in data["exact_duplicates"]["items"]] == [[11, 41]]
    assert [g["lines"] for g in data["near_duplicates"]["items"]] == [[21, 51]]
    assert data["overlap"] is None
    assert any("exact duplicate" in f for f in data["findings"])

    overlap = leak_report.report["overlap"]
    assert [(g["lines"], g["other_lines"]) for g in overlap["exact"]["items"]] == [([4], [6])]
    assert [(g["lines"], g["other_lines"]) for g in overlap["near"]["items"]] == [([8], [31])]
    assert overlap["leaked_rows"] == 2
    assert any("leakage" in f for f in leak_report.report["findings"])


def test_report_page_shows_progress_then_charts(world: Any, import_rows: Any, client_for: Any) -> None:
    train, held_out, _ = _planted(import_rows)
    client = client_for(world.lead)
    response = client.post(reverse("datasets:quality-run", kwargs={"project_id": world.project.pk,
                                                                   "version_id": held_out.pk}),
                           {"quality-compare_to": train.pk})
    report = QualityReport.objects.get()
    assert report.compare_to_id == train.pk
    url = reverse("datasets:quality", kwargs={"project_id": world.project.pk, "report_id": report.pk})
    assert response["Location"] == url

    # Not run yet (the job starts after the commit, which a test transaction never reaches): a live progress bar.
    waiting = client_for(world.annotator).get(url)
    assert waiting.status_code == 200
    assert b"data-job-status-url" in waiting.content and b"plotly.min.js" not in waiting.content

    assert execute_job(report.job_id) == "succeeded"
    done = client_for(world.annotator).get(url)
    body = done.content.decode()
    assert "plotly.min.js" in body
    for figure in ("fig-overview", "fig-prompt-length", "fig-reference-length", "fig-leakage", "fig-coverage-1"):
        assert f'data-figure="{figure}"' in body
        assert f'id="{figure}"' in body
    leakage = done.context["figures"]["leakage"]
    assert leakage["data"][0]["y"] == [18, 1, 1]
    assert json.loads(json.dumps(done.context["figures"]["overview"]))  # plain JSON for json_script
    assert "share a prompt with the compared version" in body


def test_job_of_a_deleted_report_fails_with_a_message(world: Any, import_rows: Any) -> None:
    version = import_rows(make_rows(5))
    report = services.quality_report_request(version=version, user=world.lead)
    job = report.job
    QualityReport.objects.filter(pk=report.pk).delete()
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "The quality report this job belongs to no longer exists."


def test_compare_to_a_version_of_another_project_is_refused(world: Any, import_rows: Any) -> None:
    from django.core.exceptions import ValidationError

    from evalhub.datasets.models import Dataset, DatasetVersion

    version = import_rows(make_rows(5))
    foreign = Dataset.objects.create(project=world.other_project, name="Foreign")
    other = DatasetVersion(dataset=foreign, number=1, source="upload", content_hash="f" * 64, row_count=0)
    other.save(force_insert=True)
    with pytest.raises(ValidationError, match="same project"):
        services.quality_report_request(version=version, user=world.lead, compare_to=other)
