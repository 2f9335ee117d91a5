"""Vote hygiene: per-annotator counts and the flag for annotators who consistently go against the consensus."""

from __future__ import annotations

from typing import Any

import pytest

from evalhub.arena import selectors
from evalhub.arena.models import Assignment, Comparison, Contestant, Vote
from tests.arena.factories import campaign, eval_with_runs

pytestmark = pytest.mark.django_db


def test_a_contrarian_is_flagged_and_honest_annotators_are_not(world: Any, annotators: Any, client_for: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=15, n_versions=2)
    c = campaign(world.project, ev, overlap=4, stop_when_decided=False)
    honest = annotators(3)
    contrarian = annotators(1)[0]
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    rows = []
    for pos, comp in enumerate(Comparison.objects.filter(campaign=c).select_related("left")):
        v1_left = index[comp.left.contestant_id] == 0
        better = "a" if v1_left else "b"  # honest annotators prefer v1, each slipping now and then
        worse = "b" if better == "a" else "a"
        for k, u in enumerate(honest):
            rows.append((comp, u, worse if (pos + 2 * k) % 7 == 0 else better))
        rows.append((comp, contrarian, better if pos % 5 == 0 else worse))  # against on 12 of 15
    for comp, user, choice in rows:
        a = Assignment.objects.create(campaign=c, comparison=comp, annotator=user, status="voted",
                                      served_at=c.created_at, expires_at=c.created_at)
        Vote.objects.create(campaign=c, comparison=comp, annotator=user, assignment=a, choice=choice,
                            seconds_spent=12.0)
    stats = {s.username: s for s in selectors.annotator_stats(c)}
    bad = stats[contrarian.username]
    assert bad.flagged and bad.votes == 15 and (bad.against, bad.against_units) == (12, 15)
    assert bad.agreement < 0.3
    for u in honest:
        s = stats[u.username]
        assert not s.flagged and s.agreement > bad.agreement + 0.3 and s.votes == 15 and s.median_seconds == 12.0
    # The lead's page lists the flag first; annotators cannot open it.
    page = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{c.pk}/annotators/").content.decode()
    assert "1 annotator consistently votes against the consensus" in page
    assert page.index(contrarian.username) < page.index(honest[0].username)
    assert client_for(world.annotator).get(f"/p/{world.project.pk}/arena/{c.pk}/annotators/").status_code == 403


def test_too_little_overlap_flags_nobody(world: Any, annotators: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=5, n_versions=2)
    c = campaign(world.project, ev, overlap=2, stop_when_decided=False)
    a_user, b_user = annotators(2)
    for comp in Comparison.objects.filter(campaign=c):
        for user, choice in ((a_user, "a"), (b_user, "b")):
            a = Assignment.objects.create(campaign=c, comparison=comp, annotator=user, status="voted",
                                          served_at=c.created_at, expires_at=c.created_at)
            Vote.objects.create(campaign=c, comparison=comp, annotator=user, assignment=a, choice=choice)
    stats = selectors.annotator_stats(c)
    assert [s.flagged for s in stats] == [False, False]  # 5 disagreements are not enough evidence
    assert all(s.left_share in (0.0, 1.0) for s in stats)
