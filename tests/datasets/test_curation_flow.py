"""Curation queues: claiming (no two annotators get the same example), decisions (idempotent), applying them as a
new version with its changes recorded, and the keyboard-first page."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from evalhub.datasets import services
from evalhub.datasets.models import CurationItem, CurationQueue, VersionSource
from evalhub.projects.models import Membership, Role
from tests.datasets.conftest import make_rows

pytestmark = pytest.mark.django_db


def _annotator(world: Any, name: str) -> Any:
    user = get_user_model().objects.create_user(name)
    Membership.objects.create(project=world.project, user=user, role=Role.ANNOTATOR)
    return user


def _queue(world: Any, import_rows: Any, n: int = 6, **kwargs: Any) -> CurationQueue:
    rows = make_rows(n)
    for i, row in enumerate(rows):
        row["tone"] = "warm" if i % 2 else "plain"
    version = import_rows(rows, label="tone")
    return services.curation_queue_create(version=version, name="Clean up", created_by=world.lead,
                                          label_choices=["warm", "plain", "formal"], **kwargs)


def test_two_annotators_never_get_the_same_claimed_item(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=4)
    other = _annotator(world, "ann2")
    first = services.curation_next_item(queue=queue, user=world.annotator)
    second = services.curation_next_item(queue=queue, user=other)
    assert first is not None and second is not None and first.pk != second.pk
    # Asking again gives each the example they already hold, not a new one.
    assert services.curation_next_item(queue=queue, user=world.annotator).pk == first.pk  # type: ignore[union-attr]
    assert services.curation_next_item(queue=queue, user=other).pk == second.pk  # type: ignore[union-attr]
    # Deciding someone else's held example is refused.
    with pytest.raises(ValidationError, match="Another annotator is working on this example"):
        services.curation_decide(item=first, user=other, decision="accept")


def test_a_claim_expires_and_the_example_goes_to_someone_else(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=1, claim_minutes=10)
    other = _annotator(world, "ann2")
    now = timezone.now()
    item = services.curation_next_item(queue=queue, user=world.annotator, now=now)
    assert item is not None
    assert services.curation_next_item(queue=queue, user=other, now=now + timedelta(minutes=9)) is None
    later = services.curation_next_item(queue=queue, user=other, now=now + timedelta(minutes=11))
    assert later is not None and later.pk == item.pk and later.claimed_by_id == other.pk


def test_decisions_are_idempotent_and_revisable(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=2)
    item = services.curation_next_item(queue=queue, user=world.annotator)
    assert item is not None
    first = services.curation_decide(item=item, user=world.annotator, decision="accept", label="formal",
                                     seconds_spent=12.5)
    again = services.curation_decide(item=item, user=world.annotator, decision="accept", label="formal",
                                     seconds_spent=12.5)
    assert (again.seconds_spent, again.decided_at) == (12.5, first.decided_at)
    revised = services.curation_decide(item=item, user=world.annotator, decision="reject", seconds_spent=3)
    assert (revised.decision, revised.label, revised.seconds_spent) == ("reject", "", 15.5)
    # Nobody else may overwrite a decision.
    with pytest.raises(ValidationError, match="already decided"):
        services.curation_decide(item=item, user=_annotator(world, "ann2"), decision="accept")


def test_decisions_are_validated(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=2)
    item = services.curation_next_item(queue=queue, user=world.annotator)
    assert item is not None
    with pytest.raises(ValidationError, match="not one of this queue's labels"):
        services.curation_decide(item=item, user=world.annotator, decision="accept", label="angry")
    with pytest.raises(ValidationError, match="Nothing was edited"):
        services.curation_decide(item=item, user=world.annotator, decision="fix", fixed_prompt=item.example.prompt,
                                 fixed_reference=item.example.reference)
    with pytest.raises(ValidationError, match="accept, reject or fix"):
        services.curation_decide(item=item, user=world.annotator, decision="maybe")
    item.refresh_from_db()
    assert item.decision == CurationItem.Decision.PENDING


def test_apply_makes_a_new_version_with_the_changes_recorded(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=6, sample_size=4, seed=3)
    version = queue.version
    queued = list(queue.items.order_by("position").select_related("example"))
    assert len(queued) == 4
    decisions = [
        {"decision": "accept"},
        {"decision": "reject"},
        {"decision": "fix", "fixed_prompt": "Describe: a much better prompt", "fixed_reference": "Better."},
        {"decision": "accept", "label": "formal"},
    ]
    for expected, choice in zip(queued, decisions, strict=True):
        item = services.curation_next_item(queue=queue, user=world.annotator)
        assert item is not None and item.pk == expected.pk  # handed out in queue order
        services.curation_decide(item=item, user=world.annotator, **choice)

    new = services.curation_apply(queue=queue, user=world.lead)
    assert (new.parent_id, new.source, new.number, new.row_count) == (version.pk, VersionSource.CURATION, 2, 5)
    summary = {k: new.change_summary[k] for k in ("accepted", "rejected", "fixed", "relabelled", "untouched")}
    assert summary == {"accepted": 2, "rejected": 1, "fixed": 1, "relabelled": 1, "untouched": 2}
    by_id = {e.external_id: e for e in new.examples.all()}
    assert queued[1].example.external_id not in by_id
    fixed = by_id[queued[2].example.external_id]
    assert (fixed.prompt, fixed.reference) == ("Describe: a much better prompt", "Better.")
    assert by_id[queued[3].example.external_id].label == "formal"
    assert by_id[queued[0].example.external_id].label == queued[0].example.label
    # The old version is untouched; the queue is closed and points at its result; applying again changes nothing.
    assert version.examples.count() == 6
    queue.refresh_from_db()
    assert (queue.status, queue.result_version_id) == (CurationQueue.Status.CLOSED, new.pk)
    assert services.curation_apply(queue=queue, user=world.lead).pk == new.pk
    assert services.curation_next_item(queue=queue, user=world.annotator) is None


def test_applying_only_accepts_is_refused_as_identical(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=2)
    while (item := services.curation_next_item(queue=queue, user=world.annotator)) is not None:
        services.curation_decide(item=item, user=world.annotator, decision="accept")
    with pytest.raises(ValidationError, match="identical to v1"):
        services.curation_apply(queue=queue, user=world.lead)
    queue.refresh_from_db()
    assert queue.status == CurationQueue.Status.OPEN


def test_annotate_page_flow(world: Any, import_rows: Any, client_for: Any) -> None:
    queue = _queue(world, import_rows, n=3)
    client = client_for(world.annotator)
    url = reverse("datasets:curation-annotate", kwargs={"project_id": world.project.pk, "queue_id": queue.pk})
    page = client.get(url)
    item = page.context["item"]
    body = page.content.decode()
    assert item.example.prompt in body
    assert 'data-digit="3"' in body and "curation.js" in body
    # Enter after pressing "3" posts accept with the third label.
    response = client.post(url, {"item": item.pk, "decision": "accept", "label": "formal", "seconds": "4.2"})
    assert response.status_code == 302 and response["Location"] == url
    item.refresh_from_db()
    assert (item.decision, item.label, item.seconds_spent, item.decided_by_id) == ("accept", "formal", 4.2,
                                                                                  world.annotator.pk)
    nxt = client.get(url)
    assert nxt.context["item"].pk != item.pk
    assert nxt.context["previous_id"] == item.pk  # k goes back to the decision just made
    # Revising it from history ("k"), then "j" returns to the current example.
    back = client.get(url, {"item": item.pk})
    assert back.context["reviewing"] and back.context["item"].pk == item.pk
    response = client.post(url, {"item": item.pk, "decision": "reject", "return": "history"})
    assert response["Location"] == url
    item.refresh_from_db()
    assert item.decision == "reject"
    # A bad decision is shown on the page, not lost.
    response = client.post(url, {"item": nxt.context["item"].pk, "decision": "accept", "label": "angry"})
    assert response.status_code == 400 and "not one of this queue" in response.content.decode()


def test_another_annotators_item_cannot_be_opened_by_id(world: Any, import_rows: Any, client_for: Any) -> None:
    queue = _queue(world, import_rows, n=3)
    item = services.curation_next_item(queue=queue, user=world.annotator)
    assert item is not None
    services.curation_decide(item=item, user=world.annotator, decision="accept")
    other = _annotator(world, "ann2")
    url = reverse("datasets:curation-annotate", kwargs={"project_id": world.project.pk, "queue_id": queue.pk})
    page = client_for(other).get(url, {"item": item.pk})
    assert page.context["item"].pk != item.pk and not page.context["reviewing"]


def test_lead_overview_and_apply_page(world: Any, import_rows: Any, client_for: Any) -> None:
    queue = _queue(world, import_rows, n=3)
    item = services.curation_next_item(queue=queue, user=world.annotator)
    services.curation_decide(item=item, user=world.annotator, decision="reject", seconds_spent=8)  # type: ignore[arg-type]
    lead = client_for(world.lead)
    url = reverse("datasets:curation", kwargs={"project_id": world.project.pk, "queue_id": queue.pk})
    page = lead.get(url)
    assert page.context["summary"]["rejected"] == 1
    assert page.context["annotators"][0]["decided_by__username"] == "annotator"
    assert "Create version from decisions" in page.content.decode()
    assert "Create version from decisions" not in client_for(world.annotator).get(url).content.decode()
    response = lead.post(reverse("datasets:curation-apply", kwargs={"project_id": world.project.pk,
                                                                    "queue_id": queue.pk}))
    queue.refresh_from_db()
    assert response["Location"] == reverse("datasets:version", kwargs={"project_id": world.project.pk,
                                                                       "version_id": queue.result_version_id})


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent row locks need PostgreSQL")
def test_concurrent_claims_hand_out_distinct_items(world: Any, import_rows: Any) -> None:
    queue = _queue(world, import_rows, n=12)
    users = [_annotator(world, f"c{i}") for i in range(6)]
    got: dict[int, int | None] = {}
    barrier = threading.Barrier(len(users))

    def claim(user: Any) -> None:
        try:
            barrier.wait()
            item = services.curation_next_item(queue=queue, user=user)
            got[user.pk] = item.pk if item else None
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [pk for pk in got.values() if pk is not None]
    assert len(claimed) == len(users) and len(set(claimed)) == len(users)
    assert CurationItem.objects.filter(queue=queue, claimed_by__isnull=False).count() == len(users)
