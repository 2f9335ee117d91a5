"""The datasets REST API: upload (all or nothing, errors by line and field), versions, paged examples, quality
reports as jobs, and the OpenAPI schema describing them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evalhub.datasets.models import QualityReport
from evalhub.jobs.models import JobStatus
from tests.datasets.conftest import make_rows, table_counts

pytestmark = pytest.mark.django_db


def _base(world: Any) -> str:
    return f"/api/projects/{world.project.pk}"


def _upload(client: Any, world: Any, path: Path, **fields: Any) -> Any:
    with open(path, "rb") as f:
        return client.post(f"{_base(world)}/datasets/upload/", {"file": f, **fields}, format="multipart")


def test_upload_creates_a_version_and_lists_it(world: Any, api_for: Any, rows_file: Callable[..., Path]) -> None:
    client = api_for(world.lead)
    response = _upload(client, world, rows_file(make_rows(7), "parquet"), dataset_name="Products",
                       prompt="prompt", reference="reference", id="id", attributes="category, tone")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["number"], body["row_count"], body["file_format"]) == (1, 7, "parquet")
    assert body["attribute_names"] == ["category", "tone"]
    listed = api_for(world.annotator).get(f"{_base(world)}/datasets/").json()
    assert [d["name"] for d in listed["results"]] == ["Products"]
    assert [v["id"] for v in listed["results"][0]["versions"]] == [body["id"]]


def test_bad_upload_lists_errors_by_line_and_field_and_stores_nothing(
    world: Any, api_for: Any, rows_file: Callable[..., Path]
) -> None:
    rows = make_rows(5)
    rows[1]["prompt"] = ["not", "text"]
    rows[3]["reference"] = 7
    before = table_counts()
    response = _upload(api_for(world.lead), world, rows_file(rows), dataset_name="Products")
    assert response.status_code == 400
    body = response.json()
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(2, "prompt"), (4, "reference")]
    assert body["errors"][0]["text"] == 'products.jsonl, line 2, field "prompt": expected text, got a list'
    assert body["truncated"] is False
    assert table_counts() == before


def test_only_leads_upload(world: Any, api_for: Any, rows_file: Callable[..., Path]) -> None:
    for who in (world.annotator, world.reviewer):
        assert _upload(api_for(who), world, rows_file(make_rows(2)), dataset_name="X").status_code == 403
    assert _upload(api_for(world.outsider), world, rows_file(make_rows(2)), dataset_name="X").status_code == 404
    assert table_counts()["Dataset"] == 0


def test_identical_content_is_refused(world: Any, api_for: Any, rows_file: Callable[..., Path]) -> None:
    client = api_for(world.lead)
    rows = make_rows(4)
    first = _upload(client, world, rows_file(rows), dataset_name="Products").json()
    again = _upload(client, world, rows_file(rows, "csv"), dataset=first["dataset"])
    assert again.status_code == 400
    assert "identical to v1" in str(again.json())


def test_versions_examples_and_search(world: Any, api_for: Any, import_rows: Any) -> None:
    rows = make_rows(30)
    version = import_rows(rows)
    client = api_for(world.annotator)
    versions = client.get(f"{_base(world)}/datasets/{version.dataset_id}/versions/").json()
    assert [v["id"] for v in versions["results"]] == [version.pk]
    detail = client.get(f"{_base(world)}/versions/{version.pk}/").json()
    assert (detail["content_hash"], detail["children"]) == (version.content_hash, [])
    page = client.get(f"{_base(world)}/versions/{version.pk}/examples/", {"limit": 10, "offset": 20}).json()
    assert page["count"] == 30
    assert [e["external_id"] for e in page["results"]] == [r["id"] for r in rows[20:30]]
    assert page["results"][0]["attributes"] == {"category": rows[20]["category"]}
    needle = rows[11]["reference"].split()[4]
    found = client.get(f"{_base(world)}/versions/{version.pk}/examples/", {"q": needle}).json()
    assert rows[11]["id"] in [e["external_id"] for e in found["results"]]


def test_objects_of_another_project_are_not_found(world: Any, api_for: Any, import_rows: Any) -> None:
    version = import_rows(make_rows(3))
    other = api_for(world.outsider)
    theirs = f"/api/projects/{world.other_project.pk}"
    assert other.get(f"{theirs}/versions/{version.pk}/").status_code == 404
    assert other.get(f"{theirs}/versions/{version.pk}/examples/").status_code == 404
    assert other.get(f"{theirs}/datasets/{version.dataset_id}/versions/").status_code == 404


def test_quality_report_runs_as_a_job(world: Any, api_for: Any, import_rows: Any,
                                      django_capture_on_commit_callbacks: Any) -> None:
    rows = make_rows(20)
    rows[15]["prompt"] = rows[4]["prompt"]
    version = import_rows(rows)
    held_out = import_rows(make_rows(5, seed=9, prefix="e") + [rows[0]], name="Eval")
    client = api_for(world.lead)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{_base(world)}/versions/{version.pk}/quality-reports/run/",
                               {"compare_to": held_out.pk}, format="json")
    assert response.status_code == 202
    report_id = response.json()["id"]
    detail = api_for(world.annotator).get(f"{_base(world)}/quality-reports/{report_id}/").json()
    assert detail["job"]["status"] == JobStatus.SUCCEEDED
    assert detail["report"]["exact_duplicates"]["items"][0]["lines"] == [5, 16]
    assert detail["report"]["overlap"]["exact"]["rows"] == 1
    listed = api_for(world.annotator).get(f"{_base(world)}/versions/{version.pk}/quality-reports/").json()
    assert [r["id"] for r in listed["results"]] == [report_id]


def test_quality_report_compare_to_must_be_in_the_project(world: Any, api_for: Any, import_rows: Any) -> None:
    version = import_rows(make_rows(3))
    response = api_for(world.lead).post(f"{_base(world)}/versions/{version.pk}/quality-reports/run/",
                                        {"compare_to": 999_999}, format="json")
    assert response.status_code == 400 and "compare_to" in response.json()
    assert QualityReport.objects.count() == 0


def test_schema_describes_the_datasets_api(client: Any) -> None:
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    upload = paths["/api/projects/{project_id}/datasets/upload/"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "400"} <= set(upload["responses"])
    examples = paths["/api/projects/{project_id}/versions/{version_id}/examples/"]["get"]
    assert {"q", "limit", "offset"} <= {p["name"] for p in examples["parameters"]}
    version_schema = schema["components"]["schemas"]["Version"]
    assert {"content_hash", "parent", "children", "split_name"} <= set(version_schema["properties"])
