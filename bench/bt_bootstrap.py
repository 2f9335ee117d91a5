"""Benchmark `bt_bootstrap`: Bradley-Terry fit + 1,000 bootstrap rounds on 100,000 votes among 20 versions.

Ours: `evalhub.stats.bt_bootstrap` (unique weighted rows, multinomial resampling, all rounds fitted together by a
batched Newton iteration warm-started from the full fit).

Baseline: the best public approach, as in FastChat's `compute_bootstrap_bt` (lm-sys/FastChat PR #3523), written
here from its description and run in the same process: votes compressed to unique (model_a, model_b, outcome)
rows with counts, one `scipy.optimize.minimize(method="L-BFGS-B", jac=True)` fit of the weighted BT negative
log-likelihood from zeros per round (gtol 1e-6, maxiter 100, as FastChat), on multinomially resampled counts,
single process. Both draw the same resamples (same seed, same unique-row order), so the interval bounds must agree
up to optimiser tolerance. `baseline_warm_s` also reports the baseline warm-started from the full fit, which is
not what the public code does but is the fairest variant of it.

ratio = baseline seconds / ours seconds (min of `REPEATS` interleaved runs each); parity = max |rating difference| of the point
ratings and of the CI bounds, required < 0.5 Elo.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from evalhub.stats import Votes, bt_bootstrap

N_MODELS = 20
N_VOTES = 100_000
N_ROUNDS = 1000
SEED = 42
TIE_RATE = 0.15
REPEATS = 3
SCALE, BASE, INIT = 400.0, 10.0, 1000.0


def _simulate() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    truth = rng.normal(0.0, 120.0, size=N_MODELS)
    a = rng.integers(0, N_MODELS, size=N_VOTES)
    b = (a + rng.integers(1, N_MODELS, size=N_VOTES)) % N_MODELS
    p_a = 1.0 / (1.0 + BASE ** ((truth[b] - truth[a]) / SCALE))
    outcome = np.where(rng.random(N_VOTES) < p_a, 0, 1)
    outcome = np.where(rng.random(N_VOTES) < TIE_RATE, 2, outcome)
    return a, b, outcome


def _ours(a: np.ndarray, b: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    votes = Votes.from_arrays(a, b, outcome, n_models=N_MODELS)
    boot = bt_bootstrap(votes, n_rounds=N_ROUNDS, seed=SEED)
    return boot.ratings, boot.low, boot.high


def _bt_loss_and_grad(
    ratings: np.ndarray, matchups: np.ndarray, outcomes: np.ndarray, weights: np.ndarray, alpha: float
) -> tuple[float, np.ndarray]:
    d = alpha * (ratings[matchups[:, 0]] - ratings[matchups[:, 1]])
    p = expit(d)
    loss = -float(((np.log(p) * outcomes + np.log(1.0 - p) * (1.0 - outcomes)) * weights).sum())
    row_grad = -alpha * (outcomes - p) * weights
    grad = np.zeros_like(ratings)
    np.add.at(grad, matchups, row_grad[:, None] * np.array([1.0, -1.0]))
    return loss, grad


def _lbfgs(matchups: np.ndarray, outcomes: np.ndarray, weights: np.ndarray, x0: np.ndarray) -> np.ndarray:
    res = minimize(
        _bt_loss_and_grad,
        x0,
        args=(matchups, outcomes, weights, math.log(BASE)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return np.asarray(res.x)


def _baseline(
    a: np.ndarray,
    b: np.ndarray,
    outcome: np.ndarray,
    *,
    warm: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    schedule = np.column_stack([a, b, outcome]).astype(np.int32)
    rows, counts = np.unique(schedule, axis=0, return_counts=True)
    matchups = rows[:, :2].astype(np.intp)
    outcomes = np.array([1.0, 0.0, 0.5])[rows[:, 2]]  # a wins, b wins, tie (half a win each way)
    weights = counts.astype(np.float64)
    full = _lbfgs(matchups, outcomes, weights, np.zeros(N_MODELS))
    rng = np.random.default_rng(SEED)
    boot_counts = rng.multinomial(N_VOTES, weights / weights.sum(), size=N_ROUNDS)
    boot_weights = boot_counts.astype(np.float64) / N_VOTES
    start = full if warm else np.zeros(N_MODELS)
    samples = np.array([_lbfgs(matchups, outcomes, w, start) for w in boot_weights])

    def to_elo(x: np.ndarray) -> np.ndarray:
        return INIT + SCALE * (x - x.mean(axis=-1, keepdims=True))

    elo = to_elo(samples)
    return to_elo(full), np.quantile(elo, 0.025, axis=0), np.quantile(elo, 0.975, axis=0)


def _timed_interleaved(fns: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, Any]]:
    """Runs each function REPEATS times, interleaved so load from other processes hits all alike; keeps the min."""
    best: dict[str, tuple[float, Any]] = {name: (math.inf, None) for name in fns}
    for _ in range(REPEATS):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t0
            if elapsed < best[name][0]:
                best[name] = (elapsed, out)
    return best


def run() -> dict[str, Any]:
    a, b, outcome = _simulate()
    timed = _timed_interleaved(
        {
            "ours": lambda: _ours(a, b, outcome),
            "baseline": lambda: _baseline(a, b, outcome),
            "warm": lambda: _baseline(a, b, outcome, warm=True),
        }
    )
    ours_s, (r_ours, lo_ours, hi_ours) = timed["ours"]
    base_s, (r_base, lo_base, hi_base) = timed["baseline"]
    warm_s, (r_warm, lo_warm, hi_warm) = timed["warm"]
    diff_ratings = float(np.max(np.abs(r_ours - r_base)))
    diff_ci = float(max(np.max(np.abs(lo_ours - lo_base)), np.max(np.abs(hi_ours - hi_base))))
    diff_warm = float(
        max(
            np.max(np.abs(lo_ours - lo_warm)),
            np.max(np.abs(hi_ours - hi_warm)),
            np.max(np.abs(r_ours - r_warm)),
        )
    )
    ratio = base_s / ours_s
    equal = diff_ratings < 0.5 and diff_ci < 0.5
    return {
        "ratio": ratio,
        "ours": ours_s,
        "baseline": base_s,
        "unit": "seconds for fit + 1000 bootstrap rounds",
        "baseline_warm_s": warm_s,
        "ratio_vs_warm_baseline": warm_s / ours_s,
        "max_abs_diff_ratings_elo": diff_ratings,
        "max_abs_diff_ci_elo": diff_ci,
        "max_abs_diff_vs_warm_baseline_elo": diff_warm,
        "ratings_equal_within_0_5_elo": equal,
        "outputs_equal": equal,
        "n_votes": N_VOTES,
        "n_models": N_MODELS,
        "n_rounds": N_ROUNDS,
        "tie_rate": TIE_RATE,
        "summary": (
            f"BT fit + {N_ROUNDS} bootstrap rounds, {N_VOTES} votes, {N_MODELS} models: ours {ours_s:.2f}s vs "
            f"L-BFGS per round {base_s:.2f}s (warm-started {warm_s:.2f}s); max diff ratings {diff_ratings:.4f}, "
            f"CI bounds {diff_ci:.4f} Elo"
        ),
    }
