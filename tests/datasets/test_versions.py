"""Versions made from versions: atomic imports, seeded stratified splits with lineage, re-balancing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from evalhub.datasets import ingest, services
from evalhub.datasets.models import DatasetVersion, Example, VersionSource
from tests.datasets.conftest import make_rows, table_counts

pytestmark = pytest.mark.django_db


def _ids(version: DatasetVersion) -> list[str]:
    return list(version.examples.order_by("index").values_list("external_id", flat=True))


def test_import_is_atomic_when_the_database_fails_midway(world: Any, import_rows: Any, monkeypatch: Any) -> None:
    """A failure after some examples were written (here: the third batch) rolls back everything, dataset included."""
    monkeypatch.setattr(services, "BATCH_SIZE", 10)
    real = Example.objects.bulk_create
    calls = {"n": 0}

    def failing(objs: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(objs, *args, **kwargs)

    monkeypatch.setattr(Example.objects, "bulk_create", failing)
    before = table_counts()
    with pytest.raises(RuntimeError, match="disk full"):
        import_rows(make_rows(35))
    assert calls["n"] == 3
    assert table_counts() == before


def test_versions_are_numbered_per_dataset_and_immutable(world: Any, import_rows: Any) -> None:
    v1 = import_rows(make_rows(5))
    v2 = import_rows(make_rows(6), dataset=v1.dataset)
    other = import_rows(make_rows(5, seed=3), name="Other")
    assert (v1.number, v2.number, other.number) == (1, 2, 1)
    assert v2.content_hash != v1.content_hash
    with pytest.raises(ValueError, match="immutable"):
        v1.note = "changed"
        v1.save()


def test_too_long_id_is_reported_by_line_and_field(world: Any, import_rows: Any) -> None:
    rows = make_rows(3)
    rows[2]["id"] = "x" * 300
    before = table_counts()
    with pytest.raises(ingest.DatasetImportError) as caught:
        import_rows(rows)
    assert str(caught.value.errors[0]).endswith(', line 3, field "external_id": is 300 characters long; at most '
                                                "200 are allowed")
    assert table_counts() == before


def test_split_is_seeded_stratified_and_recorded_as_lineage(world: Any, import_rows: Any) -> None:
    rows = make_rows(200)
    # An uneven attribute: stratification must spread each value over the parts in the same proportions.
    for i, row in enumerate(rows):
        row["category"] = "rare" if i % 10 == 0 else ("mid" if i % 10 < 4 else "common")
    version = import_rows(rows)
    train, validation, held_out = services.version_split(version=version, user=world.lead, seed=7,
                                                         stratify_by="category")
    assert [c.split_name for c in (train, validation, held_out)] == ["train", "validation", "eval"]
    assert [c.row_count for c in (train, validation, held_out)] == [160, 20, 20]
    assert {c.parent_id for c in (train, validation, held_out)} == {version.pk}
    assert {c.source for c in (train, validation, held_out)} == {VersionSource.SPLIT}
    assert train.change_summary["seed"] == 7 and train.change_summary["stratify_by"] == "category"
    # Disjoint and complete.
    parts = [set(_ids(c)) for c in (train, validation, held_out)]
    assert sum(len(p) for p in parts) == 200 and set().union(*parts) == set(_ids(version))
    # Stratified: each part holds the same share of every category as the whole (within one row).
    whole = Counter(r["category"] for r in rows)
    for child, fraction in ((train, 0.8), (validation, 0.1), (held_out, 0.1)):
        got = Counter(child.examples.values_list("attributes__category", flat=True))
        for value, n in whole.items():
            assert abs(got[value] - n * fraction) <= 1, (child.split_name, value, got[value], n * fraction)

    # Deterministic: the same split of the same content elsewhere gives the same rows; another seed does not.
    copy = import_rows(rows, name="Copy")
    again = services.version_split(version=copy, user=world.lead, seed=7, stratify_by="category")
    assert [_ids(c) for c in again] == [_ids(c) for c in (train, validation, held_out)]
    copy2 = import_rows(rows, name="Copy 2")
    other_seed = services.version_split(version=copy2, user=world.lead, seed=8, stratify_by="category")
    assert _ids(other_seed[2]) != _ids(held_out)


def test_the_same_split_twice_is_refused(world: Any, import_rows: Any) -> None:
    version = import_rows(make_rows(30))
    services.version_split(version=version, user=world.lead, seed=0)
    before = table_counts()
    with pytest.raises(ValidationError, match="identical to v2"):
        services.version_split(version=version, user=world.lead, seed=0)
    assert table_counts() == before


def test_split_keeps_duplicate_prompts_together(world: Any, import_rows: Any) -> None:
    rows = make_rows(50)
    for i in (5, 17, 33, 48):
        rows[i]["prompt"] = rows[2]["prompt"]
    version = import_rows(rows)
    children = services.version_split(version=version, user=world.lead, seed=1)
    holders = [c.split_name for c in children if c.examples.filter(prompt=rows[2]["prompt"]).exists()]
    assert len(holders) == 1


def test_rebalance_down_and_up(world: Any, import_rows: Any) -> None:
    rows = make_rows(40)
    for i, row in enumerate(rows):
        row["category"] = "a" if i < 25 else ("b" if i < 35 else "c")
    version = import_rows(rows)
    down = services.version_rebalance(version=version, user=world.lead, attribute="category", mode="down", seed=0)
    assert Counter(down.examples.values_list("attributes__category", flat=True)) == {"a": 5, "b": 5, "c": 5}
    assert down.parent_id == version.pk and down.source == VersionSource.REBALANCE
    assert down.change_summary["before"] == {"a": 25, "b": 10, "c": 5}
    assert down.change_summary["after"] == {"a": 5, "b": 5, "c": 5}
    up = services.version_rebalance(version=version, user=world.lead, attribute="category", mode="up", seed=0)
    assert Counter(up.examples.values_list("attributes__category", flat=True)) == {"a": 25, "b": 25, "c": 25}
    # Up-sampling repeats rows of the rare values; every original row is still there.
    assert set(_ids(up)) == set(_ids(version))


def test_rebalance_that_changes_nothing_or_names_no_attribute_is_refused(world: Any, import_rows: Any) -> None:
    version = import_rows(make_rows(6))  # two rows of each category: already balanced
    before = table_counts()
    with pytest.raises(ValidationError, match="identical to v1"):
        services.version_rebalance(version=version, user=world.lead, attribute="category")
    with pytest.raises(ValidationError, match="not an attribute"):
        services.version_rebalance(version=version, user=world.lead, attribute="colour")
    assert table_counts() == before


def test_split_and_rebalance_pages(world: Any, client_for: Any, import_rows: Any) -> None:
    rows = make_rows(30)
    rows[0]["category"] = rows[1]["category"]  # uneven, so down-sampling changes something
    version = import_rows(rows)
    client = client_for(world.lead)
    kwargs = {"project_id": world.project.pk, "version_id": version.pk}
    response = client.post(reverse("datasets:version-split", kwargs=kwargs),
                           {"split-train": 70, "split-validation": 10, "split-eval": 10, "split-seed": 0})
    assert response.status_code == 302
    assert version.children.count() == 0  # 90 % is refused, nothing made
    response = client.post(reverse("datasets:version-split", kwargs=kwargs),
                           {"split-train": 80, "split-validation": 10, "split-eval": 10, "split-seed": 0,
                            "split-stratify_by": "category"}, follow=True)
    assert "Split into train v2 (24), validation v3 (3), eval v4 (3)." in response.content.decode()
    response = client.post(reverse("datasets:version-rebalance", kwargs=kwargs),
                           {"rebalance-attribute": "category", "rebalance-mode": "down", "rebalance-seed": 0})
    child = version.children.get(source=VersionSource.REBALANCE)
    assert response["Location"] == reverse("datasets:version", kwargs={**kwargs, "version_id": child.pk})
    # The list shows the lineage tree: children indented under their parent.
    page = client.get(reverse("datasets:list", kwargs={"project_id": world.project.pk}))
    depths = [(v.number, d) for v, d in page.context["datasets"][0][1]]
    assert depths == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]
