"""Leaderboard numbers against independent references: sklearn's logistic regression, scipy's binomial test,
known simulated strengths."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression

from evalhub.arena import ratings, selectors
from evalhub.arena.models import Assignment, Comparison, Contestant, Vote
from evalhub.stats import simulate_votes, votes_to_arrays
from tests.arena.factories import campaign, eval_with_runs, simulate_campaign_votes

pytestmark = pytest.mark.django_db
ELO = 400 / math.log(10)


def reference_ratings(c: Any) -> np.ndarray:
    """Unregularised logistic regression on the stored votes, read independently of the app's code."""
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    rows = list(Vote.objects.filter(campaign=c).values_list("comparison__left__contestant_id",
                                                             "comparison__right__contestant_id", "choice"))
    k = len(index)
    x, y, w = [], [], []
    for left, right, choice in rows:
        row = np.zeros(k)
        row[index[left]], row[index[right]] = 1.0, -1.0
        if choice in ("a", "b"):
            x.append(row), y.append(int(choice == "a")), w.append(1.0)
        else:  # tie and "both bad" (counted as a tie): half a win each way
            x += [row, row]
            y += [1, 0]
            w += [0.5, 0.5]
    model = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000)
    model.fit(np.array(x), np.array(y), sample_weight=np.array(w))
    theta = model.coef_[0]
    return 1000 + ELO * (theta - theta.mean())


@pytest.fixture
def simulated(world: Any, annotators: Any) -> Any:
    ev = eval_with_runs(world.project, n_examples=120, n_versions=4, first_number=1)
    c = campaign(world.project, ev, stop_when_decided=False)
    simulate_campaign_votes(c, [-150.0, -40.0, 40.0, 150.0], seed=5, tie_rate=0.1, both_bad_rate=0.05,
                            users=annotators(6))
    return c


def test_ratings_equal_an_unregularised_logistic_regression_within_half_an_elo_point(simulated: Any) -> None:
    lb = selectors.leaderboard(simulated)
    b = lb.board
    assert b.reg == 0.0 and b.identifiable and b.n_votes == 720
    assert np.max(np.abs(np.array(b.ratings) - reference_ratings(simulated))) < 0.5
    # Intervals contain their point, ranks tie only where intervals overlap, battles add up.
    for i in range(4):
        assert b.low[i] <= b.ratings[i] <= b.high[i]
    # A version is ranked below exactly those whose interval lies wholly above its own.
    for i in range(4):
        assert b.ranks[i] == 1 + sum(b.low[m] > b.high[i] for m in range(4))
    assert b.ranks[int(np.argmax(b.ratings))] == 1
    assert sum(b.n_battles) == 2 * 720


def test_pairwise_odds_follow_the_ratings_and_matrices_count_votes(simulated: Any) -> None:
    b = selectors.leaderboard(simulated).board
    rows = list(Vote.objects.filter(campaign=simulated).values_list(
        "comparison__left__contestant__index", "comparison__right__contestant__index", "choice"))
    for p in b.pairs:
        expected = 1 / (1 + 10 ** ((b.ratings[p.j] - b.ratings[p.i]) / 400))
        assert p.p_win.value == pytest.approx(expected)
        assert p.p_win.low <= p.p_win.value <= p.p_win.high
        assert p.difference.value == pytest.approx(b.ratings[p.i] - b.ratings[p.j])
        between = [r for r in rows if {r[0], r[1]} == {p.i, p.j}]
        assert p.battles == len(between) == b.battles[p.i][p.j] == b.battles[p.j][p.i]
        wins_i = sum(1.0 if (r[2] == "a" and r[0] == p.i) or (r[2] == "b" and r[1] == p.i)
                     else 0.5 if r[2] in ("tie", "both_bad") else 0.0 for r in between)
        assert b.win_rate[p.i][p.j] == pytest.approx(wins_i / len(between))


def test_position_bias_is_the_exact_binomial_test_of_left_wins(simulated: Any) -> None:
    b = selectors.leaderboard(simulated).board
    left = Vote.objects.filter(campaign=simulated, choice="a").count()
    right = Vote.objects.filter(campaign=simulated, choice="b").count()
    ref = sps.binomtest(left, left + right, 0.5)
    assert b.bias.n == left + right
    assert b.bias.share_left == pytest.approx(left / (left + right))
    assert b.bias.p_value == pytest.approx(ref.pvalue)


def test_excluding_both_bad_drops_those_votes(simulated: Any) -> None:
    n_bad = Vote.objects.filter(campaign=simulated, choice="both_bad").count()
    assert n_bad > 0
    simulated.both_bad_as = "exclude"
    simulated.save()
    b = selectors.leaderboard(simulated).board
    assert b.n_votes == 720 - n_bad and b.n_excluded == n_bad


def test_slices_fit_each_attribute_value_on_its_own_votes(simulated: Any) -> None:
    lb = selectors.leaderboard(simulated, slice_attribute="category")
    assert lb.slice_attributes == ["category"]
    assert sorted(s.value for s in lb.slices) == ["garden", "kitchen", "toys"]
    kitchen = next(s for s in lb.slices if s.value == "kitchen")
    rows = list(Vote.objects.filter(campaign=simulated, comparison__prompt__attributes__category="kitchen")
                .values_list("comparison__left__contestant__index", "comparison__right__contestant__index", "choice"))
    assert kitchen.n_votes == len(rows) == kitchen.board.n_votes
    alone = ratings.board([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], 4, n_rounds=50)
    assert np.allclose(kitchen.board.ratings, alone.ratings, atol=1e-6)


def test_too_few_votes_use_a_small_penalty_and_say_so(world: Any, annotators: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=3, n_versions=3)
    c = campaign(world.project, ev, stop_when_decided=False)
    comp = Comparison.objects.filter(campaign=c).first()
    user = annotators(1)[0]
    a = Assignment.objects.create(campaign=c, comparison=comp, annotator=user, status="voted",
                                  served_at=c.created_at, expires_at=c.created_at)
    Vote.objects.create(campaign=c, comparison=comp, annotator=user, assignment=a, choice="a")
    b = selectors.leaderboard(c).board
    assert not b.identifiable and b.reg == c.reg > 0
    assert all(math.isfinite(x) for x in b.ratings)
    assert not any(p.decided for p in b.pairs)  # one vote decides nothing (min_votes_to_decide)


def test_nominal_95_percent_intervals_cover_known_strengths(world: Any) -> None:
    """The app's intervals (plain maximum likelihood when it exists) cover the truth at their nominal rate."""
    truth = np.array([-100.0, -30.0, 30.0, 100.0])
    hits = []
    for rep in range(150):
        votes = simulate_votes(truth, 800, seed=1000 + rep)
        a, b, o = votes_to_arrays(votes)
        board = ratings.board(a, b, np.where(o == 0, "a", "b"), 4, n_rounds=300, seed=rep)
        hits += [lo <= 1000 + t <= hi for lo, hi, t in zip(board.low, board.high, truth - truth.mean())]
    assert 0.93 <= float(np.mean(hits)) <= 0.97


def test_leaderboard_page_names_versions_and_draws_whiskered_charts(world: Any, simulated: Any, client_for: Any) -> None:
    r = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{simulated.pk}/leaderboard/?slice=category")
    html = r.content.decode()
    assert r.status_code == 200
    for n in ("v1 copywriter-a", "v4 copywriter-d"):
        assert n in html
    for fig in ("fig-ratings", "fig-winrate", "fig-battles", "fig-pairs", "fig-slices"):
        assert f'id="{fig}"' in html
    assert '"error_x"' in html  # interval whiskers
    assert "left-side win share" in html and "kitchen" in html


def test_win_rate_heatmap_has_a_short_title_and_explains_itself_in_a_caption(
    world: Any, simulated: Any, client_for: Any
) -> None:
    r = client_for(world.lead).get(f"/p/{world.project.pk}/arena/{simulated.pk}/leaderboard/")
    title = r.context["figures"]["fig-winrate"]["layout"]["title"]["text"]
    assert len(title) <= 35  # a half-width chart cuts off longer titles
    caption = r.content.decode().split('id="winrate-caption">', 1)[1].split("</p>", 1)[0]
    assert "a tie counts half" in caption


def test_leaderboard_api(world: Any, simulated: Any, api_for: Any) -> None:
    r = api_for(world.lead).get(f"/api/projects/{world.project.pk}/arena/campaigns/{simulated.pk}/leaderboard/",
                                {"slice": "category"})
    assert r.status_code == 200
    body = r.json()
    assert body["board"]["n_votes"] == 720 and len(body["board"]["ratings"]) == 4
    assert np.max(np.abs(np.array(body["board"]["ratings"]) - reference_ratings(simulated))) < 0.5
    assert {s["value"] for s in body["slices"]} == {"garden", "kitchen", "toys"}
    assert body["board"]["position_bias"]["n"] > 0


@pytest.mark.slow
def test_stopping_rule_does_not_wear_down_its_confidence_with_repeated_looks() -> None:
    """Two equal versions, checked after every 20 votes up to 400: the plain "interval excludes zero" rule calls
    them different far more often than 5 % of the time; the spending rule used for stopping stays near 5 %."""
    from evalhub.stats import Votes, bt_bootstrap

    reps, plain_hits, spent_hits = 60, 0, 0
    for rep in range(reps):
        rng = np.random.default_rng(500 + rep)
        outcome = rng.integers(0, 2, 400)
        left = rng.integers(0, 2, 400)
        plain = False
        decided: set[tuple[int, int]] = set()
        looks: dict[str, int] = {}
        for n in range(20, 401, 20):
            a, b = left[:n], 1 - left[:n]
            votes = Votes.from_arrays(a, b, outcome[:n], n_models=2)
            boot = bt_bootstrap(votes, n_rounds=400, seed=rep * 1000 + n)
            plain = plain or boot.decided(0, 1)
            battles = np.array([[0, n], [n, 0]])
            decided, looks = ratings.spend_decisions(boot.samples, battles, confidence=0.95, min_votes=20,
                                                     looks=looks, decided=decided)
        plain_hits += plain
        spent_hits += (0, 1) in decided
    print(f"plain {plain_hits}/{reps}, spent {spent_hits}/{reps}")
    assert spent_hits / reps <= 0.10
    assert plain_hits >= 2 * max(spent_hits, 3)
