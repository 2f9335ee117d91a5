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



@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["skip", "submit-single-statement", "submit-orm"])
def test_a_tab_writing_its_item_while_the_other_tab_takes_that_item_is_no_deadlock(
    world: Any, action: str, monkeypatch: Any
) -> None:
    """The interleaving CI once hit: tab 1 holds item X and skips (or submits) it while tab 2 of the same annotator
    has just locked X as its next candidate (its NOT EXISTS saw the table before tab 1's hold was committed). Tab 2's
    insert of (X, annotator) must fail at once on the unique index and tab 1's action must go through. A skip that
    changed the assignment before locking the item made each wait for the other until PostgreSQL killed one."""
    import time

    from django.db import IntegrityError, transaction

    from evalhub.reviews import fastpath

    if action == "submit-orm":
        monkeypatch.setattr(fastpath, "enabled", lambda: False)
    runs = make_runs(world.project, n_examples=2, n_versions=1)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2)
    user = world.annotator
    held = services.assignment_next(campaign=campaign, user=user)
    assert held is not None
    item = CampaignItem.objects.get(pk=held.item_id)

    pid: list[int] = []
    outcome: list[Any] = []
    started = threading.Event()

    def tab1() -> None:
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid.append(cur.fetchone()[0])
            started.set()
            if action == "skip":
                outcome.append(services.assignment_skip(assignment=held, user=user))
            else:
                outcome.append(services.rating_submit(
                    campaign=campaign, user=user, assignment_token=held.token, values={"Accuracy": 4, "Safe": 1},
                    submission_token="tab-1",
                ))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcome.append(exc)
        finally:
            connections.close_all()

    tab2_error: BaseException | None = None
    thread = threading.Thread(target=tab1)
    try:
        with transaction.atomic():
            # Tab 2 up to its insert: the item locked and its slot taken.
            list(CampaignItem.objects.select_for_update().filter(pk=item.pk).values_list("pk", flat=True))
            CampaignItem.objects.filter(pk=item.pk).update(open_slots=item.open_slots - 1)
            thread.start()
            assert started.wait(10)
            with connection.cursor() as cur:
                for _ in range(200):  # until tab 1 waits for the lock tab 2 holds
                    cur.execute("SELECT pg_stat_clear_snapshot()")  # else the view stays as first read here
                    cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid[0]])
                    row = cur.fetchone()
                    if row and row[0] == "Lock":
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail("tab 1 never waited for the item tab 2 holds")
            Assignment.objects.create(
                campaign=campaign, item_id=item.pk, annotator=user, assigned_at=held.assigned_at,
                expires_at=held.expires_at,
            )
    except IntegrityError as exc:
        tab2_error = exc
    thread.join(30)
    assert not thread.is_alive()
    assert tab2_error is not None  # a deadlock would be an OperationalError, raised above
    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert Assignment.objects.filter(campaign=campaign, item=item, annotator=user).count() == 1
    after = CampaignItem.objects.get(pk=item.pk)
    if action == "skip":
        assert outcome[0] is True
        assert Assignment.objects.get(pk=held.pk).status == AssignmentStatus.SKIPPED
        assert after.open_slots == item.open_slots + 1  # tab 1's slot back, tab 2's taking undone
    else:
        assert Rating.objects.filter(campaign=campaign, item=item, annotator=user).count() == 1
        assert after.open_slots == item.open_slots and after.ratings_count == 1
