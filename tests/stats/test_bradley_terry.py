"""Bradley-Terry arena ratings (evalhub.stats.bradley_terry) against independent references."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression

import evalhub.stats
from evalhub.stats import (
    A_WINS,
    B_WINS,
    TIE,
    Votes,
    battle_matrices,
    bt_bootstrap,
    bt_fit,
    identifiable,
    next_pair_uncertainty,
    pair_decided,
    position_bias,
    predicted_win_matrix,
    ranks_with_ties,
    simulate_votes,
    votes_to_arrays,
    win_probability,
    win_rate_matrix,
)

ELO = 400 / math.log(10)


def _logreg_reference(votes: Votes) -> np.ndarray:
    """Unregularised logistic regression on the +/-1 design (one row per vote; a tie = half a row each way)."""
    a, b, o = votes_to_arrays(votes)
    k = votes.n_models
    rows = np.arange(a.size)
    x = np.zeros((a.size, k))
    x[rows, a] = 1.0
    x[rows, b] = -1.0
    tie = o == TIE
    # Decisive votes: one row, label "a won". Ties: the same row twice with labels 1 and 0, weight 0.5 each.
    design = np.vstack([x, x[tie]])
    labels = np.r_[(o == A_WINS).astype(int), np.zeros(int(tie.sum()), dtype=int)]
    labels[: a.size][tie] = 1
    weights = np.r_[np.where(tie, 0.5, 1.0), np.full(int(tie.sum()), 0.5)]
    # C=np.inf is scikit-learn >= 1.8's spelling of penalty=None (no regularisation).
    model = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000)
    model.fit(design, labels, sample_weight=weights)
    theta = model.coef_[0]
    return 1000 + ELO * (theta - theta.mean())


@pytest.mark.parametrize(("n_models", "n_votes", "tie_rate", "seed"), [(4, 600, 0.0, 1), (8, 3000, 0.2, 2)])
def test_bt_fit_equals_unregularised_logistic_regression(
    n_models: int, n_votes: int, tie_rate: float, seed: int
) -> None:
    truth = np.linspace(-200, 200, n_models)
    votes = simulate_votes(truth, n_votes, seed=seed, tie_rate=tie_rate)
    fit = bt_fit(votes)
    assert fit.converged
    assert np.max(np.abs(fit.ratings - _logreg_reference(votes))) < 0.5
    assert fit.ratings.mean() == pytest.approx(1000.0)
    assert fit.n_battles.sum() == 2 * votes.n_votes


def test_ratings_recover_known_strengths_and_anchor() -> None:
    truth = np.array([-120.0, 0.0, 50.0, 200.0])
    votes = simulate_votes(truth, 40_000, seed=3)
    fit = bt_fit(votes)
    assert np.max(np.abs(fit.ratings - (1000 + truth - truth.mean()))) < 15
    anchored = bt_fit(votes, anchor=1, anchor_rating=1114.0)
    assert anchored.ratings[1] == 1114.0
    assert np.allclose(np.diff(anchored.ratings), np.diff(fit.ratings))
    natural = bt_fit(votes, scale=1.0, base=math.e, anchor_rating=0.0)
    assert np.allclose(natural.ratings, fit.theta)


def test_votes_from_arrays_accepts_names_and_handles_both_bad() -> None:
    a = [0, 1, 0, 2, 0]
    b = [1, 2, 2, 0, 1]
    out = ["a", "model_b", "tie", "both_bad", "A"]
    as_tie = Votes.from_arrays(a, b, out, n_models=3)
    excluded = Votes.from_arrays(a, b, out, n_models=3, both_bad="exclude")
    assert as_tie.n_votes == 5 and excluded.n_votes == 4 and excluded.n_excluded == 1
    wins, battles = battle_matrices(as_tie)
    # 0 beat 1 twice; 1 vs 2: 2 won; 0 vs 2: a tie and a "both bad" tie
    assert wins[0, 1] == 2 and wins[2, 1] == 1 and wins[0, 2] == 1.0 and wins[2, 0] == 1.0
    assert battles[0, 2] == battles[2, 0] == 2 and battles.trace() == 0
    rate = win_rate_matrix(as_tie)
    assert rate[0, 1] == 1.0 and rate[1, 0] == 0.0 and math.isnan(rate[0, 0])
    met = battles > 0
    assert np.allclose((rate + rate.T)[met], 1.0) and np.isnan(rate[~met]).all()
    with pytest.raises(ValueError, match="unknown outcome"):
        Votes.from_arrays([0], [1], ["left"])
    with pytest.raises(ValueError, match="itself"):
        Votes.from_arrays([0], [0], ["a"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Votes.from_arrays([0], [2], ["a"], n_models=2)


def test_no_finite_mle_is_refused_unless_regularised() -> None:
    # model 2 never loses: its MLE rating is infinite
    votes = Votes.from_arrays([0, 1, 2, 2, 0], [1, 0, 0, 1, 1], [A_WINS, A_WINS, A_WINS, A_WINS, B_WINS])
    assert not identifiable(votes)
    with pytest.raises(ValueError, match="strongly connected"):
        bt_fit(votes)
    fit = bt_fit(votes, reg=0.1)
    assert np.argmax(fit.ratings) == 2 and np.all(np.isfinite(fit.ratings))
    assert identifiable(simulate_votes([0, 10, 20], 300, seed=1))


def _lbfgs_fit(wins: np.ndarray, n_models: int) -> np.ndarray:
    """Independent reference: weighted BT negative log-likelihood minimised by L-BFGS over pair win counts."""
    i, j = np.nonzero(wins)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        d = theta[i] - theta[j]
        w = wins[i, j]
        f = float(np.sum(w * np.logaddexp(0.0, -d)))
        g = -w * (1 - 1 / (1 + np.exp(-d)))
        grad = np.bincount(i, g, n_models) - np.bincount(j, g, n_models)
        return f, grad

    res = optimize.minimize(
        nll,
        np.zeros(n_models),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000},
    )
    return 1000 + ELO * (res.x - res.x.mean())


def test_batched_bootstrap_rounds_equal_independent_fits_of_the_same_resamples() -> None:
    votes = simulate_votes(np.array([-80.0, 0.0, 30.0, 90.0, 140.0]), 2000, seed=4, tie_rate=0.1)
    boot = bt_bootstrap(votes, n_rounds=40, seed=9)
    assert boot.n_unconverged == 0
    # Re-draw the same multinomial resamples of the unique vote rows and fit each one on its own.
    counts = np.random.default_rng(9).multinomial(votes.n_votes, votes.count / votes.n_votes, size=40)
    for r in range(0, 40, 7):
        resampled = Votes(votes.n_models, votes.model_a, votes.model_b, votes.outcome, counts[r])
        wins, _ = battle_matrices(resampled)
        assert np.max(np.abs(boot.samples[r] - _lbfgs_fit(wins, votes.n_models))) < 0.01
    assert np.allclose(boot.ratings, bt_fit(votes).ratings)
    assert np.all(boot.low <= boot.ratings) and np.all(boot.ratings <= boot.high)
    again = bt_bootstrap(votes, n_rounds=40, seed=9)
    assert np.array_equal(again.samples, boot.samples)


def test_bootstrap_interval_coverage_with_known_strengths() -> None:
    # Pooled over models and replications, nominal 95 % intervals must cover the truth 93-97 % of the time.
    truth = np.array([-150.0, -60.0, 0.0, 20.0, 80.0, 110.0])
    centred = 1000 + truth - truth.mean()
    hits = []
    for rep in range(200):
        boot = bt_bootstrap(simulate_votes(truth, 1500, seed=1000 + rep), n_rounds=300, seed=rep)
        hits.append((boot.low <= centred) & (centred <= boot.high))
    coverage = float(np.mean(hits))
    assert 0.93 <= coverage <= 0.97


def test_win_probability_and_decided_pairs() -> None:
    assert win_probability(1400.0, 1000.0).value == pytest.approx(10 / 11)
    assert win_probability(1000.0, 1000.0).value == 0.5
    votes = simulate_votes(np.array([0.0, 10.0, 300.0]), 3000, seed=5)
    boot = bt_bootstrap(votes, n_rounds=300, seed=1)
    p = boot.win_probability(2, 0)
    assert p.low < p.value < p.high and p.value > 0.8
    assert p.value == pytest.approx(predicted_win_matrix(boot.ratings)[2, 0])
    assert boot.decided(2, 0) and pair_decided(boot.samples, 0, 2)
    assert not boot.decided(0, 1)  # 10 Elo apart with ~1000 votes each: not separable
    diff = boot.difference(2, 1)
    assert diff.value == pytest.approx(boot.ratings[2] - boot.ratings[1]) and diff.low > 0
    ranks = boot.ranks()
    assert ranks[2] == 1 and ranks[0] == ranks[1] == 2


def test_ranks_with_ties_where_intervals_overlap() -> None:
    low = np.array([1100, 1090, 1000, 900])
    high = np.array([1150, 1120, 1095, 950])
    assert ranks_with_ties(low, high).tolist() == [1, 1, 2, 4]


def test_position_bias_uses_exact_binomial_test() -> None:
    res = position_bias(60, 40)
    ref = sps.binomtest(60, 100, 0.5)
    assert res.share_left == 0.6 and res.n == 100 and res.p_value == pytest.approx(ref.pvalue)
    assert res.low < 0.6 < res.high
    assert position_bias(500, 500).p_value == pytest.approx(1.0)
    assert math.isnan(position_bias(0, 0).share_left)


def test_next_pair_prefers_unseen_then_close_uncertain_pairs() -> None:
    rng = np.random.default_rng(0)
    counts = np.array([[0, 50, 40], [50, 0, 0], [40, 0, 0]])
    boot = rng.normal([1000, 1010, 1200], 20, size=(200, 3))
    assert next_pair_uncertainty(counts, boot) == (1, 2)  # never compared
    counts = np.array([[0, 50, 40], [50, 0, 30], [40, 30, 0]])
    # (0, 1): close and uncertain; (1, 2)/(0, 2): lopsided, so an extra vote there changes little
    assert next_pair_uncertainty(counts, boot) == (0, 1)
    wide = boot.copy()
    wide[:, 2] = rng.normal(1030, 200, size=200)  # model 2 very uncertain and close to the others
    assert next_pair_uncertainty(counts, wide) in {(0, 2), (1, 2)}
    only = np.zeros((3, 3), dtype=bool)
    only[0, 2] = True
    assert next_pair_uncertainty(counts, boot, eligible=only) == (0, 2)
    assert next_pair_uncertainty(counts, boot, eligible=np.zeros((3, 3), dtype=bool)) is None


def test_stats_package_imports_neither_django_nor_apps() -> None:
    pkg = Path(evalhub.stats.__file__).parent
    for path in pkg.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith("django"), f"{path.name} imports {name}"
                assert not name.startswith("evalhub.") or name.startswith("evalhub.stats"), (
                    f"{path.name}: {name}"
                )
