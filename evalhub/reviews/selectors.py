"""Queries of the reviews app. Callers have passed the access chokepoint; everything here is scoped to its project.

What an annotator or reviewer receives is built by `item_payload` / `rating_context`: prompt, output text and the
rubric, reached through opaque tokens. Nothing there is derived from the output id, the generation run or the model
version; only lead-only functions (`ratings_frame`, `evalhub.reviews.analysis`) join outputs to model versions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404

from evalhub.core.queries import count_of
from evalhub.projects.access import Access
from evalhub.projects.models import Membership, Project
from evalhub.reviews.models import (
    AdjudicatedValue,
    Adjudication,
    AdjudicationStatus,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignItem,
    CampaignStatus,
    Correction,
    Criterion,
    Rating,
    RatingValue,
    Rubric,
    Scale,
)
from evalhub.reviews.services import campaign_annotator_ids, campaign_criteria

RATINGS_FRAME_COLUMNS = ["output_id", "criterion", "value", "annotator_id", "adjudicated"]


# --------------------------------------------------------------------------------------------------------------------
# Rubrics and campaigns


def rubrics_of(project: Project) -> QuerySet[Rubric]:
    return Rubric.objects.filter(project=project).prefetch_related("versions")


def campaign_get(access: Access, campaign_id: int) -> Campaign:
    """The campaign, with `may_rate` for the current user worked out in the same query (see campaign_may_rate)."""
    listed = Campaign.annotators.through.objects.filter(campaign_id=OuterRef("pk"))
    grouped = Campaign.groups.through.objects.filter(campaign_id=OuterRef("pk"))
    campaign = (
        Campaign.objects.filter(project=access.project, pk=campaign_id)
        .select_related("rubric_version__rubric")
        .annotate(
            _has_listed=Exists(listed), _has_groups=Exists(grouped),
            _me_listed=Exists(listed.filter(user_id=access.user.pk)),
            _me_grouped=Exists(grouped.filter(group__user=access.user.pk)),
        )
        .first()
    )
    if campaign is None:
        raise Http404("No such campaign")
    # The chokepoint already made sure the user is a member of the project.
    campaign.may_rate = (  # type: ignore[attr-defined]
        (not campaign._has_listed and not campaign._has_groups)  # type: ignore[attr-defined]
        or campaign._me_listed or campaign._me_grouped  # type: ignore[attr-defined]
    )
    return campaign


def campaigns_for(access: Access) -> list[Campaign]:
    """Leads and reviewers see every campaign; annotators those they may rate."""
    campaigns = list(
        Campaign.objects.filter(project=access.project).select_related("rubric_version__rubric").order_by(
            "status", "-created_at"
        )
    )
    if access.is_reviewer:
        return campaigns
    out = []
    for c in campaigns:
        allowed = campaign_annotator_ids(c)
        if c.status == CampaignStatus.OPEN and (allowed is None or access.user.pk in allowed):
            out.append(c)
    return out


def criteria_of(campaign: Campaign) -> list[Criterion]:
    return campaign_criteria(campaign)


# --------------------------------------------------------------------------------------------------------------------
# Progress


@dataclass(frozen=True)
class Progress:
    mine: int  # ratings this annotator submitted
    my_share: int | None  # a fair share of the campaign's ratings, when the annotators are listed
    done: int  # ratings submitted in the campaign (gold excluded)
    wanted: int  # items x k (gold excluded)

    @property
    def percent(self) -> float:
        return 100.0 * min(self.done, self.wanted) / self.wanted if self.wanted else 100.0

    @property
    def my_percent(self) -> float:
        if not self.my_share:
            return 0.0
        return 100.0 * min(self.mine, self.my_share) / self.my_share


_T = {
    "assignment": Assignment._meta.db_table,
    "rating": Rating._meta.db_table,
    "item": CampaignItem._meta.db_table,
    "listed": Campaign.annotators.through._meta.db_table,
    "grouped": Campaign.groups.through._meta.db_table,
    "user_groups": get_user_model().groups.through._meta.db_table,
    "membership": Membership._meta.db_table,
}
# One round trip: ratings by this annotator, non-gold ratings in the campaign, and how many people may rate it
# (chosen annotators and members of chosen groups who are project members; 0 = open to every member).
PROGRESS_SQL = """
SELECT
  (SELECT COUNT(*) FROM {assignment} WHERE campaign_id = %s AND annotator_id = %s AND status = 'submitted'),
  (SELECT COUNT(*) FROM {rating} WHERE campaign_id = %s),
  (SELECT COUNT(*) FROM {rating} r JOIN {item} i ON i.id = r.item_id WHERE r.campaign_id = %s AND i.is_gold),
  (SELECT COUNT(*) FROM (
      SELECT user_id FROM {listed} WHERE campaign_id = %s
      UNION
      SELECT ug.user_id FROM {user_groups} ug JOIN {grouped} cg ON cg.group_id = ug.group_id WHERE cg.campaign_id = %s
   ) allowed JOIN {membership} m ON m.user_id = allowed.user_id AND m.project_id = %s)
""".format(**_T)


def progress_for(campaign: Campaign, user: AbstractBaseUser) -> Progress:
    c = campaign.pk
    with connection.cursor() as cur:
        cur.execute(PROGRESS_SQL, [c, user.pk, c, c, c, c, campaign.project_id])
        mine, ratings, gold_ratings, allowed = cur.fetchone()
    share = None
    if allowed:
        share = -(-campaign.ratings_wanted // allowed) + campaign.gold_count
    return Progress(mine=mine, my_share=share, done=ratings - gold_ratings, wanted=campaign.ratings_wanted)


def annotator_progress(campaign: Campaign) -> list[dict[str, Any]]:
    """Per annotator: submitted, skipped, held now, time per item (for the lead's overview)."""
    rows = (
        Assignment.objects.filter(campaign=campaign)
        .values("annotator_id", "annotator__username")
        .annotate(
            submitted=Count("pk", filter=Q(status=AssignmentStatus.SUBMITTED)),
            skipped=Count("pk", filter=Q(status=AssignmentStatus.SKIPPED)),
            expired=Count("pk", filter=Q(status=AssignmentStatus.EXPIRED)),
            active=Count("pk", filter=Q(status=AssignmentStatus.ACTIVE)),
        )
        .order_by("annotator__username")
    )
    allowed = campaign_annotator_ids(campaign)
    share = -(-campaign.ratings_wanted // len(allowed)) + campaign.gold_count if allowed else None
    out = []
    for r in rows:
        percent = 100.0 * min(r["submitted"], share) / share if share else None
        out.append({**r, "share": share, "percent": percent})
    return out


# --------------------------------------------------------------------------------------------------------------------
# The project overview: what waits for one person, and the campaigns at a glance


@dataclass(frozen=True)
class CampaignWork:
    """One open campaign this person may rate now. Blind: the campaign and counts, nothing about the outputs."""

    campaign: Campaign
    mine: int  # ratings this person submitted
    available: int  # items with a free slot this person never had, plus the one they hold
    held: bool
    share: int | None  # their fair share when the campaign lists its annotators

    @property
    def target(self) -> int:
        """About how many this person can rate in all: their share where there is one, never more than is there."""
        possible = self.mine + self.available
        return max(self.mine, min(self.share, possible)) if self.share else possible

    @property
    def percent(self) -> float:
        return 100.0 * self.mine / self.target if self.target else 100.0

    @property
    def started(self) -> bool:
        return self.mine > 0 or self.held


def work_for(access: Access) -> list[CampaignWork]:
    """Open campaigns this person may rate and still has something to rate in, newest first.

    One query finds the campaigns with what is free for this person; `progress_for` then adds their count and share
    per campaign (a project has a handful of open campaigns, never thousands).
    """
    user_id = access.user.pk
    listed = Campaign.annotators.through.objects.filter(campaign_id=OuterRef("pk"))
    grouped = Campaign.groups.through.objects.filter(campaign_id=OuterRef("pk"))
    had = Assignment.objects.filter(item=OuterRef("pk"), annotator=user_id)
    free = CampaignItem.objects.filter(campaign=OuterRef("pk"), open_slots__gt=0).filter(~Exists(had))
    held = Assignment.objects.filter(campaign=OuterRef("pk"), annotator=user_id, status=AssignmentStatus.ACTIVE)
    campaigns = (
        Campaign.objects.filter(project=access.project, status=CampaignStatus.OPEN)
        .annotate(
            _has_listed=Exists(listed), _has_groups=Exists(grouped),
            _me_listed=Exists(listed.filter(user_id=user_id)),
            _me_grouped=Exists(grouped.filter(group__user=user_id)),
            n_free=count_of(free), n_held=count_of(held),
        )
        .order_by("-created_at", "-id")
    )
    out: list[CampaignWork] = []
    for c in campaigns:
        may_rate = (not c._has_listed and not c._has_groups) or c._me_listed or c._me_grouped  # type: ignore[attr-defined]
        available = c.n_free + c.n_held  # type: ignore[attr-defined]
        if not may_rate or not available:
            continue
        progress = progress_for(c, access.user)
        out.append(CampaignWork(campaign=c, mine=progress.mine, available=available,
                                held=bool(c.n_held), share=progress.my_share))  # type: ignore[attr-defined]
    return out


def adjudications_waiting(project: Project) -> list[tuple[Campaign, int]]:
    """(campaign, items waiting for a reviewer's final values) for campaigns with any, newest first."""
    waiting = Adjudication.objects.filter(campaign=OuterRef("pk"), status=AdjudicationStatus.OPEN)
    campaigns = (
        Campaign.objects.filter(project=project).annotate(n_waiting=count_of(waiting))
        .filter(n_waiting__gt=0).order_by("-created_at", "-id")
    )
    return [(c, c.n_waiting) for c in campaigns]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CampaignStatusRow:
    campaign: Campaign
    done: int  # ratings submitted (gold excluded)
    waiting: int  # items waiting for adjudication

    @property
    def wanted(self) -> int:
        return self.campaign.ratings_wanted

    @property
    def percent(self) -> float:
        return 100.0 * min(self.done, self.wanted) / self.wanted if self.wanted else 100.0


def campaigns_status(project: Project, *, limit: int = 5) -> list[CampaignStatusRow]:
    """Open campaigns first, then the latest closed ones: ratings so far and adjudications waiting, in one query."""
    ratings = Rating.objects.filter(campaign=OuterRef("pk"), item__is_gold=False)
    waiting = Adjudication.objects.filter(campaign=OuterRef("pk"), status=AdjudicationStatus.OPEN)
    campaigns = (
        Campaign.objects.filter(project=project)
        .annotate(n_done=count_of(ratings), n_waiting=count_of(waiting))
        .order_by("-status", "-created_at", "-id")[:limit]  # descending puts "open" before "closed"
    )
    return [CampaignStatusRow(c, c.n_done, c.n_waiting) for c in campaigns]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------------------
# What an annotator sees (blind)


def assignment_for(campaign: Campaign, user: AbstractBaseUser, token: str) -> Assignment | None:
    """The annotator's own assignment with this token, or None (someone else's token finds nothing)."""
    return (
        Assignment.objects.filter(campaign=campaign, annotator=user.pk, token=token)
        .select_related("item__output__example")
        .first()
    )


def history_neighbours(assignment: Assignment) -> tuple[str | None, str | None]:
    """Tokens of this annotator's previous and next item in the order they were handed out (skips left out)."""
    mine = Assignment.objects.filter(
        campaign=assignment.campaign_id, annotator=assignment.annotator_id,
        status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.ACTIVE],
    )
    before = mine.filter(
        Q(assigned_at__lt=assignment.assigned_at) | Q(assigned_at=assignment.assigned_at, pk__lt=assignment.pk)
    ).order_by("-assigned_at", "-pk").values_list("token", flat=True).first()
    after = mine.filter(
        Q(assigned_at__gt=assignment.assigned_at) | Q(assigned_at=assignment.assigned_at, pk__gt=assignment.pk)
    ).order_by("assigned_at", "pk").values_list("token", flat=True).first()
    return before, after


def _chat(example: Any) -> list[dict[str, str]]:
    return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in example.chat_messages()]


@dataclass
class RatingView:
    """Everything the rating page and the API show for one item. No model, run or output identity in it."""

    token: str
    status: str
    prompt: list[dict[str, str]]
    reference: str | None
    output_text: str
    corrected_text: str | None
    criteria: list[Criterion]
    values: dict[str, Any] = field(default_factory=dict)
    comment: str = ""
    submission_token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def as_api(self) -> dict[str, Any]:
        return {
            "assignment": self.token,
            "status": self.status,
            "prompt": self.prompt,
            "reference": self.reference,
            "output": self.output_text,
            "corrected_text": self.corrected_text,
            "criteria": [
                {
                    "name": c.name, "description": c.description, "scale": c.scale, "required": c.required,
                    "choices": [{"key": k, "value": v, "text": t} for k, v, t in c.choices()],
                }
                for c in self.criteria
            ],
            "values": self.values,
            "comment": self.comment,
            "submission_token": self.submission_token,
        }


def _value_of(v: RatingValue | AdjudicatedValue) -> Any:
    if v.number is not None:
        return int(v.number) if float(v.number).is_integer() else v.number
    if v.labels is not None:
        return list(v.labels)
    return v.label or v.text


def rating_view(assignment: Assignment, campaign: Campaign, criteria: list[Criterion] | None = None) -> RatingView:
    output = assignment.item.output
    example = output.example
    # Only a submitted (or late, skipped) assignment can have a rating; a fresh one needs no lookup.
    rating = None if assignment.status == AssignmentStatus.ACTIVE else Rating.objects.filter(assignment=assignment).first()
    values: dict[str, Any] = {}
    comment = ""
    corrected = None
    criteria = criteria if criteria is not None else criteria_of(campaign)
    if rating is not None:
        names = {c.pk: c.name for c in criteria}
        values = {names[v.criterion_id]: _value_of(v) for v in rating.values.all() if v.criterion_id in names}
        comment = rating.comment
        corr = Correction.objects.filter(rating=rating).first()
        corrected = corr.edited_text if corr else None
    return RatingView(
        token=assignment.token,
        status=assignment.status,
        prompt=_chat(example),
        reference=example.reference if campaign.show_reference and example.reference else None,
        output_text=output.text,
        corrected_text=corrected,
        criteria=criteria,
        values=values,
        comment=comment,
    )


# --------------------------------------------------------------------------------------------------------------------
# Reviewers: adjudication and corrections (blind as well)


def adjudications_open(campaign: Campaign) -> QuerySet[Adjudication]:
    return Adjudication.objects.filter(campaign=campaign, status=AdjudicationStatus.OPEN).select_related("item")


def adjudication_by_item_token(campaign: Campaign, token: str) -> Adjudication | None:
    return (
        Adjudication.objects.filter(campaign=campaign, item__token=token)
        .select_related("item__output__example", "campaign__rubric_version")
        .first()
    )


def item_ratings(item: CampaignItem, criteria: list[Criterion]) -> list[dict[str, Any]]:
    """Each rating of an item: annotator name, {criterion: shown value}, comment (for reviewers)."""
    names = {c.pk: c.name for c in criteria}
    out = []
    for r in Rating.objects.filter(item=item).select_related("annotator").prefetch_related("values__criterion"):
        shown = {names[v.criterion_id]: v.display() for v in r.values.all() if v.criterion_id in names}
        out.append({"annotator": r.annotator.username, "values": shown, "comment": r.comment})
    return out


def corrections_of(campaign: Campaign) -> QuerySet[Correction]:
    return (
        Correction.objects.filter(item__campaign=campaign)
        .select_related("rating__annotator", "item")
        .order_by("-updated_at", "-id")
    )


# --------------------------------------------------------------------------------------------------------------------
# For the metrics app and exports


def ratings_frame(project: Project) -> pd.DataFrame:
    """Final numeric ratings of `project`'s outputs, one row per rating and criterion (gold items left out).

    Columns: output_id (int), criterion (str, the criterion's name), value (float: the Likert level, or 1/0 for
    pass/fail), annotator_id (int), adjudicated (bool). Where a reviewer adjudicated an item's criterion, that one
    final value replaces the annotators' ratings of it (annotator_id is then the reviewer's, adjudicated True).
    Labels and free text are not numeric and are left out; `analysis.export_frame` has them.
    """
    numeric = [Scale.LIKERT, Scale.BINARY]
    adjudicated = {
        (item_id, crit_id): (number, reviewer_id)
        for item_id, crit_id, number, reviewer_id in AdjudicatedValue.objects.filter(
            adjudication__campaign__project=project, adjudication__status=AdjudicationStatus.RESOLVED,
            adjudication__item__is_gold=False, criterion__scale__in=numeric, number__isnull=False,
        ).values_list("adjudication__item_id", "criterion_id", "number", "adjudication__reviewer_id")
    }
    rows = RatingValue.objects.filter(
        rating__campaign__project=project, rating__item__is_gold=False, criterion__scale__in=numeric,
        number__isnull=False,
    ).values_list("rating__item_id", "rating__item__output_id", "criterion_id", "criterion__name", "number",
                  "rating__annotator_id")
    records: list[tuple[int, str, float, int | None, bool]] = []
    seen_adjudicated: set[tuple[int, int]] = set()
    for item_id, output_id, crit_id, crit_name, number, annotator_id in rows.iterator(chunk_size=5000):
        key = (item_id, crit_id)
        if key in adjudicated:
            if key not in seen_adjudicated:
                seen_adjudicated.add(key)
                value, reviewer = adjudicated[key]
                records.append((output_id, crit_name, float(value), reviewer, True))
            continue
        records.append((output_id, crit_name, float(number), annotator_id, False))
    frame = pd.DataFrame.from_records(records, columns=RATINGS_FRAME_COLUMNS)
    return frame.astype(
        {"output_id": "int64", "criterion": "object", "value": "float64", "annotator_id": "Int64", "adjudicated": "bool"}
    )
