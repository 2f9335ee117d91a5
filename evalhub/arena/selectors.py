"""Queries of the arena, always reached through the access chokepoint.

Two audiences, kept apart on purpose:
- `blind_*` functions build what annotators receive: a comparison's token, its prompt and the two texts as "a" and
  "b". They never touch contestants, runs, outputs' ids or model versions.
- everything else (leaderboard, annotator statistics, contestant names) is for leads; views and the API only call
  it after checking `Access.sees_model_identity`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from scipy import stats as sps

from evalhub.arena import ratings
from evalhub.arena.models import (
    CRITERION_CHOICES,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignStatus,
    Choice,
    Comparison,
    Contestant,
    Prompt,
    Vote,
    VoteOrigin,
)
from evalhub.arena.services import annotator_vote_rows, can_vote, decided_pairs
from evalhub.core.queries import count_of
from evalhub.projects.access import Access, AnyUser, scoped_get
from evalhub.projects.models import Project, Role
from evalhub.stats import Estimate, annotator_consensus_agreement

MAX_SLICE_VALUES = 12
MIN_UNITS_TO_FLAG = 10
FLAG_ALPHA = 0.05


def campaign_list(access: Access) -> QuerySet[Campaign]:
    qs = Campaign.objects.filter(project=access.project)
    if not access.is_lead:
        # Annotators see open campaigns they may vote in, plus closed ones they voted in (for their history).
        qs = qs.filter(Q(status="open") | Q(votes__annotator=access.user)).distinct()
    return qs.annotate(n_votes_total=Count("votes", filter=Q(votes__origin=VoteOrigin.ANNOTATOR), distinct=True))


def campaign_get(user: AnyUser, project_id: int | str, campaign_id: int | str, *, min_role: str = Role.ANNOTATOR) -> tuple[Access, Campaign]:
    try:
        cid = int(campaign_id)
    except (TypeError, ValueError):
        from django.http import Http404

        raise Http404("No such campaign") from None
    return scoped_get(user, Campaign.objects.all(), project_id=project_id, min_role=min_role, pk=cid)


def contestants(campaign: Campaign) -> list[Contestant]:
    """Lead-only: who is competing."""
    return list(campaign.contestants.select_related("model_version", "generation_run").order_by("index"))


# --------------------------------------------------------------------------------------------------------------------
# What annotators receive


def blind_comparison(assignment: Assignment) -> dict[str, Any]:
    """The comparison as an annotator sees it: token, prompt turns and attributes, texts "a" (left) and "b"."""
    comparison = (
        Comparison.objects.select_related("prompt__example", "left__output", "right__output", "campaign")
        .get(pk=assignment.comparison_id)
    )
    prompt = comparison.prompt
    return {
        "token": comparison.token,
        "prompt": {"turns": prompt.turns(), "attributes": dict(prompt.attributes or {})},
        "a": {"text": comparison.left.response_text},
        "b": {"text": comparison.right.response_text},
        "criteria": list(comparison.campaign.criteria),
        "expires_at": assignment.expires_at.isoformat() if assignment.expires_at else None,
    }


@dataclass(frozen=True)
class Progress:
    my_votes: int
    my_skips: int
    votes: int
    comparisons: int
    slots: int
    slots_open: int
    pairs_total: int
    pairs_decided: int

    @property
    def fraction(self) -> float:
        return 0.0 if self.slots == 0 else min(1.0, self.votes / self.slots)

    @property
    def percent(self) -> float:
        return round(100 * self.fraction, 1)


def progress(campaign: Campaign, user: AbstractBaseUser | None = None) -> Progress:
    """Counts safe for everyone: votes, comparisons, slots (comparisons x overlap) still to fill, decided pairs."""
    comps = Comparison.objects.filter(campaign=campaign).aggregate(n=Count("id"), taken=Count("id", filter=Q(n_taken__gt=0)))
    n = int(comps["n"] or 0)
    votes = Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR).count()
    k = campaign.contestants.count()
    decided = decided_pairs(campaign) if campaign.stop_when_decided else set()
    slots = n * campaign.overlap
    mine = skips = 0
    if user is not None:
        mine = Vote.objects.filter(campaign=campaign, annotator=user).count()
        skips = Assignment.objects.filter(campaign=campaign, annotator=user, status=AssignmentStatus.SKIPPED).count()
    return Progress(
        my_votes=mine, my_skips=skips, votes=votes, comparisons=n, slots=slots, slots_open=max(0, slots - votes),
        pairs_total=k * (k - 1) // 2, pairs_decided=len(decided),
    )


def may_vote(campaign: Campaign, user: AbstractBaseUser) -> bool:
    return campaign.is_open and can_vote(campaign, user)


@dataclass(frozen=True)
class VoteWork:
    """One open campaign this person may vote in (the project overview). Blind: counts only."""

    campaign: Campaign
    my_votes: int
    left: int  # comparisons this person could still judge: free slots, never theirs, pair not yet decided
    held: bool

    @property
    def percent(self) -> float:
        total = self.my_votes + self.left
        return 100.0 * self.my_votes / total if total else 100.0


def work_for(access: Access) -> list[VoteWork]:
    """Open campaigns this person may vote in and still has comparisons in, newest first; three queries in all."""
    user_id = access.user.pk
    listed = Campaign.annotators.through.objects.filter(campaign_id=OuterRef("pk"))
    campaigns = list(
        Campaign.objects.filter(project=access.project, status=CampaignStatus.OPEN)
        .filter(~Exists(listed) | Exists(listed.filter(user_id=user_id)))  # as services.can_vote
        .defer("state").annotate(
            decided=KeyTransform("decided", "state"),
            n_mine=count_of(Vote.objects.filter(campaign=OuterRef("pk"), annotator=user_id)),
            n_held=count_of(Assignment.objects.filter(campaign=OuterRef("pk"), annotator=user_id,
                                                      status=AssignmentStatus.OPEN)),
        ).order_by("-created_at", "-id")
    )
    if not campaigns:
        return []
    had = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=user_id)
    # Per pair, as the scheduler serves them (see services._choose_pair), so decided pairs can be left out.
    free = (
        Comparison.objects.filter(campaign__in=[c.pk for c in campaigns], n_taken__lt=F("campaign__overlap"))
        .filter(~Exists(had))
        .values_list("campaign_id", "pair_lo__index", "pair_hi__index").annotate(n=Count("pk")).order_by()
    )
    decided = {
        c.pk: {(int(i), int(j)) for i, j in (c.decided or [])} if c.stop_when_decided else set()  # type: ignore[attr-defined]
        for c in campaigns
    }
    left: Counter[int] = Counter()
    for campaign_id, lo, hi, n in free:
        if (lo, hi) not in decided[campaign_id]:
            left[campaign_id] += n
    out: list[VoteWork] = []
    for c in campaigns:
        n_left = left[c.pk] + c.n_held  # type: ignore[attr-defined]
        if n_left:
            out.append(VoteWork(campaign=c, my_votes=c.n_mine, left=n_left, held=bool(c.n_held)))  # type: ignore[attr-defined]
    return out


# --------------------------------------------------------------------------------------------------------------------
# Leaderboard (leads only)


@dataclass(frozen=True)
class SliceBoard:
    attribute: str
    value: str
    n_votes: int
    board: ratings.Board


@dataclass(frozen=True)
class Leaderboard:
    campaign: Campaign
    contestants: list[Contestant]
    board: ratings.Board
    decided_for_serving: set[tuple[int, int]]
    slice_attribute: str | None
    slice_attributes: list[str]
    slices: list[SliceBoard]
    external_agreement: Estimate | None
    n_import_votes: int

    def rows(self) -> list[dict[str, Any]]:
        """One row per contestant, best first."""
        b = self.board
        out = [
            {
                "index": c.index, "name": c.label, "contestant": c, "rating": b.ratings[c.index],
                "low": b.low[c.index], "high": b.high[c.index], "rank": b.ranks[c.index],
                "battles": b.n_battles[c.index], "score": b.score[c.index],
            }
            for c in self.contestants
        ]
        return sorted(out, key=lambda r: (-(r["rating"] if not math.isnan(r["rating"]) else -1e9), r["index"]))

    def pair_rows(self) -> list[dict[str, Any]]:
        """Every pair oriented so the better-rated contestant comes first."""
        names = {c.index: c.label for c in self.contestants}
        out: list[dict[str, Any]] = []
        for p in self.board.pairs:
            flip = not math.isnan(self.board.ratings[p.i]) and self.board.ratings[p.j] > self.board.ratings[p.i]
            x, y = (p.j, p.i) if flip else (p.i, p.j)
            pw, d = p.p_win, p.difference
            if flip:
                pw = Estimate(1 - pw.value, 1 - pw.high, 1 - pw.low, pw.n, pw.confidence)
                d = Estimate(-d.value, -d.high, -d.low, d.n, d.confidence)
            out.append({
                "x": names[x], "y": names[y], "x_index": x, "y_index": y, "battles": p.battles, "p_win": pw,
                "difference": d, "decided": p.decided,
                "served": (p.i, p.j) not in self.decided_for_serving,
                "observed": (1 - p.observed_win_rate) if flip else p.observed_win_rate,
            })
        rating = self.board.ratings

        def key(r: dict[str, Any]) -> tuple[float, float]:
            rx, ry = rating[r["x_index"]], rating[r["y_index"]]
            return (-rx if not math.isnan(rx) else 0.0, -ry if not math.isnan(ry) else 0.0)

        return sorted(out, key=key)


def _cache_key(campaign: Campaign, slice_attribute: str | None) -> str:
    last = Vote.objects.filter(campaign=campaign).aggregate(m=Max("id"), n=Count("id"))
    return (f"arena:lb:{campaign.pk}:{campaign.created_at.timestamp()}:{campaign.seed}:{last['n']}:{last['m']}:"
            f"{campaign.both_bad_as}:{campaign.confidence}:{campaign.min_votes_to_decide}:{slice_attribute or ''}")


def slice_attributes(campaign: Campaign) -> list[str]:
    names: set[str] = set()
    for attrs in Prompt.objects.filter(campaign=campaign).values_list("attributes", flat=True)[:5000]:
        names.update((attrs or {}).keys())
    return sorted(names)


def leaderboard(campaign: Campaign, *, slice_attribute: str | None = None, n_rounds: int = ratings.DEFAULT_ROUNDS) -> Leaderboard:
    """Ratings with intervals, pairwise odds, matrices and position bias; optionally the same per attribute value.

    Cached per process until the campaign's votes change (the bootstrap is the expensive part).
    """
    key = _cache_key(campaign, slice_attribute) + f":{n_rounds}"
    hit = cache.get(key)
    if hit is not None:
        return hit
    people = contestants(campaign)
    k = len(people)
    left, right, choice, count = annotator_vote_rows(campaign)
    common = {"both_bad_as": campaign.both_bad_as, "confidence": campaign.confidence, "reg_fallback": campaign.reg,
              "min_votes_to_decide": campaign.min_votes_to_decide}
    main = ratings.board(left, right, choice, k, count=count, n_rounds=n_rounds, seed=campaign.seed, **common)
    attrs = slice_attributes(campaign)
    slices: list[SliceBoard] = []
    if slice_attribute and slice_attribute in attrs:
        slices = _slices(campaign, slice_attribute, k, common)
    external, n_import = _external_agreement(campaign)
    result = Leaderboard(
        campaign=campaign, contestants=people, board=main,
        decided_for_serving=decided_pairs(campaign) if campaign.stop_when_decided else set(),
        slice_attribute=slice_attribute if slice_attribute in attrs else None, slice_attributes=attrs, slices=slices,
        external_agreement=external, n_import_votes=n_import,
    )
    cache.set(key, result, 600)
    return result


@dataclass(frozen=True)
class Leader:
    """Lead-only: the top of the newest campaign's leaderboard."""

    campaign: Campaign
    name: str
    rating: float
    low: float
    high: float
    votes: int
    contestants: int
    tied_with: list[str]  # versions sharing rank 1 (intervals overlap): the lead is not established yet


def current_leader(project: Project) -> Leader | None:
    """The leader of the newest campaign with annotator votes (open ones first), from the cached leaderboard."""
    votes = Vote.objects.filter(campaign=OuterRef("pk"), origin=VoteOrigin.ANNOTATOR)
    campaign = (
        Campaign.objects.filter(project=project).defer("state").annotate(n_votes=count_of(votes))
        .filter(n_votes__gt=0).order_by("-status", "-created_at", "-id").first()  # descending: "open" first
    )
    if campaign is None:
        return None
    board = leaderboard(campaign)
    rows = board.rows()
    if not rows or math.isnan(rows[0]["rating"]):
        return None
    top = rows[0]
    tied = [r["name"] for r in rows[1:] if r["rank"] == top["rank"]]
    return Leader(campaign=campaign, name=top["name"], rating=top["rating"], low=top["low"], high=top["high"],
                  votes=campaign.n_votes, contestants=len(rows), tied_with=tied)  # type: ignore[attr-defined]


def _slices(campaign: Campaign, attribute: str, k: int, common: dict[str, Any]) -> list[SliceBoard]:
    rows = list(
        Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR)
        .values_list("comparison__left__contestant__index", "comparison__right__contestant__index", "choice",
                     "comparison__prompt_id")
        .annotate(n=Count("id")).order_by()
    )
    prompt_ids = {r[3] for r in rows}
    value_of = {
        pk: (attrs or {}).get(attribute)
        for pk, attrs in Prompt.objects.filter(pk__in=prompt_ids).values_list("pk", "attributes")
    }
    groups: dict[str, list[tuple[int, int, str, int]]] = {}
    for lft, rgt, ch, pid, n in rows:
        value = value_of.get(pid)
        groups.setdefault("(none)" if value is None else str(value), []).append((lft, rgt, ch, n))
    ordered = sorted(groups.items(), key=lambda kv: -sum(r[3] for r in kv[1]))
    if len(ordered) > MAX_SLICE_VALUES:
        rest = [r for _, rs in ordered[MAX_SLICE_VALUES - 1:] for r in rs]
        ordered = ordered[:MAX_SLICE_VALUES - 1] + [("(other values)", rest)]
    out: list[SliceBoard] = []
    for value, rs in ordered:
        lft, rgt, ch, n = zip(*rs)
        b = ratings.board(lft, rgt, ch, k, count=n, n_rounds=ratings.SLICE_ROUNDS, seed=campaign.seed, **common)
        out.append(SliceBoard(attribute=attribute, value=value, n_votes=int(sum(n)), board=b))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Per rubric criterion (leads only)

CRITERION_ROUNDS = ratings.SLICE_ROUNDS


@dataclass(frozen=True)
class CriterionVersion:
    """One contestant's record on one criterion. `win_rate` counts a tie as half a win, like the overall win share."""

    index: int
    name: str
    rating: float
    low: float
    high: float
    rank: int
    wins: int
    losses: int
    ties: int

    @property
    def n(self) -> int:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        return None if self.n == 0 else (self.wins + 0.5 * self.ties) / self.n


@dataclass(frozen=True)
class CriterionBoard:
    criterion: str
    n_votes: int
    board: ratings.Board
    versions: list[CriterionVersion]  # best first

    @property
    def empty(self) -> bool:
        return self.n_votes == 0


def criterion_vote_rows(campaign: Campaign) -> dict[str, list[tuple[int, int, str, int]]]:
    """Annotator votes per rubric criterion, aggregated to (left index, right index, preference, count) rows.

    A preference is stored relative to the comparison's displayed sides ("a" = its left candidate), exactly like the
    overall choice, so the rows go to the same fit with the same left/right meaning. Votes that left a criterion
    blank do not count for it.
    """
    wanted = set(campaign.criteria or [])
    allowed = {str(c) for c in CRITERION_CHOICES}
    counts: Counter[tuple[str, int, int, str]] = Counter()
    for lft, rgt, prefs in (
        Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR)
        .values_list("comparison__left__contestant__index", "comparison__right__contestant__index", "criteria")
        .order_by().iterator(chunk_size=5000)
    ):
        for name, pref in (prefs or {}).items():
            if name in wanted and pref in allowed:
                counts[(name, int(lft), int(rgt), str(pref))] += 1
    out: dict[str, list[tuple[int, int, str, int]]] = {name: [] for name in campaign.criteria or []}
    for (name, lft, rgt, pref), n in sorted(counts.items()):
        out[name].append((lft, rgt, pref, n))
    return out


def _tally(rows: list[tuple[int, int, str, int]], k: int) -> tuple[list[int], list[int], list[int]]:
    wins, losses, ties = [0] * k, [0] * k, [0] * k
    for lft, rgt, pref, n in rows:
        if pref == Choice.TIE:
            ties[lft] += n
            ties[rgt] += n
        else:
            winner, loser = (lft, rgt) if pref == Choice.A else (rgt, lft)
            wins[winner] += n
            losses[loser] += n
    return wins, losses, ties


def criteria_leaderboard(campaign: Campaign, *, n_rounds: int = CRITERION_ROUNDS) -> list[CriterionBoard]:
    """For each rubric criterion, the leaderboard fit (`ratings.board`: Bradley-Terry on the Elo scale, ties half a
    win, bootstrap intervals at the campaign's confidence) on the votes that judged it, with W/L/T per contestant.

    Cached per process until the campaign's votes change, like `leaderboard`.
    """
    names = list(campaign.criteria or [])
    key = _cache_key(campaign, None) + f":criteria:{n_rounds}"
    hit = cache.get(key)
    if hit is not None:
        return hit
    people = contestants(campaign)
    k = len(people)
    common = {"both_bad_as": campaign.both_bad_as, "confidence": campaign.confidence, "reg_fallback": campaign.reg,
              "min_votes_to_decide": campaign.min_votes_to_decide}
    by_name = criterion_vote_rows(campaign)
    out: list[CriterionBoard] = []
    for name in names:
        rows = by_name[name]
        lft, rgt, pref, n = (list(x) for x in zip(*rows)) if rows else ([], [], [], [])
        b = ratings.board(lft, rgt, pref, k, count=n if rows else None, n_rounds=n_rounds, seed=campaign.seed, **common)
        wins, losses, ties = _tally(rows, k)
        versions = [
            CriterionVersion(index=c.index, name=c.label, rating=b.ratings[c.index], low=b.low[c.index],
                             high=b.high[c.index], rank=b.ranks[c.index], wins=wins[c.index],
                             losses=losses[c.index], ties=ties[c.index])
            for c in people
        ]
        versions.sort(key=lambda v: (-(v.rating if not math.isnan(v.rating) else -1e9), v.index))
        out.append(CriterionBoard(criterion=name, n_votes=sum(n), board=b, versions=versions))
    cache.set(key, out, 600)
    return out


def _external_agreement(campaign: Campaign) -> tuple[Estimate | None, int]:
    """Imported campaigns: how often annotators' decisive votes pick the side the file calls chosen (Wilson CI)."""
    n_import = Vote.objects.filter(campaign=campaign, origin=VoteOrigin.IMPORT).count()
    if not n_import:
        return None, 0
    imported = dict(
        Vote.objects.filter(campaign=campaign, origin=VoteOrigin.IMPORT).values_list("comparison_id", "choice")
    )
    agree = total = 0
    for comparison_id, choice in Vote.objects.filter(
        campaign=campaign, origin=VoteOrigin.ANNOTATOR, choice__in=[Choice.A, Choice.B]
    ).values_list("comparison_id", "choice"):
        label = imported.get(comparison_id)
        if label is None:
            continue
        total += 1
        agree += int(choice == label)
    if total == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, campaign.confidence), n_import
    ci = sps.binomtest(agree, total).proportion_ci(confidence_level=campaign.confidence, method="wilson")
    return Estimate(agree / total, float(ci.low), float(ci.high), total, campaign.confidence), n_import


# --------------------------------------------------------------------------------------------------------------------
# Vote hygiene (leads only)


@dataclass(frozen=True)
class AnnotatorStats:
    user_id: int
    username: str
    votes: int
    skips: int
    ties: int
    both_bad: int
    left_share: float
    left_p_value: float
    median_seconds: float
    shared_units: int
    agreement: float
    against_units: int
    against: int
    against_share: float
    against_p_value: float
    flagged: bool
    reasons: list[str]


def _absolute(choice: str, left_is_lo: bool) -> str:
    """A vote in terms of the pair (lo / hi contestant), so votes with different layouts can be compared."""
    if choice in (Choice.TIE, Choice.BOTH_BAD):
        return choice
    left_won = choice == Choice.A
    return "lo" if left_won == left_is_lo else "hi"


def annotator_stats(campaign: Campaign) -> list[AnnotatorStats]:
    """Per annotator: counts, left-side share, time, agreement with the consensus of the others, and a flag for
    those who consistently vote against it (significantly more than half of their decisive votes go against a
    decisive consensus: one-sided exact binomial test at 5 %, on at least 10 such comparisons)."""
    rows = list(
        Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR, annotator__isnull=False)
        .values_list("annotator_id", "comparison_id", "choice", "seconds_spent", "comparison__left__contestant_id",
                     "comparison__pair_lo_id")
    )
    if not rows:
        return []
    users = {u.pk: u.get_username() for u in get_user_model().objects.filter(pk__in={r[0] for r in rows})}
    skips = dict(
        Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.SKIPPED)
        .values_list("annotator_id").annotate(n=Count("id")).order_by()
    )
    raters = sorted(users)
    units = sorted({r[1] for r in rows})
    r_index = {u: i for i, u in enumerate(raters)}
    u_index = {c: i for i, c in enumerate(units)}
    matrix = np.full((len(raters), len(units)), None, dtype=object)
    for uid, cid, choice, _secs, left_c, lo_c in rows:
        matrix[r_index[uid], u_index[cid]] = _absolute(choice, left_c == lo_c)
    consensus = annotator_consensus_agreement(matrix.tolist(), level="nominal") if len(units) else []
    out: list[AnnotatorStats] = []
    for uid in raters:
        mine = [r for r in rows if r[0] == uid]
        r = r_index[uid]
        left = sum(1 for x in mine if x[2] == Choice.A)
        right = sum(1 for x in mine if x[2] == Choice.B)
        test = sps.binomtest(left, left + right) if left + right else None
        # Against the decisive consensus of the others.
        against = units_n = 0
        for c in range(len(units)):
            own = matrix[r, c]
            if own not in ("lo", "hi"):
                continue
            others = [matrix[o, c] for o in range(len(raters)) if o != r and matrix[o, c] is not None]
            lo_n, hi_n = others.count("lo"), others.count("hi")
            if lo_n == hi_n:
                continue
            units_n += 1
            against += int(own != ("lo" if lo_n > hi_n else "hi"))
        p_against = float(sps.binomtest(against, units_n, 0.5, alternative="greater").pvalue) if units_n else math.nan
        reasons: list[str] = []
        if units_n >= MIN_UNITS_TO_FLAG and p_against < FLAG_ALPHA:
            reasons.append(f"voted against the others' consensus on {against} of {units_n} comparisons")
        agreement = consensus[r] if consensus else None
        out.append(AnnotatorStats(
            user_id=uid, username=users[uid], votes=len(mine), skips=int(skips.get(uid, 0)),
            ties=sum(1 for x in mine if x[2] == Choice.TIE), both_bad=sum(1 for x in mine if x[2] == Choice.BOTH_BAD),
            left_share=left / (left + right) if left + right else math.nan,
            left_p_value=float(test.pvalue) if test else math.nan,
            median_seconds=float(np.median([x[3] for x in mine])) if mine else math.nan,
            shared_units=agreement.n_units if agreement else 0,
            agreement=agreement.agreement if agreement else math.nan,
            against_units=units_n, against=against, against_share=against / units_n if units_n else math.nan,
            against_p_value=p_against, flagged=bool(reasons), reasons=reasons,
        ))
    return sorted(out, key=lambda s: (not s.flagged, -s.votes, s.username))


# --------------------------------------------------------------------------------------------------------------------
# Preference pairs for training data (the feedback stage's DPO export)


def preference_pairs(
    campaigns: QuerySet[Campaign] | list[Campaign], *, origins: tuple[str, ...] = (VoteOrigin.ANNOTATOR, VoteOrigin.IMPORT),
    chunk_size: int = 5000,
) -> Iterator[dict[str, Any]]:
    """Decisive votes as (prompt, chosen, rejected): the winner's text is chosen, the loser's rejected.

    Ties and "both bad" are not preferences and are left out. Streams from the database without model instances.
    Each row: vote_id, campaign_id, comparison token, origin, annotator_id, prompt_id, example_id, prompt_text,
    prompt_messages, chosen, rejected, chosen_contestant, rejected_contestant (contestant ids; identity stays in
    the database for lineage).
    """
    qs = (
        Vote.objects.filter(campaign__in=campaigns, origin__in=origins, choice__in=[Choice.A, Choice.B])
        .order_by("id")
        .values_list(
            "id", "campaign_id", "comparison__token", "origin", "annotator_id", "choice",
            "comparison__prompt_id", "comparison__prompt__example_id", "comparison__prompt__text",
            "comparison__prompt__messages", "comparison__prompt__example__prompt",
            "comparison__prompt__example__messages",
            "comparison__left__contestant_id", "comparison__left__text", "comparison__left__output__text",
            "comparison__right__contestant_id", "comparison__right__text", "comparison__right__output__text",
        )
    )
    for (vid, cid, token, origin, annotator_id, choice, prompt_id, example_id, p_text, p_messages, ex_prompt,
         ex_messages, l_c, l_text, l_out, r_c, r_text, r_out) in qs.iterator(chunk_size=chunk_size):
        if example_id is not None:
            p_text, p_messages = ex_prompt, _prompt_turns(ex_messages) if ex_messages else None
        left_text = l_out if l_out is not None else l_text
        right_text = r_out if r_out is not None else r_text
        winner_left = choice == Choice.A
        yield {
            "vote_id": vid, "campaign_id": cid, "comparison": token, "origin": origin, "annotator_id": annotator_id,
            "prompt_id": prompt_id, "example_id": example_id,
            "prompt_text": p_text, "prompt_messages": p_messages,
            "chosen": left_text if winner_left else right_text, "rejected": right_text if winner_left else left_text,
            "chosen_contestant": l_c if winner_left else r_c, "rejected_contestant": r_c if winner_left else l_c,
        }


def _prompt_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An example's chat messages without its reference answer (a trailing assistant turn)."""
    msgs = list(messages)
    return msgs[:-1] if msgs and msgs[-1].get("role") == "assistant" else msgs


def project_campaigns(project: Project) -> QuerySet[Campaign]:
    return Campaign.objects.filter(project=project)
