"""Every state change of rubric reviews: rubrics and versions, campaigns, the annotator queue, ratings, corrections
and adjudications. Views and the API parse input and call these; nothing else writes the reviews tables.

Invalid input raises django.core.exceptions.ValidationError keyed by the field at fault ("values.Helpfulness",
"comment", "assignment"...), before anything is written; the API turns it into a 400 naming those fields.
"""

from __future__ import annotations

import math
import random
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import markdown
import nh3
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.projects.models import Membership, Project
from evalhub.reviews import fastpath
from evalhub.reviews.models import (
    COMMENT_MAX_CHARS,
    CORRECTION_MAX_CHARS,
    MAX_LEVELS,
    MAX_OPTIONS,
    TEXT_ANSWER_MAX_CHARS,
    AdjudicatedValue,
    Adjudication,
    AdjudicationStatus,
    AgreementLevel,
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
    RubricVersion,
    Scale,
    new_token,
)
from evalhub.reviews.rubric_templates import TEMPLATES
from evalhub.stats import disagreement

BATCH_SIZE = 5000
GUIDELINES_MAX_CHARS = 50_000
MAX_OVERLAP = 50
MAX_CRITERIA = 30
# Gold items are rated by everyone who works on the campaign; their slot count is simply never the limit.
GOLD_SLOTS = 1_000_000
NEXT_ITEM_ATTEMPTS = 20


# --------------------------------------------------------------------------------------------------------------------
# Small input checks shared by every entry point


def clean_text(value: Any, field: str, *, max_chars: int, errors: dict[str, str], required: bool = False) -> str:
    """A user-supplied string, or "" after recording why it is not acceptable in `errors[field]`."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = "Must be text."
        return ""
    if "\x00" in value:
        errors[field] = "Contains a NUL character (\\x00); remove it."
        return ""
    if len(value) > max_chars:
        errors[field] = f"At most {max_chars:,} characters (got {len(value):,})."
        return ""
    if required and not value.strip():
        errors[field] = "Required."
        return ""
    return value


def _raise(errors: Mapping[str, str | list[str]]) -> None:
    if errors:
        raise ValidationError(dict(errors))


# --------------------------------------------------------------------------------------------------------------------
# Rubrics


@dataclass(frozen=True)
class CriterionSpec:
    """A criterion as plain data (what forms, the API and templates produce)."""

    name: str
    scale: str
    description: str = ""
    anchors: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    weight: float = 1.0
    required: bool = True
    agreement_level: str = ""

    def as_fields(self) -> dict[str, Any]:
        return {
            "name": self.name, "scale": self.scale, "description": self.description, "anchors": list(self.anchors),
            "options": list(self.options), "weight": self.weight, "required": self.required,
            "agreement_level": self.agreement_level,
        }


def criteria_clean(raw: Sequence[Mapping[str, Any]]) -> list[CriterionSpec]:
    """Validated criterion specs; errors are keyed "criteria.<n>.<field>" (n from 1, as a person counts)."""
    errors: dict[str, str] = {}
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        raise ValidationError({"criteria": "Must be a list of criteria."})
    if not raw:
        raise ValidationError({"criteria": "A rubric needs at least one criterion."})
    if len(raw) > MAX_CRITERIA:
        raise ValidationError({"criteria": f"At most {MAX_CRITERIA} criteria."})
    specs: list[CriterionSpec] = []
    seen: set[str] = set()
    for n, item in enumerate(raw, start=1):
        key = f"criteria.{n}"
        if not isinstance(item, Mapping):
            errors[key] = "Must be an object."
            continue
        name = clean_text(item.get("name"), f"{key}.name", max_chars=100, errors=errors, required=True).strip()
        if name and name.lower() in seen:
            errors[f"{key}.name"] = f"“{name}” is used twice; criterion names must differ."
        seen.add(name.lower())
        scale = item.get("scale")
        if scale not in Scale.values:
            errors[f"{key}.scale"] = f"Choose one of: {', '.join(Scale.values)}."
            continue
        description = clean_text(item.get("description"), f"{key}.description", max_chars=2000, errors=errors)
        anchors = _text_list(item.get("anchors"), f"{key}.anchors", errors)
        options = _text_list(item.get("options"), f"{key}.options", errors)
        if scale == Scale.LIKERT and not 2 <= len(anchors) <= MAX_LEVELS:
            errors[f"{key}.anchors"] = f"A Likert scale needs anchor text for each of 2 to {MAX_LEVELS} levels."
        elif scale == Scale.LIKERT and any(not a.strip() for a in anchors):
            errors[f"{key}.anchors"] = "Every level needs anchor text."
        if scale == Scale.BINARY:
            anchors = (anchors + ["Pass", "Fail"][len(anchors):])[:2] if len(anchors) <= 2 else anchors
            if len(anchors) != 2:
                errors[f"{key}.anchors"] = "Pass/fail takes two texts: the pass text, then the fail text."
        if scale in (Scale.CATEGORICAL, Scale.MULTILABEL):
            if not 2 <= len(options) <= MAX_OPTIONS:
                errors[f"{key}.options"] = f"Give 2 to {MAX_OPTIONS} labels."
            elif len({o.lower() for o in options}) != len(options):
                errors[f"{key}.options"] = "Labels must differ."
        else:
            options = []
        if scale in (Scale.CATEGORICAL, Scale.MULTILABEL, Scale.TEXT):
            anchors = []
        try:
            weight = float(item.get("weight", 1.0))
            if not math.isfinite(weight) or weight < 0:
                raise ValueError
        except (TypeError, ValueError):
            errors[f"{key}.weight"] = "A number of 0 or more."
            weight = 1.0
        level = item.get("agreement_level") or ""
        if level not in AgreementLevel.values:
            errors[f"{key}.agreement_level"] = "Choose ordinal, interval or nominal (or leave empty)."
        elif level and scale != Scale.LIKERT:
            errors[f"{key}.agreement_level"] = "Only a Likert scale can choose its level; labels are nominal."
        specs.append(CriterionSpec(
            name=name, scale=scale, description=description, anchors=tuple(anchors), options=tuple(options),
            weight=weight, required=bool(item.get("required", True)), agreement_level=level,
        ))
    _raise(errors)
    return specs


def _text_list(value: Any, field: str, errors: dict[str, str]) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [line for line in value.splitlines() if line.strip()]
    if not isinstance(value, (list, tuple)):
        errors[field] = "Must be a list of texts."
        return []
    out: list[str] = []
    for v in value:
        text = clean_text(v, field, max_chars=500, errors=errors).strip()
        if field in errors:
            return []
        out.append(text)
    return out


def rubric_create(
    *,
    project: Project,
    name: str,
    criteria: Sequence[Mapping[str, Any]],
    created_by: AbstractBaseUser | None,
    description: str = "",
    template: str = "",
) -> Rubric:
    errors: dict[str, str] = {}
    name = clean_text(name, "name", max_chars=200, errors=errors, required=True).strip()
    description = clean_text(description, "description", max_chars=5000, errors=errors)
    if name and Rubric.objects.filter(project=project, name=name).exists():
        errors["name"] = f"A rubric called “{name}” already exists in this project."
    _raise(errors)
    specs = criteria_clean(criteria)
    with transaction.atomic():
        rubric = Rubric.objects.create(
            project=project, name=name, description=description, copied_from_template=template, created_by=created_by
        )
        version = RubricVersion.objects.create(rubric=rubric, number=1, created_by=created_by, note="first version")
        _criteria_write(version, specs)
    return rubric


def rubric_copy_template(
    *, project: Project, template: str, created_by: AbstractBaseUser | None, name: str | None = None
) -> Rubric:
    """A project rubric initialised from a template; the lead edits it from there."""
    spec = TEMPLATES.get(template)
    if spec is None:
        raise ValidationError({"template": f"No template “{template}”; choose one of {', '.join(TEMPLATES)}."})
    base = name or spec["name"]
    candidate, n = base, 1
    while Rubric.objects.filter(project=project, name=candidate).exists():
        n += 1
        candidate = f"{base} ({n})"
    return rubric_create(
        project=project, name=candidate, description=spec["description"], criteria=spec["criteria"],
        created_by=created_by, template=template,
    )


def _criteria_write(version: RubricVersion, specs: Sequence[CriterionSpec]) -> None:
    Criterion.objects.bulk_create(
        [Criterion(version=version, position=i, **s.as_fields()) for i, s in enumerate(specs, start=1)]
    )


_CRITERIA_CACHE: OrderedDict[tuple[int, Any], list[Criterion]] = OrderedDict()
_CRITERIA_LOCK = threading.Lock()
_CRITERIA_CACHE_SIZE = 256


def campaign_criteria(campaign: Campaign) -> list[Criterion]:
    """The criteria of the campaign's pinned rubric version, cached in this process.

    Safe to cache: a version a campaign uses is locked, so its criteria never change again (edits make a new
    version). The key includes the version's creation time, so a reused primary key can never hit a stale entry.
    """
    version = campaign.rubric_version
    key = (version.pk, version.created_at)
    with _CRITERIA_LOCK:
        hit = _CRITERIA_CACHE.get(key)
        if hit is not None:
            _CRITERIA_CACHE.move_to_end(key)
            return hit
    criteria = list(Criterion.objects.filter(version=version.pk).order_by("position"))
    with _CRITERIA_LOCK:
        _CRITERIA_CACHE[key] = criteria
        while len(_CRITERIA_CACHE) > _CRITERIA_CACHE_SIZE:
            _CRITERIA_CACHE.popitem(last=False)
    return criteria


def rubric_version_locked(version: RubricVersion) -> bool:
    """A version is frozen once a campaign pins it or anyone rated with it."""
    return version.campaigns.exists() or version.ratings.exists()


def rubric_latest_version(rubric: Rubric) -> RubricVersion:
    version = rubric.versions.order_by("-number").first()
    assert version is not None, "every rubric is created with a first version"
    return version


def rubric_update(
    *,
    rubric: Rubric,
    criteria: Sequence[Mapping[str, Any]],
    user: AbstractBaseUser | None,
    name: str | None = None,
    description: str | None = None,
    note: str = "",
) -> RubricVersion:
    """Save edited criteria. The latest version is changed in place while nothing uses it; once a campaign pins it or
    ratings exist, a new version is created and the old one stays exactly as raters saw it.

    Returns the version that now holds the criteria.
    """
    errors: dict[str, str] = {}
    if name is not None:
        name = clean_text(name, "name", max_chars=200, errors=errors, required=True).strip()
        if name and Rubric.objects.filter(project=rubric.project_id, name=name).exclude(pk=rubric.pk).exists():
            errors["name"] = f"A rubric called “{name}” already exists in this project."
    if description is not None:
        description = clean_text(description, "description", max_chars=5000, errors=errors)
    note = clean_text(note, "note", max_chars=300, errors=errors)
    _raise(errors)
    specs = criteria_clean(criteria)
    with transaction.atomic():
        # Locks the rubric so that a campaign pinning its latest version and this edit happen one after the other.
        Rubric.objects.select_for_update().get(pk=rubric.pk)
        latest = rubric_latest_version(rubric)
        if name is not None or description is not None:
            Rubric.objects.filter(pk=rubric.pk).update(
                name=name if name is not None else rubric.name,
                description=description if description is not None else rubric.description,
            )
        if rubric_version_locked(latest):
            version = RubricVersion.objects.create(
                rubric=rubric, number=latest.number + 1, created_by=user, note=note or "edited"
            )
        else:
            version = latest
            version.criteria.all().delete()
            if note:
                RubricVersion.objects.filter(pk=version.pk).update(note=note)
        _criteria_write(version, specs)
    rubric.refresh_from_db()
    return version


def criterion_spec_of(c: Criterion) -> dict[str, Any]:
    return {
        "name": c.name, "scale": c.scale, "description": c.description, "anchors": list(c.anchors),
        "options": list(c.options), "weight": c.weight, "required": c.required,
        "agreement_level": c.agreement_level,
    }


# --------------------------------------------------------------------------------------------------------------------
# Campaigns


def guidelines_render(text: str) -> str:
    """Markdown to HTML, then sanitised by nh3 (no scripts, event handlers or javascript: links survive)."""
    html = markdown.markdown(text or "", extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(html)


@dataclass(frozen=True)
class SampleSpec:
    run_ids: tuple[int, ...]
    sample_size: int | None = None  # examples, not outputs: every chosen run's outputs for them are rated
    stratify_by: str = ""
    seed: int = 0


def _stratified_sample(keys: Sequence[Any], groups: Sequence[Any], size: int, seed: int) -> list[Any]:
    """`size` keys drawn so that each group keeps its share (largest remainder), seeded."""
    rng = random.Random(seed)
    by_group: dict[Any, list[Any]] = defaultdict(list)
    for key, group in zip(keys, groups, strict=True):
        by_group[group].append(key)
    total = len(keys)
    ordered = sorted(by_group, key=lambda g: (g is None, str(g)))
    quotas = {g: size * len(by_group[g]) / total for g in ordered}
    counts = {g: math.floor(q) for g, q in quotas.items()}
    leftover = size - sum(counts.values())
    for g in sorted(ordered, key=lambda g: (-(quotas[g] - counts[g]), str(g)))[:leftover]:
        counts[g] += 1
    chosen: list[Any] = []
    for g in ordered:
        members = sorted(by_group[g])
        chosen.extend(rng.sample(members, min(counts[g], len(members))))
    return chosen


def campaign_create(
    *,
    project: Project,
    name: str,
    rubric_version: RubricVersion,
    sample: SampleSpec,
    created_by: AbstractBaseUser | None,
    overlap: int = 3,
    annotator_ids: Iterable[int] = (),
    group_ids: Iterable[int] = (),
    guidelines: str = "",
    show_reference: bool = False,
    assignment_minutes: int = 30,
    likert_threshold: float = 1.0,
    nominal_threshold: float = 0.34,
) -> Campaign:
    """A campaign over the outputs of one or more generation runs (several model versions mixed).

    Examples are sampled (stratified by `sample.stratify_by` when given) and every chosen run's outputs for those
    examples become items, so model versions are compared on the same prompts. Items are shuffled, so an annotator
    never sees one model's outputs in a row. The rubric version is pinned for the campaign's whole life.
    """
    errors: dict[str, str] = {}
    name = clean_text(name, "name", max_chars=200, errors=errors, required=True).strip()
    guidelines = clean_text(guidelines, "guidelines", max_chars=GUIDELINES_MAX_CHARS, errors=errors)
    if rubric_version.rubric.project_id != project.pk:
        errors["rubric_version"] = "That rubric is not part of this project."
    if not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
        errors["overlap"] = f"Between 1 and {MAX_OVERLAP} ratings per output."
    if not 1 <= assignment_minutes <= 24 * 60:
        errors["assignment_minutes"] = "Between 1 minute and 24 hours."
    for field, value in (("likert_threshold", likert_threshold), ("nominal_threshold", nominal_threshold)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            errors[field] = "A number of 0 or more."
    run_ids = sorted(set(sample.run_ids))
    runs = list(GenerationRun.objects.filter(project=project, pk__in=run_ids))
    if not run_ids:
        errors["runs"] = "Pick at least one generation run."
    elif len(runs) != len(run_ids):
        errors["runs"] = "Some runs are not part of this project."
    elif any(r.status != RunStatus.SUCCEEDED for r in runs):
        errors["runs"] = "Only finished (succeeded) generation runs can be reviewed."
    if sample.sample_size is not None and sample.sample_size < 1:
        errors["sample_size"] = "Sample at least one example."
    members = set(Membership.objects.filter(project=project).values_list("user_id", flat=True))
    annotator_ids = set(annotator_ids)
    if annotator_ids - members:
        errors["annotators"] = "Annotators must be members of this project."
    group_ids = set(group_ids)
    _raise(errors)

    outputs = Output.objects.filter(run_id__in=run_ids, error="")
    if sample.stratify_by:
        key = f"example__attributes__{sample.stratify_by}"
        rows = list(outputs.values_list("pk", "example_id", key))
    else:
        rows = [(pk, ex, None) for pk, ex in outputs.values_list("pk", "example_id")]
    if not rows:
        raise ValidationError({"runs": "These runs have no outputs to review."})
    example_group: dict[int, Any] = {}
    for _pk, ex, group in rows:
        example_group.setdefault(ex, _hashable(group))
    examples = sorted(example_group)
    if sample.sample_size is not None and sample.sample_size < len(examples):
        chosen = set(_stratified_sample(examples, [example_group[e] for e in examples], sample.sample_size, sample.seed))
        output_ids = [pk for pk, ex, _g in rows if ex in chosen]
    else:
        output_ids = [pk for pk, _ex, _g in rows]
    output_ids.sort()
    positions = list(range(len(output_ids)))
    random.Random(sample.seed + 1).shuffle(positions)

    with transaction.atomic():
        # The lock orders this against a concurrent rubric edit, which would otherwise change the version in place.
        Rubric.objects.select_for_update().get(pk=rubric_version.rubric_id)
        if not rubric_version.criteria.exists():
            raise ValidationError({"rubric_version": "That rubric version has no criteria."})
        campaign = Campaign.objects.create(
            project=project, name=name, rubric_version=rubric_version, overlap=overlap,
            guidelines_markdown=guidelines, guidelines_html=guidelines_render(guidelines),
            show_reference=show_reference, assignment_minutes=assignment_minutes,
            likert_threshold=float(likert_threshold), nominal_threshold=float(nominal_threshold),
            sampling={"runs": run_ids, "sample_size": sample.sample_size, "stratify_by": sample.stratify_by,
                      "seed": sample.seed},
            item_count=len(output_ids), created_by=created_by,
        )
        if annotator_ids:
            campaign.annotators.set(annotator_ids)
        if group_ids:
            campaign.groups.set(group_ids)
        for start in range(0, len(output_ids), BATCH_SIZE):
            CampaignItem.objects.bulk_create([
                CampaignItem(campaign=campaign, output_id=oid, position=positions[start + i], open_slots=overlap)
                for i, oid in enumerate(output_ids[start:start + BATCH_SIZE])
            ])
    return campaign


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return repr(value)
    return value


def campaign_set_status(*, campaign: Campaign, status: str) -> Campaign:
    if status not in CampaignStatus.values:
        raise ValidationError({"status": f"Choose one of {', '.join(CampaignStatus.values)}."})
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.refresh_from_db()
    return campaign


def campaign_update_guidelines(*, campaign: Campaign, guidelines: str) -> Campaign:
    errors: dict[str, str] = {}
    guidelines = clean_text(guidelines, "guidelines", max_chars=GUIDELINES_MAX_CHARS, errors=errors)
    _raise(errors)
    Campaign.objects.filter(pk=campaign.pk).update(
        guidelines_markdown=guidelines, guidelines_html=guidelines_render(guidelines)
    )
    campaign.refresh_from_db()
    return campaign


def campaign_annotator_ids(campaign: Campaign) -> set[int] | None:
    """Who may rate: the chosen annotators and group members; None means every project member."""
    chosen = set(campaign.annotators.values_list("pk", flat=True))
    group_ids = list(campaign.groups.values_list("pk", flat=True))
    if group_ids:
        chosen |= set(get_user_model().objects.filter(groups__in=group_ids).values_list("pk", flat=True))
    if not chosen:
        return None
    return chosen & set(Membership.objects.filter(project=campaign.project_id).values_list("user_id", flat=True))


def campaign_may_rate(campaign: Campaign, user: AbstractBaseUser) -> bool:
    """Whether this project member may rate in the campaign (`selectors.campaign_get` precomputes it)."""
    precomputed = getattr(campaign, "may_rate", None)
    if precomputed is not None:
        return bool(precomputed)
    allowed = campaign_annotator_ids(campaign)
    if allowed is None:
        return getattr(user, "is_superuser", False) or Membership.objects.filter(
            project=campaign.project_id, user=user.pk
        ).exists()
    return user.pk in allowed


def campaign_set_gold(
    *, campaign: Campaign, item: CampaignItem, expected: Mapping[str, Any] | None
) -> CampaignItem:
    """Mark an item as gold with its expected ratings (validated like a rating), or unmark it (expected=None).

    Gold items are shown to every annotator, mixed in with the others, and count only for gold accuracy.
    """
    if item.campaign_id != campaign.pk:
        raise ValidationError({"item": "That item is not part of this campaign."})
    criteria = campaign_criteria(campaign)
    stored: dict[str, Any] = {}
    if expected is not None:
        parsed = values_clean(criteria, expected, require_all=False)
        if not parsed:
            raise ValidationError({"values": "Give the expected rating on at least one criterion."})
        by_id = {c.pk: c for c in criteria}
        stored = {by_id[cid].name: _plain_value(v) for cid, v in parsed.items()}
    with transaction.atomic():
        locked = CampaignItem.objects.select_for_update().get(pk=item.pk)
        live = locked.assignments.filter(status__in=[AssignmentStatus.ACTIVE, AssignmentStatus.SUBMITTED]).count()
        was_gold = locked.is_gold
        locked.is_gold = expected is not None
        locked.gold_expected = stored
        locked.open_slots = GOLD_SLOTS - live if locked.is_gold else max(0, campaign.overlap - live)
        locked.save(update_fields=["is_gold", "gold_expected", "open_slots"])
        if was_gold != locked.is_gold:
            Campaign.objects.filter(pk=campaign.pk).update(
                gold_count=F("gold_count") + (1 if locked.is_gold else -1)
            )
    campaign.refresh_from_db()
    return locked


# --------------------------------------------------------------------------------------------------------------------
# Values on criteria


@dataclass(frozen=True)
class Value:
    number: float | None = None
    label: str = ""
    labels: tuple[str, ...] | None = None
    text: str = ""

    def fields(self) -> dict[str, Any]:
        return {
            "number": self.number, "label": self.label,
            "labels": list(self.labels) if self.labels is not None else None, "text": self.text,
        }


def _plain_value(v: Value) -> Any:
    if v.number is not None:
        return v.number
    if v.labels is not None:
        return list(v.labels)
    return v.label or v.text


def _parse_value(c: Criterion, raw: Any, field: str, errors: dict[str, str]) -> Value | None:
    """One criterion's value from form or JSON input; None when empty (checked against `required` by the caller)."""
    if raw is None or raw == "" or raw == []:
        return None
    if c.scale == Scale.LIKERT:
        number = _as_int(raw)
        if number is None or not 1 <= number <= c.levels:
            errors[field] = f"Must be a whole number from 1 to {c.levels}."
            return None
        return Value(number=float(number))
    if c.scale == Scale.BINARY:
        if raw is True or raw in (1, "1", "pass", "true"):
            return Value(number=1.0)
        if raw is False or raw in (0, "0", "fail", "false"):
            return Value(number=0.0)
        errors[field] = "Must be 1 (pass) or 0 (fail)."
        return None
    if c.scale == Scale.CATEGORICAL:
        if not isinstance(raw, str) or raw not in c.options:
            errors[field] = f"Must be one of: {', '.join(c.options)}."
            return None
        return Value(label=raw)
    if c.scale == Scale.MULTILABEL:
        labels = [raw] if isinstance(raw, str) else raw
        if not isinstance(labels, (list, tuple)) or any(not isinstance(x, str) or x not in c.options for x in labels):
            errors[field] = f"Must be a list of labels from: {', '.join(c.options)}."
            return None
        return Value(labels=tuple(o for o in c.options if o in set(labels)))
    text = clean_text(raw, field, max_chars=TEXT_ANSWER_MAX_CHARS, errors=errors)
    return Value(text=text) if text.strip() else None


def _as_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit() and len(raw) < 12:
        return int(raw.strip())
    return None


def values_clean(
    criteria: Sequence[Criterion], values: Any, *, require_all: bool = True, errors: dict[str, str] | None = None
) -> dict[int, Value]:
    """{criterion id: Value} from {criterion name: raw value}. Unknown names, out-of-range values and missing
    required criteria are errors keyed "values.<name>". Raises unless `errors` is given to collect into."""
    own = errors if errors is not None else {}
    parsed: dict[int, Value] = {}
    if not isinstance(values, Mapping):
        own["values"] = "Must be an object of {criterion name: value}."
    else:
        by_name = {c.name: c for c in criteria}
        for name in values:
            if name not in by_name:
                shown = name if isinstance(name, str) and "\x00" not in name else repr(name)
                own[f"values.{shown[:100]}"] = (
                    f"“{shown[:100]}” is not a criterion of this rubric (criteria: {', '.join(by_name)})."
                )
        for c in criteria:
            field = f"values.{c.name}"
            v = _parse_value(c, values.get(c.name), field, own)
            if v is not None:
                parsed[c.pk] = v
            elif require_all and c.required and field not in own:
                own[field] = "Required."
    if errors is None:
        _raise(own)
    return parsed


# --------------------------------------------------------------------------------------------------------------------
# The queue


def _skip_locked(qs):  # type: ignore[no-untyped-def]
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs  # SQLite: IMMEDIATE transactions serialise writers; the conditional UPDATE is the guarantee


def _lock_items(item_ids: Iterable[int]) -> None:
    """Lock campaign items before writing assignments of theirs, in id order.

    Every transaction that changes an existing assignment takes its item's lock first. On PostgreSQL a request
    inserting an (item, annotator) assignment holds the item's lock; had another transaction already updated that
    annotator's assignment of the item and then waited for the item, each would wait for the other (a deadlock:
    the unique index makes the insert wait for the update's outcome). Item first, assignment second, everywhere.
    """
    ids = sorted(set(item_ids))
    if ids and connection.features.has_select_for_update:
        list(CampaignItem.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def assignments_reclaim_expired(*, campaign: Campaign, now: datetime | None = None, limit: int = 200) -> int:
    """Give the slots of items handed out but not submitted in time back to the queue. Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        qs = Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.ACTIVE, expires_at__lt=now)
        rows = list(_skip_locked(qs.order_by("expires_at")).values_list("pk", "item_id")[:limit])
        if not rows:
            return 0
        ids = [pk for pk, _ in rows]
        _lock_items(item for _, item in rows)
        # The status condition makes this exact even without row locks: an assignment submitted meanwhile is kept.
        changed = list(
            Assignment.objects.filter(pk__in=ids, status=AssignmentStatus.ACTIVE).values_list("pk", "item_id")
        )
        Assignment.objects.filter(pk__in=[pk for pk, _ in changed]).update(status=AssignmentStatus.EXPIRED)
        for item_id, n in Counter(item for _, item in changed).items():
            CampaignItem.objects.filter(pk=item_id).update(open_slots=F("open_slots") + n)
    return len(changed)


def assignment_next(
    *, campaign: Campaign, user: AbstractBaseUser, now: datetime | None = None, known_free: bool = False
) -> Assignment | None:
    """The item this annotator should rate now: the one they hold (resume), else a new one.

    A new item is one with a free slot (fewer than k people hold or rated it) that this annotator never had. On
    PostgreSQL, candidates are locked with SKIP LOCKED so concurrent annotators take different rows without
    waiting; the slot is taken by a conditional UPDATE in the same transaction, and the database's constraints
    (open_slots >= 0; one assignment per item and annotator; one active assignment per annotator) hold even if two
    requests race. `known_free` skips looking for a held item (the caller just submitted the annotator's active
    one). The returned assignment has its item, output and example loaded. Returns None when nothing is left.
    """
    if not campaign.is_open:
        return None
    now = now or timezone.now()
    if not known_free:
        held = _held(campaign, user, now)
        if held is not None:
            return held
    reclaimed = _maybe_reclaim(campaign, now)
    for _attempt in range(NEXT_ITEM_ATTEMPTS):
        try:
            assignment = _take_next(campaign, user, now)
        except IntegrityError:
            # The same annotator asked twice at once (their other request took an item), or this item was handed
            # to them in that other request: either way the held item is the answer, else try again.
            held = _held(campaign, user, now)
            if held is not None:
                return held
            continue
        if assignment is not None:
            return assignment
        if reclaimed:
            return None
        # Nothing free: items held past their time may be all that is left; give them back and look once more.
        reclaimed = True
        if not assignments_reclaim_expired(campaign=campaign, now=now):
            return None
    return None


_RECLAIM_EVERY = timedelta(seconds=30)
_last_reclaim: dict[int, datetime] = {}


def _maybe_reclaim(campaign: Campaign, now: datetime) -> bool:
    """Reclaim expired holds at most every 30 seconds per campaign and process (and always when the queue looks
    empty, see assignment_next), so the common request does not pay for it. Returns True if it ran."""
    last = _last_reclaim.get(campaign.pk)
    if last is not None and abs(now - last) < _RECLAIM_EVERY:
        return False
    _last_reclaim[campaign.pk] = now
    assignments_reclaim_expired(campaign=campaign, now=now)
    return True


def _take_next(campaign: Campaign, user: AbstractBaseUser, now: datetime) -> Assignment | None:
    if fastpath.enabled():
        return fastpath.take_next(
            campaign_id=campaign.pk, user_id=user.pk, token=new_token(), now=now, minutes=campaign.assignment_minutes
        )
    mine = Assignment.objects.filter(item=OuterRef("pk"), annotator=user.pk)
    with transaction.atomic():
        candidates = CampaignItem.objects.filter(campaign=campaign, open_slots__gt=0).filter(~Exists(mine))
        item_id = _skip_locked(candidates.order_by("position")).values_list("pk", flat=True).first()
        if item_id is None:
            return None
        if not CampaignItem.objects.filter(pk=item_id, open_slots__gt=0).update(open_slots=F("open_slots") - 1):
            raise IntegrityError("the last slot was taken meanwhile")  # retried by the caller
        created = Assignment.objects.create(
            campaign=campaign, item_id=item_id, annotator=user, assigned_at=now,
            expires_at=now + timedelta(minutes=campaign.assignment_minutes),
        )
    created.item = CampaignItem.objects.select_related("output__example").get(pk=item_id)
    return created


def _held(campaign: Campaign, user: AbstractBaseUser, now: datetime) -> Assignment | None:
    held = (
        Assignment.objects.filter(campaign=campaign, annotator=user.pk, status=AssignmentStatus.ACTIVE)
        .select_related("item__output__example")
        .first()
    )
    if held is None:
        return None
    if held.expires_at < now + timedelta(minutes=campaign.assignment_minutes) / 2:
        # Coming back to it renews the hold; if it was reclaimed in the meantime the update finds nothing.
        expires = now + timedelta(minutes=campaign.assignment_minutes)
        if not Assignment.objects.filter(pk=held.pk, status=AssignmentStatus.ACTIVE).update(expires_at=expires):
            return None
        held.expires_at = expires
    return held


def assignment_skip(*, assignment: Assignment, user: AbstractBaseUser) -> bool:
    """Give an item back unrated; this annotator will not be offered it again. False if it was not active."""
    if assignment.annotator_id != user.pk:
        raise ValidationError({"assignment": "This item is not assigned to you."})
    with transaction.atomic():
        _lock_items([assignment.item_id])
        if not Assignment.objects.filter(pk=assignment.pk, status=AssignmentStatus.ACTIVE).update(
            status=AssignmentStatus.SKIPPED
        ):
            return False
        CampaignItem.objects.filter(pk=assignment.item_id).update(open_slots=F("open_slots") + 1)
    assignment.status = AssignmentStatus.SKIPPED
    return True


# --------------------------------------------------------------------------------------------------------------------
# Ratings


@dataclass(frozen=True)
class SubmitResult:
    rating_id: int
    created: bool  # False: a repeat of a submit already stored (nothing changed) or a revision
    revised: bool
    was_active: bool  # the annotator's active item was submitted, so they hold none now


def rating_submit(
    *,
    campaign: Campaign,
    user: AbstractBaseUser,
    assignment_token: Any,
    values: Any,
    comment: Any = "",
    corrected_text: Any = None,
    seconds_on_item: Any = 0.0,
    submission_token: Any = "",
    now: datetime | None = None,
) -> SubmitResult:
    """Store a rating (idempotent) or revise one.

    The assignment is the unique key: one rating per assignment. Repeating a submit with the same
    `submission_token` (a double click, a retried request) returns the stored rating and changes nothing; a new
    token on a submitted assignment revises its values. `corrected_text` (None: leave as is) stores an edit of the
    output next to its original; text equal to the original removes the correction. All checks run before anything
    is written; the rating is committed in the request, with no broker involved.
    """
    now = now or timezone.now()
    errors: dict[str, str] = {}
    token = clean_text(assignment_token, "assignment", max_chars=64, errors=errors, required=True)
    comment = clean_text(comment, "comment", max_chars=COMMENT_MAX_CHARS, errors=errors)
    submission = clean_text(submission_token, "submission_token", max_chars=64, errors=errors) or "-"
    correction: str | None = None
    if corrected_text is not None:
        correction = clean_text(corrected_text, "corrected_text", max_chars=CORRECTION_MAX_CHARS, errors=errors)
    seconds = _seconds(seconds_on_item, errors)
    criteria = campaign_criteria(campaign)
    parsed = values_clean(criteria, values, errors=errors)
    if not errors and campaign.is_open and correction is None and fastpath.enabled():
        done = fastpath.first_submit(
            campaign_id=campaign.pk, user_id=user.pk, rubric_version_id=campaign.rubric_version_id, token=token,
            submission=submission, comment=comment, seconds=seconds, values=parsed, now=now,
        )
        if done is not None:
            rating_id, item_id, count, gold = done
            if not gold and count >= max(2, campaign.overlap):
                _flag_first_fill(campaign, item_id)
            return SubmitResult(rating_id, created=True, revised=False, was_active=True)
    assignment = None
    if "assignment" not in errors:
        assignment = Assignment.objects.filter(campaign=campaign, token=token).first()
        if assignment is None or assignment.annotator_id != user.pk:
            errors["assignment"] = "This item is not assigned to you."
        elif not campaign.is_open:
            errors["assignment"] = "This campaign is closed; ratings can no longer change."
    _raise(errors)
    assert assignment is not None

    with transaction.atomic():
        _lock_items([assignment.item_id])
        assignment = Assignment.objects.select_for_update().select_related("item__output").get(pk=assignment.pk)
        was_active = assignment.status == AssignmentStatus.ACTIVE
        existing = Rating.objects.filter(assignment=assignment).first()
        if existing is not None and existing.submission_token == submission:
            return SubmitResult(existing.pk, created=False, revised=False, was_active=False)
        item = assignment.item
        # Back after skipping or after the hold ran out: only if a slot is still free, else the overlap breaks.
        if assignment.status in (AssignmentStatus.SKIPPED, AssignmentStatus.EXPIRED) and not (
            CampaignItem.objects.filter(pk=item.pk, open_slots__gt=0).update(open_slots=F("open_slots") - 1)
        ):
            raise ValidationError({"assignment": (
                "Time for this item ran out and other people have rated it since; your rating is not needed. "
                "Go on to the next item."
            )})
        if existing is None:
            rating = Rating.objects.create(
                assignment=assignment, campaign=campaign, item=item, annotator=user,
                rubric_version_id=campaign.rubric_version_id, submission_token=submission, comment=comment,
                seconds_on_item=seconds, seconds_server=max(0.0, (now - assignment.assigned_at).total_seconds()),
            )
            Assignment.objects.filter(pk=assignment.pk).update(status=AssignmentStatus.SUBMITTED, submitted_at=now)
            CampaignItem.objects.filter(pk=item.pk).update(ratings_count=F("ratings_count") + 1)
        else:
            rating = existing
            rating.values.all().delete()
            rating.comment = comment
            rating.submission_token = submission
            rating.seconds_on_item = rating.seconds_on_item + seconds
            rating.revisions += 1
            rating.save(update_fields=["comment", "submission_token", "seconds_on_item", "revisions", "updated_at"])
        RatingValue.objects.bulk_create(
            [RatingValue(rating=rating, criterion_id=cid, **v.fields()) for cid, v in parsed.items()]
        )
        if correction is not None:
            original = item.output.text
            if correction.strip() and correction != original:
                Correction.objects.update_or_create(
                    rating=rating, defaults={"item": item, "original_text": original, "edited_text": correction}
                )
            else:
                Correction.objects.filter(rating=rating).delete()
        if not item.is_gold:
            _flag_if_disagreeing(campaign, item.pk)
    return SubmitResult(rating.pk, created=existing is None, revised=existing is not None, was_active=was_active)


def _seconds(value: Any, errors: dict[str, str]) -> float:
    try:
        seconds = float(value or 0)
    except (TypeError, ValueError):
        errors["seconds_on_item"] = "Must be a number of seconds."
        return 0.0
    if not math.isfinite(seconds) or seconds < 0:
        errors["seconds_on_item"] = "Must be a number of seconds, 0 or more."
        return 0.0
    return min(seconds, 24 * 3600.0)


# --------------------------------------------------------------------------------------------------------------------
# Disagreement and adjudication


def _agreement_value(c: Criterion, v: RatingValue | AdjudicatedValue) -> Any:
    if c.is_numeric:
        return v.number
    if c.scale == Scale.MULTILABEL:
        return "|".join(v.labels or [])
    return v.label or None


def item_disagreements(campaign: Campaign, item_id: int) -> list[dict[str, Any]]:
    """Criteria whose ratings of one item spread beyond the campaign's thresholds: [{criterion, spread}]."""
    criteria = [c for c in campaign_criteria(campaign) if c.level is not None]
    by_criterion: dict[int, list[Any]] = defaultdict(list)
    by_id = {c.pk: c for c in criteria}
    for v in RatingValue.objects.filter(rating__item_id=item_id, criterion_id__in=list(by_id)):
        by_criterion[v.criterion_id].append(_agreement_value(by_id[v.criterion_id], v))
    out: list[dict[str, Any]] = []
    for c in criteria:
        ratings = [x for x in by_criterion.get(c.pk, []) if x is not None]
        if len(ratings) < 2:
            continue
        numeric = c.is_numeric and c.scale == Scale.LIKERT
        level = "interval" if numeric else "nominal"
        threshold = campaign.likert_threshold if numeric else campaign.nominal_threshold
        d = disagreement([ratings], threshold=threshold, level=level)
        if bool(d.flagged[0]):
            out.append({"criterion": c.name, "spread": round(float(d.score[0]), 4)})
    return out


def _flag_first_fill(campaign: Campaign, item_id: int) -> None:
    """After the rating that filled an item (fast path, committed): check for disagreement without locks, and take
    the locked path only when something disagrees. No adjudication can exist yet for a first fill."""
    if item_disagreements(campaign, item_id):
        with transaction.atomic():
            _flag_if_disagreeing(campaign, item_id)


def _flag_if_disagreeing(campaign: Campaign, item_id: int) -> None:
    item = CampaignItem.objects.select_for_update().get(pk=item_id)
    if item.ratings_count < max(2, campaign.overlap):
        return
    flagged = item_disagreements(campaign, item_id)
    adjudication = Adjudication.objects.filter(item=item).first()
    if flagged:
        if adjudication is None:
            Adjudication.objects.create(item=item, campaign=campaign, criteria=flagged)
        elif adjudication.status == AdjudicationStatus.OPEN:
            Adjudication.objects.filter(pk=adjudication.pk).update(criteria=flagged)
        CampaignItem.objects.filter(pk=item.pk).update(needs_adjudication=True)
    elif adjudication is not None and adjudication.status == AdjudicationStatus.OPEN:
        # A revision brought the raters together: nothing left for a reviewer to decide.
        adjudication.delete()
        CampaignItem.objects.filter(pk=item.pk).update(needs_adjudication=False)


def campaign_reflag(*, campaign: Campaign) -> int:
    """Re-check every fully rated item against the current thresholds. Returns the number of open adjudications."""
    ids = list(
        campaign.items.filter(is_gold=False, ratings_count__gte=campaign.overlap).values_list("pk", flat=True)
    )
    for item_id in ids:
        with transaction.atomic():
            _flag_if_disagreeing(campaign, item_id)
    return campaign.adjudications.filter(status=AdjudicationStatus.OPEN).count()


def campaign_update_thresholds(*, campaign: Campaign, likert_threshold: Any, nominal_threshold: Any) -> Campaign:
    errors: dict[str, str] = {}
    values: dict[str, float] = {}
    for field, raw in (("likert_threshold", likert_threshold), ("nominal_threshold", nominal_threshold)):
        try:
            x = float(raw)
            if not math.isfinite(x) or x < 0:
                raise ValueError
            values[field] = x
        except (TypeError, ValueError):
            errors[field] = "A number of 0 or more."
    _raise(errors)
    Campaign.objects.filter(pk=campaign.pk).update(**values)
    campaign.refresh_from_db()
    campaign_reflag(campaign=campaign)
    return campaign


def adjudication_resolve(
    *, adjudication: Adjudication, reviewer: AbstractBaseUser, values: Any, note: Any = ""
) -> Adjudication:
    """Record a reviewer's final values for the disagreeing criteria (others may be given too). Final: these
    replace the annotators' ratings of that item in results and exports, and are marked adjudicated there."""
    errors: dict[str, str] = {}
    note = clean_text(note, "note", max_chars=COMMENT_MAX_CHARS, errors=errors)
    campaign = adjudication.campaign
    criteria = campaign_criteria(campaign)
    parsed = values_clean(criteria, values, require_all=False, errors=errors)
    by_name = {c.name: c for c in criteria}
    for entry in adjudication.criteria:
        c = by_name.get(entry["criterion"])
        if c is not None and c.pk not in parsed and f"values.{c.name}" not in errors:
            errors[f"values.{c.name}"] = "Required: the raters disagreed on this criterion."
    _raise(errors)
    with transaction.atomic():
        locked = Adjudication.objects.select_for_update().get(pk=adjudication.pk)
        locked.values.all().delete()
        AdjudicatedValue.objects.bulk_create(
            [AdjudicatedValue(adjudication=locked, criterion_id=cid, **v.fields()) for cid, v in parsed.items()]
        )
        locked.status = AdjudicationStatus.RESOLVED
        locked.reviewer = reviewer
        locked.note = note
        locked.resolved_at = timezone.now()
        locked.save(update_fields=["status", "reviewer", "note", "resolved_at"])
        CampaignItem.objects.filter(pk=locked.item_id).update(needs_adjudication=False)
    return locked

