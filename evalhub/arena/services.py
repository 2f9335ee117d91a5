"""Every state change of the arena: campaigns, imports, serving comparisons, skips and votes.

Serving rules (see `comparison_next`):
- an annotator holds at most one comparison at a time (a partial unique constraint), and gets it back on return;
- a comparison never has more than `overlap` votes plus live assignments: a conditional UPDATE of its `n_taken`
  counter is the guarantee on every database; on PostgreSQL, SELECT ... FOR UPDATE SKIP LOCKED makes concurrent
  requests take different rows instead of queueing on the same one;
- no annotator is ever served the same comparison (same prompt, same two contestants) twice: a unique constraint;
- pairs of contestants whose rating difference is decided stop being served when the campaign asks for it;
- a comparison left longer than `claim_minutes` is released for others (the annotator may still vote on it while
  a slot is free).

Vote rules (see `vote_submit`): the same vote sent twice is stored once (the second call returns the first vote);
a different second vote, a vote on a comparison not served to this annotator, on a skipped one or in a closed
campaign is refused with an `ArenaRefusal` whose `code` and `http_status` the API passes on.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone

from evalhub.arena import ratings
from evalhub.arena.models import (
    CRITERION_CHOICES,
    Assignment,
    AssignmentStatus,
    BothBadAs,
    Campaign,
    CampaignKind,
    CampaignStatus,
    Candidate,
    Choice,
    Comparison,
    Contestant,
    Prompt,
    Scheduling,
    Vote,
    VoteOrigin,
)
from evalhub.arena.preferences import Limits, PreferenceRecord, parse_preferences
from evalhub.datasets.models import DatasetVersion
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.projects.models import Membership, Project

BATCH_SIZE = 2000
MAX_COMPARISONS = 500_000
MAX_REASON_CHARS = 2000
MAX_CRITERIA = 12
TOKEN_BYTES = 12


class ArenaRefusal(Exception):
    """A request the arena will not carry out, with a message for the person and a machine-readable code."""

    def __init__(self, code: str, message: str, http_status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def _token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


# --------------------------------------------------------------------------------------------------------------------
# Campaign options


@dataclass(frozen=True)
class CampaignOptions:
    name: str
    instructions: str = ""
    scheduling: str = Scheduling.UNIFORM
    overlap: int = 1
    stop_when_decided: bool = True
    confidence: float = 0.95
    min_votes_to_decide: int = 20
    criteria: tuple[str, ...] = ()
    both_bad_as: str = BothBadAs.TIE
    claim_minutes: int = 30
    seed: int | None = None


def _clean_options(o: CampaignOptions) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = (o.name or "").strip()
    if not name:
        errors["name"] = "Give the campaign a name."
    elif len(name) > 200:
        errors["name"] = "A name may be at most 200 characters long."
    if o.scheduling not in Scheduling.values:
        errors["scheduling"] = f"Choose one of {', '.join(Scheduling.values)}."
    if not 1 <= int(o.overlap) <= 50:
        errors["overlap"] = "Overlap (votes per comparison) must be between 1 and 50."
    if not 0.5 < float(o.confidence) < 1.0:
        errors["confidence"] = "Confidence must be between 0.5 and 1 (e.g. 0.95)."
    if not 0 <= int(o.min_votes_to_decide) <= 100_000:
        errors["min_votes_to_decide"] = "Must be between 0 and 100,000."
    if o.both_bad_as not in BothBadAs.values:
        errors["both_bad_as"] = f"Choose one of {', '.join(BothBadAs.values)}."
    if not 1 <= int(o.claim_minutes) <= 24 * 60:
        errors["claim_minutes"] = "Must be between 1 minute and one day."
    criteria: list[str] = []
    for c in o.criteria:
        c = str(c).strip()
        if not c:
            continue
        if len(c) > 60 or "\x00" in c:
            errors["criteria"] = "Each criterion is a short name (at most 60 characters)."
        elif c not in criteria:
            criteria.append(c)
    if len(criteria) > MAX_CRITERIA:
        errors["criteria"] = f"At most {MAX_CRITERIA} criteria."
    if "\x00" in o.instructions:
        errors["instructions"] = "Contains a NUL character."
    if errors:
        raise ValidationError(errors)
    return {
        "name": name, "instructions": o.instructions.strip(), "scheduling": o.scheduling, "overlap": int(o.overlap),
        "stop_when_decided": bool(o.stop_when_decided), "confidence": float(o.confidence),
        "min_votes_to_decide": int(o.min_votes_to_decide), "criteria": criteria, "both_bad_as": o.both_bad_as,
        "claim_minutes": int(o.claim_minutes),
        "seed": int(o.seed) if o.seed is not None else secrets.randbelow(2**31),
    }


def _set_annotators(campaign: Campaign, project: Project, annotators: Iterable[AbstractBaseUser] | None) -> None:
    users = list(annotators or [])
    if not users:
        return
    members = set(Membership.objects.filter(project=project, user__in=users).values_list("user_id", flat=True))
    outside = [u for u in users if u.pk not in members]
    if outside:
        raise ValidationError({"annotators": f"{', '.join(str(u) for u in outside)} is not a member of this project."})
    campaign.annotators.set(users)


# --------------------------------------------------------------------------------------------------------------------
# Creating campaigns


def _comparisons_for(
    campaign: Campaign, prompts_candidates: list[tuple[Prompt, dict[int, Candidate]]], contestants: list[Contestant],
    rng: random.Random,
) -> list[Comparison]:
    """One comparison per prompt and pair of contestants that both answered it; sides drawn at random."""
    out: list[Comparison] = []
    for prompt, by_index in prompts_candidates:
        for a in range(len(contestants)):
            for b in range(a + 1, len(contestants)):
                ca, cb = by_index.get(a), by_index.get(b)
                if ca is None or cb is None:
                    continue
                left, right = (ca, cb) if rng.random() < 0.5 else (cb, ca)
                out.append(Comparison(
                    campaign=campaign, prompt=prompt, token=_token(), left=left, right=right,
                    pair_lo=contestants[a], pair_hi=contestants[b], order_key=rng.randrange(2**31),
                ))
    return out


def campaign_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    runs: Sequence[GenerationRun],
    options: CampaignOptions,
    max_prompts: int | None = None,
    annotators: Iterable[AbstractBaseUser] | None = None,
) -> Campaign:
    """A campaign comparing the outputs of two or more generation runs over the same eval version.

    Prompts are the examples answered (sample 0, without a generation error) by at least two of the runs; each pair
    of runs that both answered an example gets one comparison for it. `max_prompts` draws that many examples at
    random (seeded). Refusals raise ValidationError naming the field.
    """
    values = _clean_options(options)
    runs = list(runs)
    if len(runs) < 2:
        raise ValidationError({"runs": "Pick at least two generation runs to compare."})
    if len({r.pk for r in runs}) != len(runs):
        raise ValidationError({"runs": "The same run was picked twice."})
    if any(r.project_id != project.pk for r in runs):
        raise ValidationError({"runs": "Every run must belong to this project."})
    eval_ids = {r.eval_version_id for r in runs}
    if len(eval_ids) != 1:
        raise ValidationError({"runs": "All runs must be over the same eval dataset version, so the prompts match."})
    versions = [r.model_version_id for r in runs]
    if len(set(versions)) != len(versions):
        raise ValidationError({"runs": "Two runs of the same model version were picked; pick one run per version."})
    unfinished = [r for r in runs if r.status != RunStatus.SUCCEEDED]
    if unfinished:
        raise ValidationError({"runs": f"Generation run #{unfinished[0].pk} has not finished successfully "
                                       f"(it is {unfinished[0].status})."})
    if max_prompts is not None and max_prompts < 1:
        raise ValidationError({"max_prompts": "Must be at least 1."})
    eval_version = DatasetVersion.objects.get(pk=eval_ids.pop())
    run_index = {r.pk: i for i, r in enumerate(runs)}
    outputs = (
        Output.objects.filter(run__in=runs, sample_index=0, error="")
        .order_by("example_id", "run_id").values_list("pk", "run_id", "example_id")
    )
    by_example: dict[int, dict[int, int]] = {}
    for out_id, run_id, example_id in outputs.iterator(chunk_size=BATCH_SIZE):
        by_example.setdefault(example_id, {})[run_index[run_id]] = out_id
    example_ids = sorted(e for e, outs in by_example.items() if len(outs) >= 2)
    if not example_ids:
        raise ValidationError({"runs": "These runs have no eval example answered by two of them; nothing to compare."})
    rng = random.Random(values["seed"])
    if max_prompts is not None and len(example_ids) > max_prompts:
        example_ids = sorted(rng.sample(example_ids, max_prompts))
    n_pairs = sum(len(by_example[e]) * (len(by_example[e]) - 1) // 2 for e in example_ids)
    if n_pairs > MAX_COMPARISONS:
        raise ValidationError({"max_prompts": f"This would create {n_pairs:,} comparisons (limit {MAX_COMPARISONS:,}); "
                                              "set a maximum number of prompts."})
    from evalhub.datasets.models import Example

    attributes = dict(Example.objects.filter(pk__in=example_ids).values_list("pk", "attributes"))
    with transaction.atomic():
        campaign = Campaign.objects.create(
            project=project, kind=CampaignKind.GENERATED, eval_version=eval_version, created_by=user, **values
        )
        contestants = Contestant.objects.bulk_create([
            Contestant(campaign=campaign, index=i, model_version_id=r.model_version_id, generation_run=r)
            for i, r in enumerate(runs)
        ])
        for start in range(0, len(example_ids), BATCH_SIZE):
            chunk = example_ids[start:start + BATCH_SIZE]
            prompts = Prompt.objects.bulk_create([
                Prompt(campaign=campaign, example_id=e, attributes=_flat_attributes(attributes.get(e) or {}))
                for e in chunk
            ])
            candidates = Candidate.objects.bulk_create([
                Candidate(prompt=p, contestant=contestants[i], output_id=out_id)
                for p, e in zip(prompts, chunk) for i, out_id in sorted(by_example[e].items())
            ])
            grouped: dict[int, dict[int, Candidate]] = {}
            for c in candidates:
                grouped.setdefault(c.prompt_id, {})[c.contestant.index] = c
            Comparison.objects.bulk_create(
                _comparisons_for(campaign, [(p, grouped[p.pk]) for p in prompts], contestants, rng), batch_size=BATCH_SIZE
            )
        _set_annotators(campaign, project, annotators)
    return campaign


def _flat_attributes(attrs: dict[str, Any]) -> dict[str, str]:
    """Scalar attributes as strings (the slicing keys); nested values are not slices."""
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v))
            for k, v in attrs.items() if v is not None and not isinstance(v, (dict, list))}


def import_limits() -> Limits:
    return Limits(max_records=int(getattr(settings, "ARENA_IMPORT_MAX_RECORDS", 200_000)))


def campaign_import(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    path: Path,
    display_name: str,
    options: CampaignOptions,
    chosen_name: str = "chosen",
    rejected_name: str = "rejected",
    record_labels: bool = True,
    open_for_annotators: bool = False,
    annotators: Iterable[AbstractBaseUser] | None = None,
) -> Campaign:
    """External preference pairs as a campaign of two pseudo sources ("chosen" and "rejected" by default).

    Each record becomes one prompt, two candidates and one comparison with randomised sides. With `record_labels`
    the file's own judgement is stored as a vote of origin "import" (chosen wins), which the DPO export reads like
    any other vote; the leaderboard counts only annotator votes and reports how often they agree with the file.
    With `open_for_annotators` the team can judge the pairs blind; otherwise the campaign is created closed.
    All or nothing: any problem raises PreferenceImportError (file and line) or ValidationError, storing nothing.
    """
    values = _clean_options(options)
    names = [(chosen_name or "chosen").strip(), (rejected_name or "rejected").strip()]
    if not all(names) or names[0] == names[1] or any(len(n) > 200 for n in names):
        raise ValidationError({"rejected_name": "Name the two sources differently (at most 200 characters each)."})
    records = parse_preferences(path, display_name, limits=import_limits())
    rng = random.Random(values["seed"])
    now = timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.create(
            project=project, kind=CampaignKind.IMPORTED, source_name=display_name[:255], created_by=user,
            status=CampaignStatus.OPEN if open_for_annotators else CampaignStatus.CLOSED,
            closed_at=None if open_for_annotators else now, **values,
        )
        contestants = Contestant.objects.bulk_create([
            Contestant(campaign=campaign, index=i, external_name=n) for i, n in enumerate(names)
        ])
        for start in range(0, len(records), BATCH_SIZE):
            _import_chunk(campaign, contestants, records[start:start + BATCH_SIZE], rng, record_labels)
        _set_annotators(campaign, project, annotators)
    return campaign


def _import_chunk(
    campaign: Campaign, contestants: list[Contestant], records: list[PreferenceRecord], rng: random.Random,
    record_labels: bool,
) -> None:
    prompts = Prompt.objects.bulk_create([
        Prompt(campaign=campaign, text=r.prompt, messages=r.messages, attributes=r.attributes, source_line=r.line)
        for r in records
    ])
    candidates = Candidate.objects.bulk_create([
        Candidate(prompt=p, contestant=contestants[i], text=text)
        for p, r in zip(prompts, records) for i, text in ((0, r.chosen), (1, r.rejected))
    ])
    comparisons = Comparison.objects.bulk_create(_comparisons_for(
        campaign, [(p, {0: candidates[2 * k], 1: candidates[2 * k + 1]}) for k, p in enumerate(prompts)],
        contestants, rng,
    ))
    if record_labels:
        Vote.objects.bulk_create([
            Vote(campaign=campaign, comparison=c, origin=VoteOrigin.IMPORT,
                 choice=Choice.A if c.left.contestant_id == contestants[0].pk else Choice.B)
            for c in comparisons
        ])


def campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    if status not in CampaignStatus.values:
        raise ValidationError({"status": f"Choose one of {', '.join(CampaignStatus.values)}."})
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status == status:
            return campaign
        campaign.status = status
        campaign.closed_at = timezone.now() if status == CampaignStatus.CLOSED else None
        campaign.save(update_fields=["status", "closed_at"])
        if status == CampaignStatus.CLOSED:
            # Comparisons in hand are given back: nobody can vote on them any more.
            open_ = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.OPEN)
            for cid, n in open_.values_list("comparison_id").annotate(n=Count("id")):
                Comparison.objects.filter(pk=cid).update(n_taken=F("n_taken") - n)
            open_.update(status=AssignmentStatus.EXPIRED, finished_at=timezone.now())
    return campaign


# --------------------------------------------------------------------------------------------------------------------
# Scheduler state: bootstrap ratings and decided pairs, refreshed as votes come in


def annotator_vote_rows(campaign: Campaign) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Annotator votes aggregated to (left index, right index, choice, count) arrays."""
    rows = list(
        Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR)
        .values_list("comparison__left__contestant__index", "comparison__right__contestant__index", "choice")
        .annotate(n=Count("id")).order_by()
    )
    if not rows:
        return (np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0, dtype=str), np.zeros(0, dtype=np.int64))
    left, right, choice, n = zip(*rows)
    return np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp), np.asarray(choice, dtype=str), np.asarray(n, dtype=np.int64)


def _refresh_due(n_votes: int, cached: int, has_state: bool) -> bool:
    # Refit after every vote while the campaign is small, then every ~2 % of the votes (a bootstrap over 100,000
    # votes on every request would be waste: one vote barely moves the intervals).
    return not has_state or n_votes - cached >= max(1, cached // 50) or n_votes < cached


def schedule_state(campaign: Campaign, *, force: bool = False) -> dict[str, Any]:
    """The scheduler's cache on the campaign: {"n_votes", "decided": [[i, j], ...], "looks": {"i-j": look},
    "boot": rounds x K Elo samples}. Refitted as votes come in (see `_refresh_due`).

    "Decided" uses `ratings.spend_decisions`: the interval of the difference must exclude zero at a confidence that
    grows with each look at the pair, so checking after every vote does not wear the campaign's confidence down.
    """
    n_votes = Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR).count()
    fresh = Campaign.objects.filter(pk=campaign.pk).values("state", "state_n_votes").first() or {}
    state, cached = fresh.get("state") or {}, int(fresh.get("state_n_votes") or 0)
    if not force and not _refresh_due(n_votes, cached, bool(state)):
        return state
    k = campaign.contestants.count()
    left, right, choice, count = annotator_vote_rows(campaign)
    decided = {(int(i), int(j)) for i, j in state.get("decided", [])}
    looks = dict(state.get("looks", {}))
    boot_kept: list[list[float]] = state.get("boot") or []
    votes = ratings.to_votes(left, right, choice, k, both_bad_as=campaign.both_bad_as, count=count)
    if votes.n_votes and k >= 2:
        from evalhub.stats import battle_matrices

        _wins, battles = battle_matrices(votes)
        # A fit is needed only when some pair reaches its next look, or to rank pairs for active scheduling.
        due = campaign.stop_when_decided and any(
            ratings.look_index(int(battles[i, j]), campaign.min_votes_to_decide) > looks.get(f"{i}-{j}", 0)
            for i in range(k) for j in range(i + 1, k) if (i, j) not in decided
        )
        if due or campaign.scheduling == Scheduling.ACTIVE:
            # Always the small ridge here: it costs the stopping rule nothing (it only shrinks differences a
            # little, so decisions come no sooner) and keeps every resample's fit finite and fast.
            rounds = ratings.SCHEDULER_ROUNDS if due else ratings.SCHEDULER_KEPT_ROUNDS
            boot, _reg, _ident = ratings.fit(votes, n_rounds=rounds, seed=campaign.seed + n_votes,
                                             confidence=campaign.confidence, reg_fallback=campaign.reg,
                                             always_reg=True)
            if due:
                decided, looks = ratings.spend_decisions(
                    boot.samples, battles, confidence=campaign.confidence, min_votes=campaign.min_votes_to_decide,
                    looks=looks, decided=decided,
                )
            boot_kept = np.round(boot.samples[: ratings.SCHEDULER_KEPT_ROUNDS], 2).tolist()
    state = {"n_votes": n_votes, "decided": sorted([i, j] for i, j in decided), "looks": looks, "boot": boot_kept}
    Campaign.objects.filter(pk=campaign.pk).update(state=state, state_n_votes=n_votes)
    return state


def decided_pairs(campaign: Campaign) -> set[tuple[int, int]]:
    return {(int(i), int(j)) for i, j in schedule_state(campaign).get("decided", [])}


# --------------------------------------------------------------------------------------------------------------------
# Serving comparisons


def can_vote(campaign: Campaign, user: AbstractBaseUser) -> bool:
    restricted = campaign.annotators.exists()
    return not restricted or campaign.annotators.filter(pk=user.pk).exists()


def _check_voter(campaign: Campaign, user: AbstractBaseUser) -> None:
    if not can_vote(campaign, user):
        raise ArenaRefusal("not_an_annotator", "You are not among this campaign's annotators; ask its lead.", 403)


def assignments_expire(campaign: Campaign, now: datetime | None = None) -> int:
    """Release comparisons whose annotator left them longer than claim_minutes. Safe to run concurrently."""
    now = now or timezone.now()
    stale = list(
        Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.OPEN, expires_at__lt=now)
        .values_list("pk", "comparison_id")[:500]
    )
    released = 0
    for pk, comparison_id in stale:
        with transaction.atomic():
            if Assignment.objects.filter(pk=pk, status=AssignmentStatus.OPEN).update(
                status=AssignmentStatus.EXPIRED, finished_at=now
            ):
                Comparison.objects.filter(pk=comparison_id).update(n_taken=F("n_taken") - 1)
                released += 1
    return released


def _open_assignment(campaign: Campaign, user: AbstractBaseUser) -> Assignment | None:
    return (
        Assignment.objects.filter(campaign=campaign, annotator=user, status=AssignmentStatus.OPEN)
        .select_related("comparison").first()
    )


def _index_of(campaign: Campaign) -> dict[int, int]:
    return dict(Contestant.objects.filter(campaign=campaign).values_list("pk", "index"))


def _choose_pair(
    campaign: Campaign, user: AbstractBaseUser, index_of: dict[int, int], exhausted: set[tuple[int, int]],
    state: dict[str, Any],
) -> tuple[int, int] | None:
    """The pair of contestants (ids) to serve next, or None when nothing is left for this user."""
    mine = Assignment.objects.filter(campaign=campaign, annotator=user).values("comparison_id")
    available = {
        (lo, hi)
        for lo, hi in Comparison.objects.filter(campaign=campaign, n_taken__lt=campaign.overlap)
        .exclude(pk__in=mine).values_list("pair_lo_id", "pair_hi_id").distinct().order_by()
    } - exhausted
    if campaign.stop_when_decided:
        decided = {(int(i), int(j)) for i, j in state.get("decided", [])}
        available = {p for p in available if (index_of[p[0]], index_of[p[1]]) not in decided}
    if not available:
        return None
    taken = {
        (lo, hi): int(t or 0)
        for lo, hi, t in Comparison.objects.filter(campaign=campaign)
        .values_list("pair_lo_id", "pair_hi_id").annotate(t=Sum("n_taken")).order_by()
    }
    rng = random.Random()
    if campaign.scheduling == Scheduling.ACTIVE:
        k = len(index_of)
        counts = np.zeros((k, k))
        for (lo, hi), t in taken.items():
            counts[index_of[lo], index_of[hi]] = counts[index_of[hi], index_of[lo]] = t
        eligible = np.zeros((k, k), dtype=bool)
        for lo, hi in available:
            eligible[index_of[lo], index_of[hi]] = True
        boot = np.asarray(state.get("boot") or [[1000.0] * k], dtype=np.float64)
        from evalhub.stats import next_pair_uncertainty

        pick = next_pair_uncertainty(counts, boot, eligible=eligible, confidence=campaign.confidence)
        if pick is not None:
            by_index = {v: c for c, v in index_of.items()}
            i, j = pick
            pair = (by_index[i], by_index[j])
            if pair in available:
                return pair
            if (pair[1], pair[0]) in available:
                return (pair[1], pair[0])
    least = min(taken.get(p, 0) for p in available)
    return rng.choice(sorted(p for p in available if taken.get(p, 0) == least))


def comparison_next(*, campaign: Campaign, user: AbstractBaseUser, now: datetime | None = None) -> Assignment | None:
    """The comparison this annotator should judge now (the one they hold, else a new one), or None when none is left.

    Raises ArenaRefusal when the user may not vote in this campaign.
    """
    now = now or timezone.now()
    _check_voter(campaign, user)
    campaign.refresh_from_db(fields=["status"])
    if not campaign.is_open:
        return None
    assignments_expire(campaign, now)
    held = _open_assignment(campaign, user)
    expires = now + timedelta(minutes=campaign.claim_minutes)
    if held is not None:
        Assignment.objects.filter(pk=held.pk, status=AssignmentStatus.OPEN).update(expires_at=expires)
        return held
    state = schedule_state(campaign)
    index_of = _index_of(campaign)
    exhausted: set[tuple[int, int]] = set()
    mine = Assignment.objects.filter(campaign=campaign, annotator=user).values("comparison_id")
    for _attempt in range(25):
        pair = _choose_pair(campaign, user, index_of, exhausted, state)
        if pair is None:
            return None
        try:
            with transaction.atomic():
                candidates = (
                    Comparison.objects.filter(
                        campaign=campaign, pair_lo_id=pair[0], pair_hi_id=pair[1], n_taken__lt=campaign.overlap
                    ).exclude(pk__in=mine)
                    # Fill comparisons up to their overlap before opening new ones, in a random but fixed order.
                    .order_by("-n_taken", "order_key")
                )
                if connection.features.has_select_for_update_skip_locked:
                    candidates = candidates.select_for_update(skip_locked=True)
                comparison = candidates.first()
                if comparison is None:
                    exhausted.add(pair)
                    continue
                if not Comparison.objects.filter(pk=comparison.pk, n_taken__lt=campaign.overlap).update(
                    n_taken=F("n_taken") + 1
                ):
                    continue
                assignment = Assignment.objects.create(
                    campaign=campaign, comparison=comparison, annotator=user, served_at=now, expires_at=expires
                )
        except IntegrityError:
            # A concurrent request of the same annotator got there first: serve what it reserved.
            held = _open_assignment(campaign, user)
            if held is not None:
                return held
            continue
        assignment.comparison = comparison
        return assignment
    return None


def _assignment_for(campaign: Campaign, user: AbstractBaseUser, token: str, *, lock: bool) -> tuple[Comparison, Assignment]:
    comparison = Comparison.objects.filter(campaign=campaign, token=str(token)[:64]).first()
    if comparison is None:
        raise ArenaRefusal("unknown_comparison", "There is no comparison with this token in this campaign.", 404)
    qs = Assignment.objects.filter(comparison=comparison, annotator=user)
    if lock:
        qs = qs.select_for_update()
    assignment = qs.first()
    if assignment is None:
        raise ArenaRefusal(
            "not_served", "This comparison was not served to you; ask for the next comparison and vote on that.", 403
        )
    return comparison, assignment


def comparison_skip(*, campaign: Campaign, user: AbstractBaseUser, token: str, now: datetime | None = None) -> None:
    """Give a comparison back without voting; this annotator is not shown it again."""
    now = now or timezone.now()
    _check_voter(campaign, user)
    with transaction.atomic():
        _, assignment = _assignment_for(campaign, user, token, lock=True)
        if assignment.status == AssignmentStatus.VOTED:
            raise ArenaRefusal("already_voted", "You already voted on this comparison; it cannot be skipped.")
        if assignment.status == AssignmentStatus.SKIPPED:
            return
        was_open = assignment.status == AssignmentStatus.OPEN
        Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SKIPPED, finished_at=now)
        if was_open:
            Comparison.objects.filter(pk=assignment.comparison_id).update(n_taken=F("n_taken") - 1)


# --------------------------------------------------------------------------------------------------------------------
# Votes


def _clean_vote(campaign: Campaign, choice: Any, criteria: Any, reason: Any, seconds: Any) -> tuple[str, dict[str, str], str, float]:
    errors: dict[str, str] = {}
    if choice not in Choice.values:
        errors["choice"] = "Choose a (A is better), b (B is better), tie or both_bad."
    clean_criteria: dict[str, str] = {}
    if criteria in (None, ""):
        criteria = {}
    if not isinstance(criteria, dict):
        errors["criteria"] = "Give criteria as an object {criterion: a / b / tie}."
    else:
        for name, value in criteria.items():
            if value in (None, ""):
                continue
            if name not in campaign.criteria:
                allowed = ", ".join(campaign.criteria) or "none"
                errors["criteria"] = f"“{str(name)[:60]}” is not a criterion of this campaign (criteria: {allowed})."
                break
            if value not in CRITERION_CHOICES:
                errors["criteria"] = f"The preference for “{name}” must be a, b or tie."
                break
            clean_criteria[name] = str(value)
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        errors["reason"] = "The reason must be text."
        reason = ""
    elif len(reason) > MAX_REASON_CHARS:
        errors["reason"] = f"The reason may be at most {MAX_REASON_CHARS:,} characters long (it is {len(reason):,})."
    elif "\x00" in reason:
        errors["reason"] = "The reason contains a NUL character."
    try:
        secs = float(seconds or 0)
    except (TypeError, ValueError):
        errors["seconds"] = "Seconds must be a number."
        secs = 0.0
    if errors:
        raise ValidationError(errors)
    if not np.isfinite(secs):
        secs = 0.0
    return str(choice), clean_criteria, reason.strip(), max(0.0, min(secs, 3600.0))


def vote_submit(
    *,
    campaign: Campaign,
    user: AbstractBaseUser,
    token: str,
    choice: str,
    criteria: dict[str, str] | None = None,
    reason: str = "",
    seconds: float = 0.0,
    now: datetime | None = None,
) -> tuple[Vote, bool]:
    """Record a vote on a comparison served to `user`. Returns (vote, created).

    The same vote again returns the stored one with created = False (a double click, a retried request); anything
    else is refused: ValidationError for a malformed vote (field named), ArenaRefusal for a vote that is not
    allowed (not served: 403; unknown token: 404; already voted differently, skipped, closed campaign or slot
    given away: 409).
    """
    now = now or timezone.now()
    choice, criteria_, reason, secs = _clean_vote(campaign, choice, criteria, reason, seconds)
    _check_voter(campaign, user)
    with transaction.atomic():
        comparison, assignment = _assignment_for(campaign, user, token, lock=True)
        existing = Vote.objects.filter(comparison=comparison, annotator=user).first()
        if existing is not None:
            if existing.choice == choice and existing.criteria == criteria_ and existing.reason == reason:
                return existing, False
            raise ArenaRefusal(
                "already_voted",
                f"You already voted “{Choice(existing.choice).label}” on this comparison; a vote cannot be changed.",
            )
        status = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status != CampaignStatus.OPEN:
            raise ArenaRefusal("campaign_closed", "This campaign is closed; votes are no longer accepted.")
        if assignment.status == AssignmentStatus.SKIPPED:
            raise ArenaRefusal("skipped", "You skipped this comparison; ask for the next one.")
        if assignment.status == AssignmentStatus.EXPIRED and not Comparison.objects.filter(
            pk=comparison.pk, n_taken__lt=campaign.overlap
        ).update(n_taken=F("n_taken") + 1):
            raise ArenaRefusal(
                "expired",
                f"You left this comparison for more than {campaign.claim_minutes} minutes and it was given to someone "
                "else; here is a new one.",
            )
        vote = Vote.objects.create(
            campaign=campaign, comparison=comparison, annotator=user, assignment=assignment,
            origin=VoteOrigin.ANNOTATOR, choice=choice, criteria=criteria_, reason=reason, seconds_spent=secs,
        )
        Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.VOTED, finished_at=now)
        Comparison.objects.filter(pk=comparison.pk).update(n_votes=F("n_votes") + 1)
    return vote, True


__all__ = [
    "ArenaRefusal",
    "CampaignOptions",
    "annotator_vote_rows",
    "assignments_expire",
    "campaign_create",
    "campaign_import",
    "campaign_set_status",
    "can_vote",
    "comparison_next",
    "comparison_skip",
    "decided_pairs",
    "schedule_state",
    "vote_submit",
]
