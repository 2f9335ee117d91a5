"""The demo loader builds the demo project and changes nothing when run again; demo_logins prints the logins."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from evalhub.datasets.models import CurationQueue, Dataset, QualityReport
from evalhub.demo import loader
from evalhub.projects.models import Membership, Project
from tests.datasets.conftest import table_counts

pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, Any]:
    User = get_user_model()
    return {**table_counts(), "users": User.objects.count(), "projects": Project.objects.count(),
            "members": Membership.objects.count(),
            "hashes": sorted(Dataset.objects.values_list("versions__content_hash", flat=True))}


def test_load_demo_twice(db: Any) -> None:
    # The data stage only: later stages add their own (slower) steps and test them themselves.
    out = io.StringIO()
    call_command("load_demo", "--data-only", stdout=out)
    first = _snapshot()
    text = out.getvalue()
    assert "imported Products v1 (184 rows)" in text
    assert "Demo project “Product descriptions (demo)” is ready" in text

    project = Project.objects.get(name=loader.PROJECT_NAME)
    assert "60-90 words" in project.task_instructions
    roles = dict(Membership.objects.filter(project=project).values_list("user__username", "role"))
    assert roles == {"lead": "lead", "reviewer": "reviewer", "annotator1": "annotator", "annotator2": "annotator"}
    assert authenticate(username="annotator2", password=loader.DEMO_PASSWORD) is not None
    assert get_user_model().objects.get(username="admin").is_superuser

    dataset = Dataset.objects.get(project=project, name=loader.DATASET_NAME)
    v1 = dataset.versions.get(number=1)
    assert (v1.row_count, v1.has_label, v1.attribute_names) == (184, True, ["category", "audience", "material"])
    assert v1.examples.get(external_id="p001").label == "premium"
    splits = {c.split_name: c for c in v1.children.all()}
    assert set(splits) == {"train", "validation", "eval"}
    assert sum(c.row_count for c in splits.values()) == 184
    assert splits["train"].change_summary["stratify_by"] == "category"

    # The planted near-duplicate products are what the report of v1 flags; the train split does not leak into eval.
    report = QualityReport.objects.get(version=v1)
    assert report.job.status == "succeeded"
    assert [g["lines"] for g in report.report["near_duplicates"]["items"]] == [[14, 171], [32, 183], [130, 157]]
    leak = QualityReport.objects.get(version=splits["train"], compare_to=splits["eval"])
    assert leak.report["overlap"]["leaked_rows"] == 0

    queue = CurationQueue.objects.get(version__dataset=dataset)
    assert queue.items.count() == 12 and queue.label_choices == ["playful", "premium", "practical"]

    again = io.StringIO()
    call_command("load_demo", "--data-only", stdout=again)
    assert _snapshot() == first
    assert "found Products v1" in again.getvalue()


def test_demo_logins_prints_the_address_and_every_login() -> None:
    out = io.StringIO()
    call_command("demo_logins", "--url", "http://127.0.0.1:8000/", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/" in text
    assert f"password for all: {loader.DEMO_PASSWORD}" in text
    for user in loader.USERS:
        assert user.username in text


def test_steps_can_be_added_after_a_named_step(monkeypatch: Any) -> None:
    monkeypatch.setattr(loader, "STEPS", list(loader.STEPS))
    loader.register_step("tuning: train an adapter", lambda ctx: "trained", after="dataset: split train/validation/eval")
    names = [s.name for s in loader.STEPS]
    assert names.index("tuning: train an adapter") == names.index("dataset: split train/validation/eval") + 1
    loader.register_step("tuning: train an adapter", lambda ctx: "again")  # a second import changes nothing
    assert [s.name for s in loader.STEPS] == names
    with pytest.raises(ValueError, match="no demo step called"):
        loader.register_step("x", lambda ctx: "", after="nope")
    # data_only leaves out steps registered by other modules (here: this test module).
    ran: list[str] = []
    monkeypatch.setattr(loader, "STEPS", [loader.Step("other app", lambda ctx: ran.append("other") or "done")])
    loader.load_demo(io.StringIO(), data_only=True)
    assert ran == []
    monkeypatch.setattr(loader, "_load_app_steps", lambda: None)  # the other apps' real steps stay out of this test
    loader.load_demo(io.StringIO())
    assert ran == ["other"]
