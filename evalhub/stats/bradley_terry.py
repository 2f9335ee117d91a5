"""Bradley-Terry ratings for pairwise votes, on the Elo scale, with fast batched bootstrap intervals.

Model: P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)), i.e. logit P = theta_i - theta_j with
R = anchor + scale / ln(base) * theta. Fitting is maximum likelihood. A tie counts as half a win for each side
(the weighted-likelihood convention of the public arena leaderboards); "both bad" votes count as ties or are
excluded, as the caller chooses.

Speed: votes are aggregated to unique (model_a, model_b, outcome) rows with counts; the bootstrap resamples those
counts multinomially (equivalent to resampling votes), and all rounds are fitted together by a batched, damped
Newton iteration warm-started from the full-data fit. The Hessian is only n_models x n_models per round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy import stats as sps
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from evalhub.stats._types import Estimate, FloatArray, IntArray, check_confidence, percentile_interval

A_WINS, B_WINS, TIE, BOTH_BAD = 0, 1, 2, 3
_OUTCOME_CODES: dict[str, int] = {
    "a": A_WINS,
    "model_a": A_WINS,
    "b": B_WINS,
    "model_b": B_WINS,
    "tie": TIE,
    "both_bad": BOTH_BAD,
    "bothbad": BOTH_BAD,
    "tie (bothbad)": BOTH_BAD,
}
BothBad = Literal["tie", "exclude"]
# Bound the per-chunk Hessian stack (rounds x K x K floats) so a big model count never blows memory.
_MAX_HESSIAN_CELLS = 8_000_000


@dataclass(frozen=True)
class Votes:
    """Pairwise votes aggregated to unique rows.

    Row u says: `count[u]` votes showed model `model_a[u]` on the left/first side against `model_b[u]` with
    outcome `outcome[u]` (A_WINS, B_WINS or TIE; "both bad" is already mapped to TIE or dropped). Build it with
    `Votes.from_arrays`. `n_excluded` counts the votes dropped as "both bad".
    """

    n_models: int
    model_a: IntArray
    model_b: IntArray
    outcome: npt.NDArray[np.int8]
    count: npt.NDArray[np.int64]
    n_excluded: int = 0

    @classmethod
    def from_arrays(
        cls,
        model_a: npt.ArrayLike,
        model_b: npt.ArrayLike,
        outcome: npt.ArrayLike,
        *,
        n_models: int | None = None,
        both_bad: BothBad = "tie",
    ) -> Votes:
        """Aggregates one row per vote into unique (model_a, model_b, outcome) rows with counts.

        `model_a`/`model_b` are model indices 0..n_models-1 (default n_models: largest index + 1). `outcome` is
        "a", "b", "tie", "both_bad" (aliases "model_a", "model_b", "tie (bothbad)") or the codes A_WINS=0,
        B_WINS=1, TIE=2, BOTH_BAD=3. `both_bad` = "tie" counts "both bad" as a tie, "exclude" drops it.

        Returns a Votes. Raises ValueError for unequal lengths, unknown outcomes, negative or out-of-range indices,
        or a model voted against itself.
        """
        a = np.asarray(model_a)
        b = np.asarray(model_b)
        codes = _outcome_codes(outcome)
        if not (a.shape == b.shape == codes.shape) or a.ndim != 1:
            raise ValueError(
                f"model_a, model_b and outcome must be 1-D of equal length: {a.shape}, {b.shape}, "
                f"{codes.shape}"
            )
        if a.size and not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
            raise ValueError("model_a and model_b must be integer model indices")
        a, b = a.astype(np.intp), b.astype(np.intp)
        k = int(n_models) if n_models is not None else (int(max(a.max(), b.max())) + 1 if a.size else 0)
        if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= k):
            raise ValueError(f"model indices must be in [0, {k})")
        if np.any(a == b):
            raise ValueError(f"{int(np.sum(a == b))} vote(s) compare a model with itself")
        if both_bad not in ("tie", "exclude"):
            raise ValueError("both_bad must be 'tie' or 'exclude'")
        bad = codes == BOTH_BAD
        n_excluded = 0
        if both_bad == "exclude":
            n_excluded = int(bad.sum())
            a, b, codes = a[~bad], b[~bad], codes[~bad]
        else:
            codes = np.where(bad, TIE, codes).astype(np.int8)
        key = (a.astype(np.int64) * k + b) * 3 + codes
        uniq, count = np.unique(key, return_counts=True)
        return cls(
            n_models=k,
            model_a=(uniq // 3 // max(k, 1)).astype(np.intp),
            model_b=(uniq // 3 % max(k, 1)).astype(np.intp),
            outcome=(uniq % 3).astype(np.int8),
            count=count.astype(np.int64),
            n_excluded=n_excluded,
        )

    @property
    def n_votes(self) -> int:
        """Returns the number of votes counted (after exclusions)."""
        return int(self.count.sum())


VotesLike = Votes | tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]


def _outcome_codes(outcome: npt.ArrayLike) -> npt.NDArray[np.int8]:
    arr = np.asarray(outcome)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > BOTH_BAD):
            raise ValueError("integer outcomes must be 0 (a), 1 (b), 2 (tie) or 3 (both bad)")
        return arr.astype(np.int8)
    names, inverse = np.unique(arr.astype(str), return_inverse=True)
    unknown = [n for n in names if n.lower() not in _OUTCOME_CODES]
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown[:5]}; use 'a', 'b', 'tie' or 'both_bad'")
    lookup = np.array([_OUTCOME_CODES[n.lower()] for n in names], dtype=np.int8)
    return lookup[inverse.reshape(arr.shape)]


def as_votes(votes: VotesLike, *, n_models: int | None = None, both_bad: BothBad = "tie") -> Votes:
    """Returns `votes` as a Votes: passed through, or built from a (model_a, model_b, outcome) tuple."""
    if isinstance(votes, Votes):
        return votes
    model_a, model_b, outcome = votes
    return Votes.from_arrays(model_a, model_b, outcome, n_models=n_models, both_bad=both_bad)


@dataclass(frozen=True)
class _Design:
    """Votes reshaped for fitting: observed unordered pairs (lo < hi) and maps from unique rows to pairs."""

    n_models: int
    lo: IntArray
    hi: IntArray
    credit: sparse.csr_matrix  # rows x pairs: wins credited to `lo` per vote of that row (1, 0.5 or 0)
    games: sparse.csr_matrix  # rows x pairs: 1 where the row belongs to the pair
    incidence: sparse.csr_matrix  # pairs x models: +1 at lo, -1 at hi
    incidence_abs: sparse.csr_matrix  # pairs x models: 1 at lo and hi

    @classmethod
    def build(cls, votes: Votes) -> _Design:
        k = votes.n_models
        a, b, o = votes.model_a, votes.model_b, votes.outcome
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pair_key, row_pair = np.unique(lo.astype(np.int64) * max(k, 1) + hi, return_inverse=True)
        p_lo, p_hi = (pair_key // max(k, 1)).astype(np.intp), (pair_key % max(k, 1)).astype(np.intp)
        a_credit = np.where(o == A_WINS, 1.0, np.where(o == TIE, 0.5, 0.0))
        lo_credit = np.where(a == lo, a_credit, 1.0 - a_credit)
        n_rows, n_pairs = a.size, pair_key.size
        rows = np.arange(n_rows)
        credit = sparse.csr_matrix((lo_credit, (rows, row_pair)), shape=(n_rows, n_pairs))
        games = sparse.csr_matrix((np.ones(n_rows), (rows, row_pair)), shape=(n_rows, n_pairs))
        prs = np.arange(n_pairs)
        incidence = sparse.csr_matrix(
            (np.r_[np.ones(n_pairs), -np.ones(n_pairs)], (np.r_[prs, prs], np.r_[p_lo, p_hi])),
            shape=(n_pairs, k),
        )
        incidence_abs = abs(incidence).tocsr()
        return cls(k, p_lo, p_hi, credit, games, incidence, incidence_abs)

    def pair_counts(self, row_counts: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Returns (wins of lo, games) per pair for each round of row counts (rounds x rows)."""
        rc = np.atleast_2d(row_counts)
        wins = np.asarray((self.credit.T @ rc.T).T)
        games = np.asarray((self.games.T @ rc.T).T)
        return wins, games


def _log_likelihood(
    theta: FloatArray, lo: IntArray, hi: IntArray, wins: FloatArray, games: FloatArray, reg: float
) -> FloatArray:
    d = theta[:, lo] - theta[:, hi]
    ll = (wins * log_expit(d) + (games - wins) * log_expit(-d)).sum(axis=1)
    return np.asarray(ll - 0.5 * reg * (theta * theta).sum(axis=1), dtype=np.float64)


def _newton(
    design: _Design,
    wins: FloatArray,
    games: FloatArray,
    theta0: FloatArray,
    *,
    reg: float,
    tol: float,
    max_iter: int,
) -> tuple[FloatArray, npt.NDArray[np.bool_], int]:
    """Maximises the (optionally L2-penalised) BT log-likelihood for every round at once.

    Newton steps use H = Laplacian(games * p * (1 - p)) + reg * I + c * 11^T: the 11^T term removes the
    shift-invariance of the ratings without changing the step (gradient and step stay sum-zero), and a tiny ridge
    keeps the matrix solvable when a resample leaves a model without games; neither changes the stationary point.
    Steps are halved until the penalised likelihood does not decrease, so every round ascends monotonically.

    Returns (theta rounds x models with mean zero, converged mask per round, iterations used).
    """
    lo, hi, k = design.lo, design.hi, design.n_models
    theta = theta0.copy()
    theta -= theta.mean(axis=1, keepdims=True)
    rounds = theta.shape[0]
    active = np.ones(rounds, dtype=bool)
    eye = np.eye(k)
    n_iter = 0
    inc_t = design.incidence.T.tocsr()
    inc_abs_t = design.incidence_abs.T.tocsr()
    for n_iter in range(1, max_iter + 1):
        act = np.nonzero(active)[0]
        if act.size == 0:
            n_iter -= 1
            break
        th, w, g_ = theta[act], wins[act], games[act]
        d = th[:, lo] - th[:, hi]
        p = expit(d)
        grad = np.asarray((inc_t @ (w - g_ * p).T).T) - reg * th
        h = g_ * p * (1.0 - p)
        hess = np.zeros((act.size, k, k))
        hess[:, lo, hi] = -h
        hess[:, hi, lo] = -h
        diag = np.asarray((inc_abs_t @ h.T).T)
        scale = np.maximum(diag.mean(axis=1), 1e-12)
        hess += eye * (diag + reg + 1e-10 * scale[:, None])[:, :, None]
        hess += (scale / k)[:, None, None]
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        step -= step.mean(axis=1, keepdims=True)
        ll0 = _log_likelihood(th, lo, hi, w, g_, reg)
        t = np.ones(act.size)
        for _ in range(40):
            cand = th + t[:, None] * step
            ll1 = _log_likelihood(cand, lo, hi, w, g_, reg)
            worse = ll1 < ll0 - 1e-12 * np.maximum(1.0, np.abs(ll0))
            if not worse.any():
                break
            t[worse] *= 0.5
        theta[act] = cand
        # Judge convergence on the full Newton step: a heavily damped step can be tiny far from the optimum.
        done = np.abs(step).max(axis=1) < tol
        active[act[done]] = False
    return theta, ~active, n_iter


def _chunks(rounds: int, k: int) -> list[slice]:
    size = max(1, _MAX_HESSIAN_CELLS // max(k * k, 1))
    return [slice(s, min(rounds, s + size)) for s in range(0, rounds, size)]


def _to_elo(
    theta: FloatArray, scale: float, base: float, anchor: int | None, anchor_rating: float
) -> FloatArray:
    ref = theta.mean(axis=-1, keepdims=True) if anchor is None else theta[..., anchor : anchor + 1]
    return anchor_rating + scale / math.log(base) * (theta - ref)


@dataclass(frozen=True)
class BTFit:
    """A Bradley-Terry fit.

    `ratings`: Elo-scale rating per model (mean = anchor_rating, or ratings[anchor] = anchor_rating).
    `theta`: natural-log strengths, mean zero. `n_battles`: votes involving each model (after exclusions).
    `log_likelihood`: of the votes at `theta` (ties as half wins). `converged`/`n_iter`: Newton diagnostics.
    """

    ratings: FloatArray
    theta: FloatArray
    n_battles: npt.NDArray[np.int64]
    log_likelihood: float
    converged: bool
    n_iter: int
    scale: float
    base: float
    anchor: int | None
    anchor_rating: float
    reg: float


def _n_battles(votes: Votes) -> npt.NDArray[np.int64]:
    k = votes.n_models
    return (
        np.bincount(votes.model_a, weights=votes.count, minlength=k)
        + np.bincount(votes.model_b, weights=votes.count, minlength=k)
    ).astype(np.int64)


def identifiable(votes: VotesLike) -> bool:
    """Returns True when finite maximum-likelihood ratings exist without regularisation.

    That holds when the "beat or tied" graph is strongly connected: every model can be reached from every other
    by a chain of wins (a model that never lost or never won has an infinite MLE rating).
    """
    v = as_votes(votes)
    if v.n_models <= 1:
        return v.n_models == 1
    design = _Design.build(v)
    wins, games = design.pair_counts(v.count.astype(np.float64))
    w_lo, w_hi = wins[0], games[0] - wins[0]
    src = np.r_[design.lo[w_lo > 0], design.hi[w_hi > 0]]
    dst = np.r_[design.hi[w_lo > 0], design.lo[w_hi > 0]]
    graph = sparse.csr_matrix((np.ones(src.size), (src, dst)), shape=(v.n_models, v.n_models))
    n_comp, _ = connected_components(graph, directed=True, connection="strong")
    return bool(n_comp == 1)


def bt_fit(
    votes: VotesLike,
    *,
    scale: float = 400.0,
    base: float = 10.0,
    anchor: int | None = None,
    anchor_rating: float = 1000.0,
    reg: float = 0.0,
    both_bad: BothBad = "tie",
    n_models: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> BTFit:
    """Maximum-likelihood Bradley-Terry ratings on the Elo scale.

    `votes` is a Votes or a (model_a, model_b, outcome) tuple (see `Votes.from_arrays`; `both_bad` and
    `n_models` apply to the tuple form). Ties count as half a win for each side. Ratings use
    P(i beats j) = 1 / (1 + base ** ((R_j - R_i) / scale)); with anchor=None their mean is `anchor_rating`,
    otherwise model `anchor` gets exactly `anchor_rating`. `reg` > 0 adds an L2 penalty reg / 2 * |theta|^2 on the
    natural-log strengths (a Gaussian prior), which keeps ratings finite for sparse or one-sided data.

    Returns a BTFit. Raises ValueError when reg = 0 and the MLE does not exist (see `identifiable`).
    """
    v = as_votes(votes, n_models=n_models, both_bad=both_bad)
    k = v.n_models
    if k < 2:
        raise ValueError("need at least two models")
    if anchor is not None and not 0 <= anchor < k:
        raise ValueError(f"anchor must be a model index in [0, {k})")
    if reg < 0:
        raise ValueError("reg must be >= 0")
    if reg == 0 and not identifiable(v):
        raise ValueError(
            "no finite maximum-likelihood ratings: some model has no votes, never won or never lost against the "
            "rest (the win graph is not strongly connected); collect more votes or pass reg > 0"
        )
    design = _Design.build(v)
    wins, games = design.pair_counts(v.count.astype(np.float64))
    theta, conv, n_iter = _newton(design, wins, games, np.zeros((1, k)), reg=reg, tol=tol, max_iter=max_iter)
    ll = float(_log_likelihood(theta, design.lo, design.hi, wins, games, 0.0)[0])
    return BTFit(
        ratings=_to_elo(theta[0], scale, base, anchor, anchor_rating),
        theta=theta[0],
        n_battles=_n_battles(v),
        log_likelihood=ll,
        converged=bool(conv[0]),
        n_iter=n_iter,
        scale=scale,
        base=base,
        anchor=anchor,
        anchor_rating=anchor_rating,
        reg=reg,
    )


def win_probability(
    ratings_i: float | npt.ArrayLike,
    ratings_j: float | npt.ArrayLike,
    *,
    point: tuple[float, float] | None = None,
    scale: float = 400.0,
    base: float = 10.0,
    confidence: float = 0.95,
) -> Estimate:
    """Probability that model i beats model j, with a bootstrap interval.

    `ratings_i`/`ratings_j` are Elo-scale ratings: scalars, or matched bootstrap samples (round r of each).
    `point` = (R_i, R_j) from the full-data fit gives the point value; without it the value is the median of the
    sampled probabilities. P = 1 / (1 + base ** ((R_j - R_i) / scale)), a tie counting half.

    Returns an Estimate (n = number of samples); scalar inputs give low = high = value.
    """
    confidence = check_confidence(confidence)
    ri = np.atleast_1d(np.asarray(ratings_i, dtype=np.float64))
    rj = np.atleast_1d(np.asarray(ratings_j, dtype=np.float64))
    if ri.shape != rj.shape:
        raise ValueError("ratings_i and ratings_j must have the same number of samples")
    probs = 1.0 / (1.0 + np.power(base, (rj - ri) / scale))
    if point is not None:
        value = float(1.0 / (1.0 + base ** ((point[1] - point[0]) / scale)))
    else:
        value = float(np.median(probs))
    low, high = percentile_interval(probs, confidence)
    return Estimate(value=value, low=float(low), high=float(high), n=int(probs.size), confidence=confidence)


def rating_difference(
    ratings_boot: npt.ArrayLike,
    i: int,
    j: int,
    *,
    point: tuple[float, float] | None = None,
    confidence: float = 0.95,
) -> Estimate:
    """Difference R_i - R_j with its percentile interval over bootstrap rounds (`ratings_boot`: rounds x models).

    Returns an Estimate; value is point[0] - point[1] when `point` is given, else the median sampled difference.
    """
    confidence = check_confidence(confidence)
    boot = np.asarray(ratings_boot, dtype=np.float64)
    diff = boot[:, i] - boot[:, j]
    value = float(point[0] - point[1]) if point is not None else float(np.median(diff))
    low, high = percentile_interval(diff, confidence)
    return Estimate(value=value, low=float(low), high=float(high), n=int(diff.size), confidence=confidence)


def pair_decided(ratings_boot: npt.ArrayLike, i: int, j: int, confidence: float = 0.95) -> bool:
    """Returns True when the bootstrap interval of R_i - R_j at `confidence` excludes zero (the pair is decided)."""
    est = rating_difference(ratings_boot, i, j, confidence=confidence)
    return bool(est.low > 0.0 or est.high < 0.0)


def ranks_with_ties(low: npt.ArrayLike, high: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Leaderboard ranks that tie where intervals overlap.

    rank_i = 1 + number of models whose lower bound is above model i's upper bound, so a model is only ranked
    below those that are better beyond doubt; several models can share a rank.

    Returns an int array of ranks (1 = best).
    """
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    return np.asarray(1 + (lo[None, :] > hi[:, None]).sum(axis=1), dtype=np.int64)


@dataclass(frozen=True)
class BTBootstrap:
    """Bradley-Terry fit with bootstrap intervals.

    `fit`: the full-data BTFit (its ratings are the point estimates). `samples`: rounds x models Elo ratings,
    one row per bootstrap round, anchored like the fit. `low`/`high`: percentile interval per model at
    `confidence`. `n_unconverged`: rounds whose Newton iteration did not converge (possible only with reg = 0
    when a resample leaves a model unbeaten or winless; their ratings are far out and widen the interval).
    """

    fit: BTFit
    samples: FloatArray
    low: FloatArray
    high: FloatArray
    confidence: float
    n_unconverged: int

    @property
    def ratings(self) -> FloatArray:
        """Returns the full-data point ratings."""
        return self.fit.ratings

    def win_probability(self, i: int, j: int) -> Estimate:
        """Returns P(model i beats model j) with its bootstrap interval."""
        return win_probability(
            self.samples[:, i],
            self.samples[:, j],
            point=(float(self.ratings[i]), float(self.ratings[j])),
            scale=self.fit.scale,
            base=self.fit.base,
            confidence=self.confidence,
        )

    def difference(self, i: int, j: int) -> Estimate:
        """Returns R_i - R_j with its bootstrap interval."""
        return rating_difference(
            self.samples,
            i,
            j,
            point=(float(self.ratings[i]), float(self.ratings[j])),
            confidence=self.confidence,
        )

    def decided(self, i: int, j: int) -> bool:
        """Returns True when the interval of R_i - R_j excludes zero."""
        return pair_decided(self.samples, i, j, self.confidence)

    def ranks(self) -> npt.NDArray[np.int64]:
        """Returns ranks with ties where intervals overlap (see `ranks_with_ties`)."""
        return ranks_with_ties(self.low, self.high)


def bt_bootstrap(
    votes: VotesLike,
    n_rounds: int = 1000,
    seed: int | None = 0,
    *,
    confidence: float = 0.95,
    scale: float = 400.0,
    base: float = 10.0,
    anchor: int | None = None,
    anchor_rating: float = 1000.0,
    reg: float = 0.0,
    both_bad: BothBad = "tie",
    n_models: int | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> BTBootstrap:
    """Bradley-Terry ratings with bootstrap percentile intervals per model.

    Each round resamples the votes with replacement, done as one multinomial draw over the unique
    (model_a, model_b, outcome) rows (same distribution as resampling individual votes), and refits by maximum
    likelihood. All rounds are fitted together by a batched Newton iteration warm-started from the full-data fit.
    Arguments as in `bt_fit`; `seed` makes the rounds reproducible.

    Returns a BTBootstrap (point ratings, samples, low/high per model).
    """
    confidence = check_confidence(confidence)
    if n_rounds < 1:
        raise ValueError("n_rounds must be >= 1")
    v = as_votes(votes, n_models=n_models, both_bad=both_bad)
    fit = bt_fit(
        v,
        scale=scale,
        base=base,
        anchor=anchor,
        anchor_rating=anchor_rating,
        reg=reg,
        tol=tol,
        max_iter=max_iter,
    )
    design = _Design.build(v)
    n = v.n_votes
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, v.count / n, size=n_rounds).astype(np.float64)
    thetas = np.empty((n_rounds, v.n_models))
    converged = np.empty(n_rounds, dtype=bool)
    for sl in _chunks(n_rounds, v.n_models):
        wins, games = design.pair_counts(counts[sl])
        start = np.broadcast_to(fit.theta, (wins.shape[0], v.n_models))
        thetas[sl], converged[sl], _ = _newton(
            design, wins, games, start, reg=reg, tol=tol, max_iter=max_iter
        )
    samples = _to_elo(thetas, scale, base, anchor, anchor_rating)
    low, high = percentile_interval(samples, confidence, axis=0)
    return BTBootstrap(
        fit=fit,
        samples=samples,
        low=np.asarray(low),
        high=np.asarray(high),
        confidence=confidence,
        n_unconverged=int((~converged).sum()),
    )


def battle_matrices(
    votes: VotesLike, *, n_models: int | None = None, both_bad: BothBad = "tie"
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Head-to-head tallies.

    Returns (wins, battles): wins[i, j] = votes where i beat j, ties adding 0.5 to both wins[i, j] and wins[j, i];
    battles[i, j] = battles[j, i] = votes between i and j (either side). Diagonals are zero.
    """
    v = as_votes(votes, n_models=n_models, both_bad=both_bad)
    k = v.n_models
    a, b, c = v.model_a, v.model_b, v.count.astype(np.float64)
    a_credit = np.where(v.outcome == A_WINS, 1.0, np.where(v.outcome == TIE, 0.5, 0.0))
    wins = np.zeros((k, k))
    np.add.at(wins, (a, b), c * a_credit)
    np.add.at(wins, (b, a), c * (1.0 - a_credit))
    battles = np.zeros((k, k), dtype=np.int64)
    np.add.at(battles, (a, b), v.count)
    return wins, battles + battles.T


def win_rate_matrix(
    votes: VotesLike, *, n_models: int | None = None, both_bad: BothBad = "tie"
) -> FloatArray:
    """Returns rate[i, j] = share of i-vs-j votes that i won (ties half); nan where they never met and on the diagonal."""
    wins, battles = battle_matrices(votes, n_models=n_models, both_bad=both_bad)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(battles > 0, wins / np.where(battles > 0, battles, 1), np.nan)


def predicted_win_matrix(ratings: npt.ArrayLike, *, scale: float = 400.0, base: float = 10.0) -> FloatArray:
    """Returns P[i, j] = model probability that i beats j from Elo-scale ratings (0.5 on the diagonal)."""
    r = np.asarray(ratings, dtype=np.float64)
    return 1.0 / (1.0 + np.power(base, (r[None, :] - r[:, None]) / scale))


@dataclass(frozen=True, slots=True)
class PositionBias:
    """Share of decisive votes won by the left (first-shown) side. `p_value`: two-sided exact binomial test of
    share = 0.5; `low`/`high`: its Clopper-Pearson interval; `n` = left_wins + right_wins."""

    share_left: float
    low: float
    high: float
    p_value: float
    n: int
    confidence: float = 0.95


def position_bias(left_wins: int, right_wins: int, confidence: float = 0.95) -> PositionBias:
    """Tests whether annotators favour the left side (`scipy.stats.binomtest`); ties should be left out.

    Returns a PositionBias; all nan when there are no decisive votes.
    """
    confidence = check_confidence(confidence)
    left, right = int(left_wins), int(right_wins)
    if left < 0 or right < 0:
        raise ValueError("win counts must be >= 0")
    n = left + right
    if n == 0:
        return PositionBias(math.nan, math.nan, math.nan, math.nan, 0, confidence)
    res = sps.binomtest(left, n, 0.5, alternative="two-sided")
    ci = res.proportion_ci(confidence_level=confidence, method="exact")
    return PositionBias(left / n, float(ci.low), float(ci.high), float(res.pvalue), n, confidence)


def next_pair_uncertainty(
    counts: npt.ArrayLike,
    ratings_boot: npt.ArrayLike,
    *,
    eligible: npt.ArrayLike | None = None,
    confidence: float = 0.95,
    scale: float = 400.0,
    base: float = 10.0,
) -> tuple[int, int] | None:
    """Chooses the next pair to show in an active campaign: where one more vote helps the ranking most.

    `counts`: models x models battle counts (e.g. from `battle_matrices`); `ratings_boot`: rounds x models
    bootstrap ratings; `eligible`: optional models x models bool mask of pairs that may be served (e.g. not yet
    decided, overlap not reached). Pairs never compared come first (the one whose two models have the fewest
    battles overall). Otherwise the score of pair (i, j) is the width of the bootstrap interval of R_i - R_j
    times 4 p (1 - p), p = P(i beats j) at the median difference, so uncertain differences between close models
    win over uncertain but lopsided ones.

    Returns (i, j) with i < j, or None when no pair is eligible.
    """
    confidence = check_confidence(confidence)
    c = np.asarray(counts)
    boot = np.asarray(ratings_boot, dtype=np.float64)
    k = c.shape[0]
    if c.shape != (k, k) or boot.ndim != 2 or boot.shape[1] != k:
        raise ValueError("counts must be models x models and ratings_boot rounds x models")
    mask = np.triu(np.ones((k, k), dtype=bool), 1)
    if eligible is not None:
        mask &= np.asarray(eligible, dtype=bool) | np.asarray(eligible, dtype=bool).T
    ii, jj = np.nonzero(mask)
    if ii.size == 0:
        return None
    sym = c + c.T if not np.array_equal(c, c.T) else c
    pair_counts = sym[ii, jj]
    unseen = pair_counts == 0
    if unseen.any():
        totals = sym.sum(axis=1)
        load = (totals[ii] + totals[jj])[unseen]
        pick = int(np.argmin(load))
        return int(ii[unseen][pick]), int(jj[unseen][pick])
    diff = boot[:, ii] - boot[:, jj]
    low, high = percentile_interval(diff, confidence, axis=0)
    p = 1.0 / (1.0 + np.power(base, -np.median(diff, axis=0) / scale))
    score = (high - low) * 4.0 * p * (1.0 - p)
    best = int(np.argmax(score))
    return int(ii[best]), int(jj[best])


def simulate_votes(
    true_ratings: Sequence[float] | npt.ArrayLike,
    n_votes: int,
    seed: int | None = 0,
    *,
    tie_rate: float = 0.0,
    scale: float = 400.0,
    base: float = 10.0,
) -> Votes:
    """Simulates votes from a Bradley-Terry model with known Elo-scale ratings (for tests and benchmarks).

    Each vote picks a uniformly random pair and random sides; with probability `tie_rate` it is a tie, otherwise
    the left side wins with the model probability. Note ties drawn this way are not BT-consistent, so use
    tie_rate = 0 when checking estimates against the truth.

    Returns a Votes.
    """
    r = np.asarray(true_ratings, dtype=np.float64)
    k = r.size
    rng = np.random.default_rng(seed)
    a = rng.integers(0, k, size=n_votes)
    b = (a + rng.integers(1, k, size=n_votes)) % k
    p_a = 1.0 / (1.0 + np.power(base, (r[b] - r[a]) / scale))
    u = rng.random(n_votes)
    outcome = np.where(u < p_a, A_WINS, B_WINS)
    if tie_rate > 0:
        outcome = np.where(rng.random(n_votes) < tie_rate, TIE, outcome)
    return Votes.from_arrays(a, b, outcome, n_models=k)


def votes_to_arrays(votes: Votes) -> tuple[IntArray, IntArray, npt.NDArray[np.int8]]:
    """Expands aggregated Votes back to one row per vote: returns (model_a, model_b, outcome codes)."""
    rep = votes.count
    return (np.repeat(votes.model_a, rep), np.repeat(votes.model_b, rep), np.repeat(votes.outcome, rep))
