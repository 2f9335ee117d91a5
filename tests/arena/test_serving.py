"""Serving comparisons: overlap, never the same pair twice, resume, skip, expiry, decided pairs, scheduling."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evalhub.arena import services
from evalhub.arena.models import Assignment, Comparison, Contestant, Vote
from tests.arena.factories import Eval, campaign, eval_with_runs

pytestmark = pytest.mark.django_db


def vote_until_done(c: Any, users: list[Any], choose: Callable[[Comparison], str] | None = None,
                    rng: random.Random | None = None) -> list[tuple[Any, Comparison]]:
    """Annotators take turns asking for the next comparison and voting on it until nobody gets one."""
    rng = rng or random.Random(0)
    served: list[tuple[Any, Comparison]] = []
    active = list(users)
    while active:
        user = rng.choice(active)
        a = services.comparison_next(campaign=c, user=user)
        if a is None:
            active.remove(user)
            continue
        comp = Comparison.objects.select_related("left", "right").get(pk=a.comparison_id)
        served.append((user, comp))
        services.vote_submit(campaign=c, user=user, token=comp.token, choice=choose(comp) if choose else "a")
    return served


def test_every_comparison_gets_exactly_overlap_votes_from_different_annotators(world: Any, ev: Eval, annotators: Any) -> None:
    c = campaign(world.project, ev, overlap=2, stop_when_decided=False)
    users = annotators(4)
    served = vote_until_done(c, users)
    per_comp = Counter(comp.pk for _, comp in served)
    assert set(per_comp.values()) == {2} and len(per_comp) == Comparison.objects.filter(campaign=c).count()
    # Never the same comparison (same prompt, same two versions) twice for one annotator.
    assert len({(u.pk, comp.pk) for u, comp in served}) == len(served)
    assert all(x.n_taken == 2 and x.n_votes == 2 for x in Comparison.objects.filter(campaign=c))


def test_one_annotator_sees_each_comparison_at_most_once(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev, overlap=3, stop_when_decided=False)
    served = vote_until_done(c, [world.annotator])
    assert len(served) == Comparison.objects.filter(campaign=c).count()
    assert len({comp.pk for _, comp in served}) == len(served)


def test_the_comparison_in_hand_is_served_again_until_voted(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev)
    first = services.comparison_next(campaign=c, user=world.annotator)
    again = services.comparison_next(campaign=c, user=world.annotator)
    assert first is not None and again is not None and first.pk == again.pk
    assert Assignment.objects.filter(annotator=world.annotator).count() == 1


def test_skip_releases_the_slot_and_is_never_shown_again(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev, stop_when_decided=False)
    a = services.comparison_next(campaign=c, user=world.annotator)
    assert a is not None
    services.comparison_skip(campaign=c, user=world.annotator, token=a.comparison.token)
    assert Comparison.objects.get(pk=a.comparison_id).n_taken == 0
    seen = {x.comparison_id for x in [services.comparison_next(campaign=c, user=world.annotator)] if x}
    assert a.comparison_id not in seen
    # Another annotator can get the skipped one.
    others = vote_until_done(c, [world.reviewer])
    assert a.comparison_id in {comp.pk for _, comp in others}


def test_a_comparison_left_too_long_goes_to_someone_else(world: Any, ev: Eval) -> None:
    ev2 = eval_with_runs(world.project, n_examples=1, n_versions=2)
    c = campaign(world.project, ev2, overlap=1, claim_minutes=30)
    a = services.comparison_next(campaign=c, user=world.annotator)
    assert a is not None
    assert services.comparison_next(campaign=c, user=world.reviewer) is None  # the only slot is held
    later = timezone.now() + timedelta(minutes=31)
    b = services.comparison_next(campaign=c, user=world.reviewer, now=later)
    assert b is not None and b.comparison_id == a.comparison_id
    assert Comparison.objects.get(pk=a.comparison_id).n_taken == 1


def test_decided_pairs_stop_being_served(world: Any, annotators: Any) -> None:
    # v1 is far better than v2 and v3 on every prompt; v2 and v3 win alternately (equal).
    ev = eval_with_runs(world.project, n_examples=30, n_versions=3)
    c = campaign(world.project, ev, overlap=3, stop_when_decided=True, min_votes_to_decide=15)
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    turn = {"n": 0}

    def prefer_v1(comp: Comparison) -> str:
        li, ri = index[comp.left.contestant_id], index[comp.right.contestant_id]
        if 0 in (li, ri):
            return "a" if li == 0 else "b"
        turn["n"] += 1
        return "a" if (li == 1) == (turn["n"] % 2 == 0) else "b"

    served = vote_until_done(c, annotators(3), prefer_v1, random.Random(3))
    state = services.schedule_state(c, force=True)
    decided = {tuple(p) for p in state["decided"]}
    assert (0, 1) in decided and (0, 2) in decided and (1, 2) not in decided
    votes = Counter(frozenset((index[comp.pair_lo_id], index[comp.pair_hi_id])) for _, comp in served)
    total = 30 * 3
    # The decided pairs stopped at their first look (15 votes, a few more in flight); the undecided pair was served
    # to the end.
    assert votes[frozenset((0, 1))] < 25 and votes[frozenset((0, 2))] < 25
    assert votes[frozenset((1, 2))] == total


def test_without_stop_when_decided_every_pair_is_served_to_the_end(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev, overlap=1, stop_when_decided=False)
    served = vote_until_done(c, [world.annotator])
    assert len(served) == Comparison.objects.filter(campaign=c).count()


def test_uniform_scheduling_keeps_pairs_balanced(world: Any, annotators: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=20, n_versions=4)
    c = campaign(world.project, ev, overlap=1, stop_when_decided=False)
    user = annotators(1)[0]
    counts: Counter[tuple[int, int]] = Counter()
    for _ in range(24):
        a = services.comparison_next(campaign=c, user=user)
        assert a is not None
        counts[(a.comparison.pair_lo_id, a.comparison.pair_hi_id)] += 1
        services.vote_submit(campaign=c, user=user, token=a.comparison.token, choice="tie")
    assert len(counts) == 6 and set(counts.values()) == {4}


def test_active_scheduling_asks_about_the_uncertain_pair(world: Any, annotators: Any) -> None:
    # v1 crushes v2 and v3; v2 vs v3 is a coin flip. After a warm-up, active serving should favour v2 vs v3.
    ev = eval_with_runs(world.project, n_examples=60, n_versions=3)
    c = campaign(world.project, ev, overlap=1, stop_when_decided=False, scheduling="active")
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    rng = random.Random(1)
    user = annotators(1)[0]
    pairs: list[frozenset[int]] = []
    for _ in range(90):
        a = services.comparison_next(campaign=c, user=user)
        assert a is not None
        comp = Comparison.objects.select_related("left", "right").get(pk=a.comparison_id)
        li, ri = index[comp.left.contestant_id], index[comp.right.contestant_id]
        pairs.append(frozenset((li, ri)))
        choice = ("a" if li == 0 else "b") if 0 in (li, ri) else rng.choice(["a", "b"])
        services.vote_submit(campaign=c, user=user, token=comp.token, choice=choice)
    late = Counter(pairs[30:])
    assert late[frozenset((1, 2))] > late[frozenset((0, 1))] and late[frozenset((1, 2))] > late[frozenset((0, 2))]


def test_closed_campaign_serves_nothing_and_releases_what_was_held(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev)
    a = services.comparison_next(campaign=c, user=world.annotator)
    assert a is not None
    services.campaign_set_status(campaign=c, status="closed")
    assert Comparison.objects.get(pk=a.comparison_id).n_taken == 0
    assert services.comparison_next(campaign=c, user=world.annotator) is None
    services.campaign_set_status(campaign=c, status="open")
    assert services.comparison_next(campaign=c, user=world.annotator) is not None


def test_only_listed_annotators_may_vote(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev, annotators=[world.reviewer])
    with pytest.raises(services.ArenaRefusal) as info:
        services.comparison_next(campaign=c, user=world.annotator)
    assert info.value.http_status == 403
    assert services.comparison_next(campaign=c, user=world.reviewer) is not None
    assert not Vote.objects.exists()
