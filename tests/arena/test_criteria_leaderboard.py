"""Per-criterion leaderboard: the rubric preferences mapped back to versions through each comparison's stored sides."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.db.models import F

from evalhub.arena import ratings, selectors
from evalhub.arena.models import Assignment, Comparison, Contestant, Vote
from tests.arena.factories import campaign, eval_with_runs

pytestmark = pytest.mark.django_db

CRITERIA = ("Tone", "Accuracy", "Safety")  # Safety is never judged
X = 2  # the version that is better on Tone and worse on Accuracy


def store_votes(c: Any, users: list[Any], prefs: Callable[[int, int, random.Random], dict[str, str] | None],
                *, seed: int = 0) -> None:
    """One vote per comparison (by one of `users`), with criteria prefs(left index, right index, rng); a comparison
    for which prefs returns None gets no vote. The overall choice is "tie": only the criteria matter here."""
    rng = random.Random(seed)
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    votes, assignments = [], []
    for comp in Comparison.objects.filter(campaign=c).select_related("left", "right"):
        crit = prefs(index[comp.left.contestant_id], index[comp.right.contestant_id], rng)
        if crit is None:
            continue
        user = rng.choice(users)
        a = Assignment(campaign=c, comparison=comp, annotator=user, status="voted", served_at=c.created_at,
                       expires_at=c.created_at)
        assignments.append(a)
        votes.append(Vote(campaign=c, comparison=comp, annotator=user, choice="tie", criteria=crit))
    Assignment.objects.bulk_create(assignments)
    for v, a in zip(votes, assignments):
        v.assignment = a
    Vote.objects.bulk_create(votes)
    for comp_id, n in Counter(v.comparison_id for v in votes).items():
        Comparison.objects.filter(pk=comp_id).update(n_votes=F("n_votes") + n, n_taken=F("n_taken") + n)


def bt_pref(rng: random.Random, li: int, ri: int, truth: list[float], tie_rate: float) -> str:
    if rng.random() < tie_rate:
        return "tie"
    p_left = 1 / (1 + 10 ** ((truth[ri] - truth[li]) / 400))
    return "a" if rng.random() < p_left else "b"


def simulated_prefs(li: int, ri: int, rng: random.Random) -> dict[str, str]:
    out = {"Tone": bt_pref(rng, li, ri, [0.0, 0.0, 300.0], 0.15)}
    if rng.random() < 0.8:  # some annotators leave Accuracy blank
        out["Accuracy"] = bt_pref(rng, li, ri, [0.0, 0.0, -300.0], 0.1)
    return out


def reference_tally(c: Any, criterion: str) -> tuple[Counter[int], Counter[int], Counter[int], list[tuple[int, int, str]]]:
    """W/L/T per contestant index read straight from the stored votes: the winner is the contestant of the side
    the preference names."""
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    wins: Counter[int] = Counter()
    losses: Counter[int] = Counter()
    ties: Counter[int] = Counter()
    rows = []
    for vote in Vote.objects.filter(campaign=c).select_related("comparison__left", "comparison__right"):
        pref = vote.criteria.get(criterion)
        if pref is None:
            continue
        shown = {"a": index[vote.comparison.left.contestant_id], "b": index[vote.comparison.right.contestant_id]}
        rows.append((shown["a"], shown["b"], pref))
        if pref == "tie":
            ties[shown["a"]] += 1
            ties[shown["b"]] += 1
        else:
            wins[shown[pref]] += 1
            losses[shown["b" if pref == "a" else "a"]] += 1
    return wins, losses, ties, rows


@pytest.fixture
def rubric(world: Any, annotators: Any) -> Any:
    ev = eval_with_runs(world.project, n_examples=60, n_versions=3, first_number=1)
    c = campaign(world.project, ev, stop_when_decided=False, criteria=CRITERIA)
    store_votes(c, annotators(5), simulated_prefs, seed=3)
    return c


def by_name(c: Any) -> dict[str, selectors.CriterionBoard]:
    return {b.criterion: b for b in selectors.criteria_leaderboard(c)}


def test_a_version_better_on_tone_and_worse_on_accuracy_is_ranked_so_per_criterion(rubric: Any) -> None:
    boards = by_name(rubric)
    assert list(boards) == list(CRITERIA)
    tone, accuracy = boards["Tone"].board, boards["Accuracy"].board
    assert all(tone.ratings[X] > tone.ratings[i] for i in (0, 1))
    assert all(accuracy.ratings[X] < accuracy.ratings[i] for i in (0, 1))
    # Clear enough to be ranked alone, with intervals that exclude the others.
    assert tone.ranks[X] == 1 and tone.low[X] > max(tone.high[0], tone.high[1])
    assert accuracy.ranks[X] == 3 and accuracy.high[X] < min(accuracy.low[0], accuracy.low[1])
    assert boards["Tone"].versions[0].index == X and boards["Accuracy"].versions[-1].index == X


def test_votes_wins_losses_and_ties_are_exact_and_the_fit_is_the_overall_one(rubric: Any) -> None:
    for name in ("Tone", "Accuracy"):
        cb = by_name(rubric)[name]
        wins, losses, ties, rows = reference_tally(rubric, name)
        assert cb.n_votes == len(rows) == cb.board.n_votes
        for v in cb.versions:
            assert (v.wins, v.losses, v.ties) == (wins[v.index], losses[v.index], ties[v.index])
            assert v.win_rate == pytest.approx((wins[v.index] + ties[v.index] / 2) / v.n)
            assert v.win_rate == pytest.approx(cb.board.score[v.index])  # ties half, as the overall win share
        assert cb.board.n_ties == sum(1 for r in rows if r[2] == "tie") > 0
        # Same fit as the overall leaderboard on these rows (ties half a win each), same bootstrap, same seed.
        alone = ratings.board([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], 3,
                              n_rounds=selectors.CRITERION_ROUNDS, seed=rubric.seed, confidence=rubric.confidence,
                              reg_fallback=rubric.reg)
        assert np.allclose(cb.board.ratings, alone.ratings, atol=1e-9)
        assert np.allclose(cb.board.low, alone.low) and np.allclose(cb.board.high, alone.high)
    n_accuracy = sum(1 for crit in Vote.objects.filter(campaign=rubric).values_list("criteria", flat=True)
                     if "Accuracy" in crit)
    assert by_name(rubric)["Accuracy"].n_votes == n_accuracy < Vote.objects.filter(campaign=rubric).count()


def test_a_criterion_nobody_judged_has_no_votes(rubric: Any) -> None:
    safety = by_name(rubric)["Safety"]
    assert safety.empty and safety.n_votes == 0
    assert all((v.wins, v.losses, v.ties, v.win_rate) == (0, 0, 0, None) for v in safety.versions)


def test_preferences_follow_the_stored_sides_not_the_version_order(world: Any, annotators: Any) -> None:
    """Votes only on comparisons that show X on the right, each preferring the right response ("b") on Tone and the
    left one ("a") on Accuracy: X wins every Tone battle and loses every Accuracy battle."""
    ev = eval_with_runs(world.project, n_examples=12, n_versions=3, first_number=1)
    c = campaign(world.project, ev, stop_when_decided=False, criteria=CRITERIA)

    def prefs(li: int, ri: int, rng: random.Random) -> dict[str, str] | None:
        return {"Tone": "b", "Accuracy": "a"} if ri == X else None

    store_votes(c, annotators(2), prefs)
    n_right = Vote.objects.filter(campaign=c).count()
    assert n_right >= 4
    assert Comparison.objects.filter(campaign=c, left__contestant__index=X).exists()  # sides really are mixed
    boards = by_name(c)
    tone = {v.index: v for v in boards["Tone"].versions}
    accuracy = {v.index: v for v in boards["Accuracy"].versions}
    assert (tone[X].wins, tone[X].losses, tone[X].ties) == (n_right, 0, 0)
    assert (accuracy[X].wins, accuracy[X].losses, accuracy[X].ties) == (0, n_right, 0)
    assert tone[0].losses + tone[1].losses == n_right and tone[0].wins + tone[1].wins == 0
    assert boards["Tone"].versions[0].index == X and boards["Accuracy"].versions[-1].index == X


def test_leaderboard_page_has_a_by_criterion_section(world: Any, rubric: Any, client_for: Any) -> None:
    r = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{rubric.pk}/leaderboard/")
    html = r.content.decode()
    assert r.status_code == 200
    section = html[html.index('id="by-criterion"'):html.index('id="slices"')]
    assert "By criterion" in section and "Tone" in section and "Accuracy" in section
    assert "v3 copywriter-c" in section  # names shown to the lead, as on the overall table
    wins, losses, ties, _ = reference_tally(rubric, "Tone")
    assert f"{wins[X]} / {losses[X]} / {ties[X]}" in section
    safety = section[section.index("Safety"):]
    assert "No votes yet" in safety and "<table" not in safety
    assert 'id="fig-criteria"' in html and '"error_x"' in html


def test_leaderboard_api_has_by_criterion(world: Any, rubric: Any, api_for: Any) -> None:
    r = api_for(world.lead).get(f"/api/projects/{world.project.pk}/arena/campaigns/{rubric.pk}/leaderboard/")
    assert r.status_code == 200
    crit = {c["criterion"]: c for c in r.json()["by_criterion"]}
    assert list(crit) == list(CRITERIA)
    tone = {v["index"]: v for v in crit["Tone"]["versions"]}
    wins, losses, ties, rows = reference_tally(rubric, "Tone")
    assert crit["Tone"]["n_votes"] == len(rows)
    assert (tone[X]["wins"], tone[X]["losses"], tone[X]["ties"]) == (wins[X], losses[X], ties[X])
    assert tone[X]["rating"] == pytest.approx(crit["Tone"]["board"]["ratings"][X])
    assert tone[X]["rating"] > max(tone[0]["rating"], tone[1]["rating"])
    assert tone[X]["low"] <= tone[X]["rating"] <= tone[X]["high"]
    assert crit["Tone"]["versions"][0]["name"] == "v3 copywriter-c"
    assert crit["Safety"]["n_votes"] == 0
    assert all(v["rating"] is None and v["win_rate"] is None for v in crit["Safety"]["versions"])


def test_campaign_without_criteria_has_no_section(world: Any, annotators: Any, client_for: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=3, n_versions=2, first_number=1)
    c = campaign(world.project, ev, stop_when_decided=False)
    assert selectors.criteria_leaderboard(c) == []
    html = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{c.pk}/leaderboard/").content.decode()
    assert 'id="by-criterion"' not in html
