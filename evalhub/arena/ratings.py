"""Leaderboard arithmetic on plain arrays (no Django): ratings, intervals, ranks, pairwise odds, matrices, bias.

Everything statistical comes from `evalhub.stats`; this module only decides which fit to run and packs the numbers
for pages and the API. Votes are (left index, right index, choice) with choice "a" (left better), "b", "tie" or
"both_bad", exactly as stored, so the position-bias test sees the real sides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from evalhub.stats import (
    A_WINS,
    B_WINS,
    BTBootstrap,
    Estimate,
    PositionBias,
    Votes,
    battle_matrices,
    bt_bootstrap,
    identifiable,
    position_bias,
    predicted_win_matrix,
)

DEFAULT_ROUNDS = 1000
SLICE_ROUNDS = 500
SCHEDULER_ROUNDS = 1000
SCHEDULER_KEPT_ROUNDS = 200  # stored with the campaign for active scheduling


@dataclass(frozen=True)
class PairStat:
    """Version i against version j (i < j): battles, P(i beats j) and R_i - R_j with intervals, decided or not."""

    i: int
    j: int
    battles: int
    observed_win_rate: float
    p_win: Estimate
    difference: Estimate
    decided: bool


@dataclass(frozen=True)
class Board:
    """A leaderboard over `n_models` contestants (indices 0..n-1).

    `ratings`/`low`/`high`: Elo-scale point ratings (mean 1000) with bootstrap percentile intervals; `ranks`: 1 = best,
    shared where intervals overlap; `reg`: the L2 penalty used (0 = plain maximum likelihood, which is used whenever
    it exists); `n_unconverged`: bootstrap rounds whose fit did not converge.
    """

    n_models: int
    n_votes: int
    n_ties: int
    n_both_bad: int
    n_excluded: int
    both_bad_as: str
    confidence: float
    n_rounds: int
    reg: float
    identifiable: bool
    n_unconverged: int
    ratings: list[float]
    low: list[float]
    high: list[float]
    ranks: list[int]
    n_battles: list[int]
    score: list[float]
    win_rate: list[list[float | None]]
    battles: list[list[int]]
    predicted: list[list[float]]
    pairs: list[PairStat]
    bias: PositionBias
    samples: npt.NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def empty(self) -> bool:
        return self.n_votes == 0

    def pair(self, i: int, j: int) -> PairStat | None:
        lo, hi = min(i, j), max(i, j)
        return next((p for p in self.pairs if p.i == lo and p.j == hi), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (nan becomes None)."""
        return {
            "n_models": self.n_models,
            "n_votes": self.n_votes,
            "n_ties": self.n_ties,
            "n_both_bad": self.n_both_bad,
            "n_excluded": self.n_excluded,
            "both_bad_as": self.both_bad_as,
            "confidence": self.confidence,
            "n_rounds": self.n_rounds,
            "reg": self.reg,
            "identifiable": self.identifiable,
            "n_unconverged": self.n_unconverged,
            "ratings": [_num(x) for x in self.ratings],
            "low": [_num(x) for x in self.low],
            "high": [_num(x) for x in self.high],
            "ranks": self.ranks,
            "n_battles": self.n_battles,
            "score": [_num(x) for x in self.score],
            "win_rate": self.win_rate,
            "battles": self.battles,
            "predicted": [[_num(x) for x in row] for row in self.predicted],
            "pairs": [
                {
                    "i": p.i, "j": p.j, "battles": p.battles, "observed_win_rate": _num(p.observed_win_rate),
                    "p_win": _estimate(p.p_win), "difference": _estimate(p.difference), "decided": p.decided,
                }
                for p in self.pairs
            ],
            "position_bias": {
                "share_left": _num(self.bias.share_left), "low": _num(self.bias.low), "high": _num(self.bias.high),
                "p_value": _num(self.bias.p_value), "n": self.bias.n, "confidence": self.bias.confidence,
            },
        }


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _estimate(e: Estimate) -> dict[str, Any]:
    return {"value": _num(e.value), "low": _num(e.low), "high": _num(e.high), "n": e.n, "confidence": e.confidence}


def to_votes(
    left: npt.ArrayLike, right: npt.ArrayLike, choice: npt.ArrayLike, n_models: int, *, both_bad_as: str = "tie",
    count: npt.ArrayLike | None = None,
) -> Votes:
    """Votes for the statistics from stored rows (optionally aggregated: `count` votes per row)."""
    left_a, right_a, choice_a = np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp), np.asarray(choice)
    if count is not None:
        reps = np.asarray(count, dtype=np.int64)
        left_a, right_a, choice_a = np.repeat(left_a, reps), np.repeat(right_a, reps), np.repeat(choice_a, reps)
    if choice_a.size == 0:
        choice_a = np.asarray([], dtype=np.int8)
    return Votes.from_arrays(left_a, right_a, choice_a, n_models=n_models, both_bad="exclude" if both_bad_as == "exclude" else "tie")


PROBE_ROUNDS = 100


def fit(
    votes: Votes, *, n_rounds: int, seed: int, confidence: float, reg_fallback: float, always_reg: bool = False,
) -> tuple[BTBootstrap, float, bool]:
    """Bootstrap BT fit: plain maximum likelihood when it exists, else the campaign's small ridge penalty.

    Plain maximum likelihood is also given up when resamples of the votes have none (a version that happens to win
    every resampled battle): such rounds do not converge, cost a hundred Newton steps each and would stretch the
    intervals without bound. A short probe of PROBE_ROUNDS rounds finds out. Returns (bootstrap, reg used,
    identifiable).
    """
    ident = identifiable(votes)
    small = max(float(reg_fallback), 1e-6)
    reg = small if (always_reg or not ident) else 0.0
    if reg == 0.0 and n_rounds > PROBE_ROUNDS:
        probe = bt_bootstrap(votes, n_rounds=PROBE_ROUNDS, seed=seed + 1, confidence=confidence, reg=0.0)
        if probe.n_unconverged:
            reg = small
    boot = bt_bootstrap(votes, n_rounds=n_rounds, seed=seed, confidence=confidence, reg=reg)
    return boot, reg, ident


def board(
    left: npt.ArrayLike,
    right: npt.ArrayLike,
    choice: npt.ArrayLike,
    n_models: int,
    *,
    count: npt.ArrayLike | None = None,
    both_bad_as: str = "tie",
    confidence: float = 0.95,
    n_rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    reg_fallback: float = 0.05,
    min_votes_to_decide: int = 0,
    keep_samples: bool = False,
) -> Board:
    """Everything the leaderboard shows, from one row per vote (or aggregated rows with `count`)."""
    left_a, right_a, choice_a = np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp), np.asarray(choice, dtype=str)
    reps = np.ones(left_a.size, dtype=np.int64) if count is None else np.asarray(count, dtype=np.int64)
    n_ties = int(reps[choice_a == "tie"].sum())
    n_both_bad = int(reps[choice_a == "both_bad"].sum())
    bias = position_bias(int(reps[choice_a == "a"].sum()), int(reps[choice_a == "b"].sum()), confidence=confidence)
    votes = to_votes(left_a, right_a, choice_a, n_models, both_bad_as=both_bad_as, count=reps)
    k = n_models
    nan_k = [math.nan] * k
    if votes.n_votes == 0 or k < 2:
        return Board(
            n_models=k, n_votes=0, n_ties=n_ties, n_both_bad=n_both_bad, n_excluded=votes.n_excluded,
            both_bad_as=both_bad_as, confidence=confidence, n_rounds=0, reg=0.0, identifiable=False, n_unconverged=0,
            ratings=nan_k, low=nan_k, high=nan_k, ranks=[1] * k, n_battles=[0] * k, score=nan_k,
            win_rate=[[None] * k for _ in range(k)], battles=[[0] * k for _ in range(k)],
            predicted=[[0.5] * k for _ in range(k)], pairs=[], bias=bias,
        )
    boot, reg, ident = fit(votes, n_rounds=n_rounds, seed=seed, confidence=confidence, reg_fallback=reg_fallback)
    wins, battles = battle_matrices(votes)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(battles > 0, wins / np.where(battles > 0, battles, 1), np.nan)
        score = wins.sum(axis=1) / np.where(battles.sum(axis=1) > 0, battles.sum(axis=1), np.nan)
    pairs: list[PairStat] = []
    for i in range(k):
        for j in range(i + 1, k):
            n_ij = int(battles[i, j])
            decided = boot.decided(i, j) and n_ij >= min_votes_to_decide and n_ij > 0
            pairs.append(PairStat(
                i=i, j=j, battles=n_ij, observed_win_rate=float(rate[i, j]),
                p_win=boot.win_probability(i, j), difference=boot.difference(i, j), decided=bool(decided),
            ))
    return Board(
        n_models=k, n_votes=votes.n_votes, n_ties=n_ties, n_both_bad=n_both_bad, n_excluded=votes.n_excluded,
        both_bad_as=both_bad_as, confidence=confidence, n_rounds=n_rounds, reg=reg, identifiable=ident,
        n_unconverged=boot.n_unconverged,
        ratings=[float(x) for x in boot.ratings], low=[float(x) for x in boot.low], high=[float(x) for x in boot.high],
        ranks=[int(x) for x in boot.ranks()], n_battles=[int(x) for x in boot.fit.n_battles],
        score=[float(x) for x in score],
        win_rate=[[None if math.isnan(x) else float(x) for x in row] for row in rate],
        battles=[[int(x) for x in row] for row in battles],
        predicted=[[float(x) for x in row] for row in predicted_win_matrix(boot.ratings)],
        pairs=pairs, bias=bias, samples=boot.samples if keep_samples else None,
    )


def look_index(battles: int, min_votes: int) -> int:
    """Which look at a pair this is: 0 below `min_votes` battles, then 1, 2, 3... each time the battles double."""
    m = max(1, int(min_votes))
    return 0 if battles < m else math.floor(math.log2(battles / m)) + 1


def spend_decisions(
    samples: npt.ArrayLike,
    battles: npt.ArrayLike,
    *,
    confidence: float,
    min_votes: int,
    looks: dict[str, int],
    decided: set[tuple[int, int]],
) -> tuple[set[tuple[int, int]], dict[str, int]]:
    """Which pairs are decided, for stopping: the interval rule with its error spread over repeated looks.

    Checking "the interval excludes zero" after every vote would, sooner or later, call two equal versions different
    (each look is another chance of a 5 % error). So a pair is looked at only when its battles reach min_votes, then
    each time they double (look j), and look j uses error (1 - confidence) / 2^j; the errors of all looks add up to
    at most 1 - confidence (Bonferroni). A decided pair stays decided. `looks` ("i-j" -> last look taken) and
    `decided` carry over between calls; returns the updated pair.
    """
    boot = np.asarray(samples, dtype=np.float64)
    b = np.asarray(battles)
    alpha = 1.0 - confidence
    decided, looks = set(decided), dict(looks)
    k = b.shape[0]
    for i in range(k):
        for j in range(i + 1, k):
            if (i, j) in decided:
                continue
            look = look_index(int(b[i, j]), min_votes)
            key = f"{i}-{j}"
            if look == 0 or look <= looks.get(key, 0):
                continue
            looks[key] = look
            diff = boot[:, i] - boot[:, j]
            tail = alpha / 2 ** look / 2
            low, high = np.quantile(diff, [tail, 1.0 - tail])
            if low > 0 or high < 0:
                decided.add((i, j))
    return decided, looks


def left_won(choice: str) -> bool | None:
    """True / False for a decisive vote (left / right better), None for tie or both bad."""
    return {"a": True, "b": False}.get(choice)


__all__ = ["A_WINS", "B_WINS", "Board", "PairStat", "board", "fit", "left_won", "to_votes"]
