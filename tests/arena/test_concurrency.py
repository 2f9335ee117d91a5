"""Concurrent annotators on PostgreSQL: overlap is never exceeded and nobody holds two comparisons at once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from evalhub.arena import services
from evalhub.arena.models import Assignment, Comparison, Vote
from tests.arena.factories import campaign, eval_with_runs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED need PostgreSQL (make test runs the suite on it)")


def run_threads(n: int, work: Callable[[int], None]) -> list[Exception]:
    barrier = threading.Barrier(n)
    errors: list[Exception] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # noqa: BLE001 - any failure in a thread is collected and reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return errors


def test_twenty_annotators_at_once_never_exceed_the_overlap(world: Any, annotators: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=5, n_versions=2)
    c = campaign(world.project, ev, overlap=3, stop_when_decided=False)
    users = annotators(20)

    def annotate(i: int) -> None:
        while True:
            a = services.comparison_next(campaign=c, user=users[i])
            if a is None:
                return
            services.vote_submit(campaign=c, user=users[i], token=a.comparison.token, choice="ab"[i % 2])

    assert run_threads(20, annotate) == []
    per_comparison = Counter(Vote.objects.filter(campaign=c).values_list("comparison_id", flat=True))
    assert len(per_comparison) == 5 and set(per_comparison.values()) == {3}
    assert all(x.n_taken == 3 and x.n_votes == 3 for x in Comparison.objects.filter(campaign=c))
    pairs = list(Vote.objects.filter(campaign=c).values_list("comparison_id", "annotator_id"))
    assert len(pairs) == len(set(pairs)) == 15


def test_one_annotator_double_clicking_holds_one_comparison(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=10, n_versions=2)
    c = campaign(world.project, ev, overlap=1, stop_when_decided=False)
    got: list[int] = []

    def ask(_i: int) -> None:
        a = services.comparison_next(campaign=c, user=world.annotator)
        got.append(a.comparison_id)

    assert run_threads(8, ask) == []
    assert len(set(got)) == 1
    assert Assignment.objects.filter(annotator=world.annotator).count() == 1
    assert sum(Comparison.objects.filter(campaign=c).values_list("n_taken", flat=True)) == 1
