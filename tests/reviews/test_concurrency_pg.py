"""The queue under concurrent requests on PostgreSQL: 20 threads (two per annotator, so one annotator's requests
also race each other) ask for items and submit until nothing is left. No output may get more than k ratings or live
assignments, and no annotator may get the same output twice.

Run with DATABASE_URL=postgres://... ; SQLite serialises every writer, so there is nothing concurrent to test there.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from evalhub.reviews import services
from evalhub.reviews.models import Assignment, AssignmentStatus, CampaignItem, Rating
from tests.reviews.factories import make_campaign, make_runs

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks with SKIP LOCKED need PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/evalhub",
)

THREADS = 20
K = 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fast", [True, False], ids=["single-statement", "orm"])
def test_twenty_threads_never_exceed_the_overlap(world: Any, annotators: list[Any], fast: bool, monkeypatch: Any) -> None:
    """Both implementations of the hot path: the single-statement PostgreSQL one and the ORM one."""
    from evalhub.reviews import fastpath

    if not fast:
        monkeypatch.setattr(fastpath, "enabled", lambda: False)
    from django.contrib.auth import get_user_model

    from evalhub.projects.models import Membership, Role

    users = [world.annotator, *annotators]
    for i in range(10 - len(users)):
        u = get_user_model().objects.create_user(f"extra{i}")
        Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        users.append(u)
    runs = make_runs(world.project, n_examples=15, n_versions=2)  # 30 outputs
    campaign = make_campaign(world.project, world.lead, runs, overlap=K)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    handed: list[tuple[int, int, int]] = []  # (thread, annotator, item) as each `next` returned it
    lock = threading.Lock()
    refused: list[int] = []

    def work(n: int) -> None:
        user = users[n % len(users)]
        rng = random.Random(n)
        try:
            barrier.wait(timeout=30)
            while True:
                a = services.assignment_next(campaign=campaign, user=user)
                if a is None:
                    break
                with lock:
                    handed.append((n, user.pk, a.item_id))
                live = CampaignItem.objects.get(pk=a.item_id)
                assert live.open_slots >= 0
                if rng.random() < 0.1:
                    services.assignment_skip(assignment=a, user=user)
                    continue
                try:
                    services.rating_submit(
                        campaign=campaign, user=user, assignment_token=a.token, values={"Accuracy": 3, "Safe": 1},
                        submission_token=f"{n}-{a.token}",
                    )
                except ValidationError as exc:
                    # The annotator's other thread skipped this shared item and others filled it since: refused
                    # (the overlap holds), like a second browser tab submitting what the first one skipped.
                    if set(exc.message_dict) != {"assignment"}:
                        raise
                    with lock:
                        refused.append(a.item_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not errors, errors

    ratings = Counter(Rating.objects.filter(campaign=campaign).values_list("item_id", flat=True))
    assert max(ratings.values()) <= K
    live = Counter(
        Assignment.objects.filter(
            campaign=campaign, status__in=[AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED]
        ).values_list("item_id", flat=True)
    )
    assert max(live.values()) <= K
    pairs = Counter(Assignment.objects.filter(campaign=campaign).values_list("item_id", "annotator_id"))
    assert max(pairs.values()) == 1
    assert all(item.open_slots == K - live.get(item.pk, 0) for item in CampaignItem.objects.filter(campaign=campaign))
    # The two threads of one annotator shared the held item rather than each taking one: never the same output for
    # one annotator twice, and every output that was not skipped by everyone is full.
    assert len(handed) >= sum(ratings.values())
    assert sum(ratings.values()) == Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SUBMITTED).count()
    skipped = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SKIPPED).count()
    assert sum(ratings.values()) == 30 * K or skipped > 0
    assert sum(ratings.values()) >= 30 * K - skipped
