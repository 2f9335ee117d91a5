"""Uploading through the page: malformed files show every error with its line and field and store nothing; good
files in every format import the same content; the same content twice is refused."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from evalhub.datasets.ingest import ColumnMapping, Limits, read_examples
from evalhub.datasets.models import Dataset, DatasetVersion
from tests.datasets.conftest import make_rows, table_counts
from tests.datasets.test_ingest import CASES, MALFORMED

pytestmark = pytest.mark.django_db


def _mapping_fields(mapping: ColumnMapping) -> dict[str, str]:
    return {"prompt": mapping.prompt or "", "messages": mapping.messages or "", "reference": mapping.reference or "",
            "label": mapping.label or "", "id": mapping.id or "", "attributes": ", ".join(mapping.attributes)}


def _post(client: Any, project: Any, path: Path, **fields: Any) -> Any:
    url = reverse("datasets:upload", kwargs={"project_id": project.pk})
    with open(path, "rb") as f:
        return client.post(url, {"file": f, "action": "import", **fields})


def _page_text(response: Any) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.parametrize(("name", "mapping", "limits", "line", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_malformed_upload_names_line_and_field_and_stores_nothing(
    name: str, mapping: ColumnMapping, limits: Limits, line: int | None, field: str | None, words: str,
    world: Any, client_for: Any, settings: Any,
) -> None:
    settings.DATASET_MAX_UPLOAD_BYTES = limits.max_bytes
    settings.DATASET_MAX_ROWS = limits.max_rows
    settings.DATASET_MAX_FIELD_CHARS = limits.max_field_chars
    before = table_counts()
    response = _post(client_for(world.lead), world.project, MALFORMED / name, dataset_name="Broken",
                     **_mapping_fields(mapping))

    assert response.status_code == 400
    page = _page_text(response)
    assert "Nothing was imported" in page
    where = name + (f", line {line}" if line is not None else "") + (f', field "{field}"' if field else "")
    assert where in page, f"expected an error starting with {where!r}"
    assert words in page
    assert table_counts() == before
    # The staged copy of the upload is gone too.
    assert not list((Path(settings.ARTIFACT_ROOT) / "uploads").rglob("*.*"))


def test_one_bad_row_among_many_imports_nothing(world: Any, client_for: Any, rows_file: Callable[..., Path]) -> None:
    rows = make_rows(300)
    rows[250]["reference"] = 42
    before = table_counts()
    response = _post(client_for(world.lead), world.project, rows_file(rows), dataset_name="Products")
    assert response.status_code == 400
    assert 'products.jsonl, line 251, field "reference": expected text, got a number' in _page_text(response)
    assert table_counts() == before
    assert not Dataset.objects.filter(name="Products").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "hf_folder"])
def test_good_upload_of_each_format(fmt: str, world: Any, client_for: Any, rows_file: Callable[..., Path]) -> None:
    rows = make_rows(12)
    path = rows_file(rows, fmt)
    # No mapping typed: columns with common names (prompt, reference, id, category, tone) are mapped by themselves.
    response = _post(client_for(world.lead), world.project, path, dataset_name=f"Products {fmt}")
    assert response.status_code == 302, _page_text(response)[:3000]
    version = DatasetVersion.objects.get(dataset__name=f"Products {fmt}")
    assert response["Location"] == reverse("datasets:version", kwargs={"project_id": world.project.pk,
                                                                        "version_id": version.pk})
    assert (version.number, version.row_count, version.file_format) == (1, 12, fmt)
    assert version.attribute_names == ["category", "tone"]
    stored = list(version.examples.order_by("index"))
    assert [e.external_id for e in stored] == [r["id"] for r in rows]
    assert [e.prompt for e in stored] == [r["prompt"] for r in rows]
    assert stored[3].attributes == {"category": rows[3]["category"], "tone": rows[3]["tone"]}
    # The content hash does not depend on the format the content came in.
    reference = read_examples(rows_file(rows, "jsonl"), mapping=ColumnMapping(
        prompt="prompt", reference="reference", id="id", attributes=["category", "tone"]))
    assert version.content_hash == reference.content_hash


def test_same_content_again_is_refused_politely(world: Any, client_for: Any, rows_file: Callable[..., Path]) -> None:
    client = client_for(world.lead)
    rows = make_rows(8)
    assert _post(client, world.project, rows_file(rows), dataset_name="Products").status_code == 302
    dataset = Dataset.objects.get(name="Products")
    changed = make_rows(9)
    assert _post(client, world.project, rows_file(changed), dataset=dataset.pk).status_code == 302
    before = table_counts()

    # The same rows as v1, now as CSV: same content, so refused.
    response = _post(client, world.project, rows_file(rows, "csv"), dataset=dataset.pk)
    assert response.status_code == 400
    assert "identical to v1 of “Products”" in _page_text(response)
    assert table_counts() == before
    assert list(dataset.versions.order_by("number").values_list("number", "row_count")) == [(1, 8), (2, 9)]


def test_new_dataset_name_must_be_free(world: Any, client_for: Any, rows_file: Callable[..., Path]) -> None:
    client = client_for(world.lead)
    assert _post(client, world.project, rows_file(make_rows(3)), dataset_name="Products").status_code == 302
    before = table_counts()
    response = _post(client, world.project, rows_file(make_rows(4)), dataset_name="Products")
    assert response.status_code == 400
    assert "already exists" in _page_text(response)
    assert table_counts() == before


def test_preview_lists_columns_and_suggests_a_mapping(world: Any, client_for: Any,
                                                      rows_file: Callable[..., Path]) -> None:
    client = client_for(world.lead)
    rows = make_rows(3)
    url = reverse("datasets:upload", kwargs={"project_id": world.project.pk})
    with open(rows_file(rows, "csv"), "rb") as f:
        response = client.post(url, {"file": f, "action": "preview", "dataset_name": "Products"})
    assert response.status_code == 200
    page = _page_text(response)
    for column in ("id", "prompt", "reference", "category", "tone"):
        assert f"<th>{column}</th>" in page
    assert rows[0]["prompt"] in page
    form = response.context["form"]
    assert form.initial["prompt"] == "prompt" and form.initial["attributes"] == "category, tone"
    token = form.initial["staged"]
    assert Dataset.objects.count() == 0  # a preview stores nothing

    # Import the staged file with a narrower mapping, without sending the file again.
    response = client.post(url, {"staged": token, "action": "import", "dataset_name": "Products",
                                 "prompt": "prompt", "reference": "reference", "attributes": "category"})
    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert version.attribute_names == ["category"] and version.row_count == 3


def test_staged_token_of_another_user_finds_nothing(world: Any, client_for: Any,
                                                    rows_file: Callable[..., Path]) -> None:
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership, Role

    second_lead = get_user_model().objects.create_user("lead2")
    Membership.objects.create(project=world.project, user=second_lead, role=Role.LEAD)
    url = reverse("datasets:upload", kwargs={"project_id": world.project.pk})
    with open(rows_file(make_rows(3)), "rb") as f:
        token = client_for(world.lead).post(url, {"file": f, "action": "preview",
                                                  "dataset_name": "P"}).context["form"].initial["staged"]
    response = client_for(second_lead).post(url, {"staged": token, "action": "import", "dataset_name": "P"})
    assert response.status_code == 400
    assert "is gone" in _page_text(response)
    assert Dataset.objects.count() == 0


def test_example_text_is_escaped_on_the_version_page(world: Any, client_for: Any, import_rows: Any) -> None:
    rows = make_rows(3)
    rows[1]["prompt"] = "<script>alert('x')</script> & <b>bold</b>"
    version = import_rows(rows)
    for who in (world.lead, world.annotator):
        response = client_for(who).get(reverse("datasets:version", kwargs={"project_id": world.project.pk,
                                                                           "version_id": version.pk}))
        assert response.status_code == 200
        body = response.content.decode()
        assert "<script>alert(" not in body
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in body


def test_version_page_search_and_paging(world: Any, client_for: Any, import_rows: Any) -> None:
    rows = make_rows(60)
    version = import_rows(rows)
    client = client_for(world.annotator)
    url = reverse("datasets:version", kwargs={"project_id": world.project.pk, "version_id": version.pk})
    page2 = client.get(url, {"page": 2})
    assert [e.index for e in page2.context["page"]] == list(range(25, 50))
    needle = rows[42]["prompt"].split()[3]
    found = client.get(url, {"q": needle})
    assert 42 in [e.index for e in found.context["page"]]
    assert all(needle in e.prompt or needle in e.reference for e in found.context["page"])
    # Annotators read data but get no actions.
    assert "Run quality report" not in page2.content.decode()
    assert "Run quality report" in client_for(world.lead).get(url).content.decode()
