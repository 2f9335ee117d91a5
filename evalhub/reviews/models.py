"""Rubric reviews: rubrics and their versions, campaigns, the annotator queue (assignments), ratings, corrections
and adjudications.

Blinding: annotators reach an output only through an `Assignment.token` (or a reviewer through
`CampaignItem.token`), random strings that cannot be joined to an output id or a model version.

The overlap k is enforced by the database: `CampaignItem.open_slots` starts at k and every assignment takes a slot in
the same transaction that creates it; a check constraint keeps it from going below zero.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

COMMENT_MAX_CHARS = 10_000
TEXT_ANSWER_MAX_CHARS = 10_000
CORRECTION_MAX_CHARS = 100_000
MAX_LEVELS = 9  # one digit key per level
MAX_OPTIONS = 9


def new_token() -> str:
    """An opaque identifier for URLs and pages: 128 random bits, nothing derived from a database id."""
    return secrets.token_urlsafe(16)


class Scale(models.TextChoices):
    LIKERT = "likert", "Likert scale 1..N"
    BINARY = "binary", "Pass / fail"
    CATEGORICAL = "categorical", "One label of several"
    MULTILABEL = "multilabel", "Any labels of several"
    TEXT = "text", "Free text"


class AgreementLevel(models.TextChoices):
    AUTO = "", "Fitting the scale (ordinal for Likert, nominal for labels)"
    ORDINAL = "ordinal", "Ordinal"
    INTERVAL = "interval", "Interval"
    NOMINAL = "nominal", "Nominal"


class Rubric(models.Model):
    """A named rubric of a project. Its criteria live in versions; the latest version is the one being edited."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="rubrics")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    copied_from_template = models.CharField(max_length=50, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="rubric_unique_name_per_project")]

    def __str__(self) -> str:
        return self.name


class RubricVersion(models.Model):
    """A fixed list of criteria. Once a campaign uses it (or it has ratings) it is locked: edits make a new version,
    so ratings of one campaign always refer to one set of criteria and anchors."""

    rubric = models.ForeignKey(Rubric, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rubric_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["rubric", "number"], name="rubric_version_unique_number")]

    def __str__(self) -> str:
        return f"{self.rubric.name} v{self.number}"


class Criterion(models.Model):
    version = models.ForeignKey(RubricVersion, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100, help_text="shown to raters and used as the key in the API and exports")
    description = models.TextField(blank=True)
    scale = models.CharField(max_length=20, choices=Scale.choices)
    anchors = models.JSONField(
        default=list, blank=True,
        help_text="Likert: the text of every level, level 1 first (N = its length); binary: [pass text, fail text]",
    )
    options = models.JSONField(default=list, blank=True, help_text="labels of a categorical or multi-label criterion")
    weight = models.FloatField(default=1.0)
    required = models.BooleanField(default=True)
    agreement_level = models.CharField(max_length=10, choices=AgreementLevel.choices, blank=True, default="")

    class Meta:
        ordering = ["version_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="criterion_unique_position"),
            models.UniqueConstraint(fields=["version", "name"], name="criterion_unique_name"),
            models.CheckConstraint(condition=Q(scale__in=Scale.values), name="criterion_scale_valid"),
            models.CheckConstraint(condition=Q(weight__gte=0), name="criterion_weight_nonnegative"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def levels(self) -> int:
        return len(self.anchors) if self.scale == Scale.LIKERT else 0

    @property
    def scale_label(self) -> str:
        """The scale as a rater reads it: a Likert criterion says its real range (e.g. "Likert 1–5"), not "1..N"."""
        if self.scale == Scale.LIKERT and self.levels:
            return f"Likert 1–{self.levels}"
        return self.get_scale_display()

    @property
    def is_numeric(self) -> bool:
        return self.scale in (Scale.LIKERT, Scale.BINARY)

    @property
    def level(self) -> str | None:
        """Krippendorff level of measurement for agreement (None: free text has no agreement)."""
        if self.scale == Scale.TEXT:
            return None
        if self.scale == Scale.LIKERT:
            return self.agreement_level or "ordinal"
        return "nominal"

    def value_domain(self) -> list[float] | list[str] | None:
        if self.scale == Scale.LIKERT:
            return [float(i) for i in range(1, self.levels + 1)]
        if self.scale == Scale.BINARY:
            return [0.0, 1.0]
        if self.scale == Scale.CATEGORICAL:
            return list(self.options)
        return None

    def choices(self) -> list[tuple[str, str, str]]:
        """(digit key, submitted value, text) for every choice, as the rating page shows them."""
        if self.scale == Scale.LIKERT:
            return [(str(i), str(i), text) for i, text in enumerate(self.anchors, start=1)]
        if self.scale == Scale.BINARY:
            texts = list(self.anchors) + ["", ""]
            return [("1", "1", texts[0] or "Pass"), ("0", "0", texts[1] or "Fail")]
        if self.scale in (Scale.CATEGORICAL, Scale.MULTILABEL):
            return [(str(i), opt, opt) for i, opt in enumerate(self.options, start=1)]
        return []


class CampaignStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Campaign(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="review_campaigns")
    name = models.CharField(max_length=200)
    rubric_version = models.ForeignKey(RubricVersion, on_delete=models.PROTECT, related_name="campaigns")
    overlap = models.PositiveSmallIntegerField(default=3, help_text="ratings wanted per output (k)")
    guidelines_markdown = models.TextField(blank=True)
    guidelines_html = models.TextField(blank=True, help_text="rendered from markdown and sanitised with nh3")
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.OPEN)
    show_reference = models.BooleanField(default=False)
    assignment_minutes = models.PositiveIntegerField(default=30, help_text="an unsubmitted item goes back after this")
    likert_threshold = models.FloatField(
        default=1.0, help_text="send to a reviewer when a numeric criterion's ratings span more than this"
    )
    nominal_threshold = models.FloatField(
        default=0.34, help_text="send to a reviewer when 1 - share of the most common label exceeds this"
    )
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="review_campaigns")
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="review_campaigns")
    sampling = models.JSONField(default=dict, blank=True, help_text="runs, sample size, stratification, seed")
    item_count = models.PositiveIntegerField(default=0)
    gold_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
            models.CheckConstraint(condition=Q(status__in=CampaignStatus.values), name="campaign_status_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status == CampaignStatus.OPEN

    @property
    def ratings_wanted(self) -> int:
        return (self.item_count - self.gold_count) * self.overlap


class CampaignItem(models.Model):
    """One output to rate in a campaign. `open_slots` = k minus live assignments; gold items are rated by everyone."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items")
    output = models.ForeignKey("generation.Output", on_delete=models.PROTECT, related_name="review_items")
    token = models.CharField(max_length=32, unique=True, default=new_token)
    position = models.PositiveIntegerField(help_text="random order, so outputs of one model never come in a row")
    open_slots = models.IntegerField()
    ratings_count = models.PositiveIntegerField(default=0)
    is_gold = models.BooleanField(default=False)
    gold_expected = models.JSONField(default=dict, blank=True, help_text="{criterion name: expected value}")
    needs_adjudication = models.BooleanField(default=False)

    class Meta:
        ordering = ["campaign_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "output"], name="campaign_item_unique_output"),
            models.UniqueConstraint(fields=["campaign", "position"], name="campaign_item_unique_position"),
            models.CheckConstraint(condition=Q(open_slots__gte=0), name="campaign_item_slots_nonnegative"),
        ]
        indexes = [
            # The queue's scan: items of a campaign that still have a slot, in order.
            models.Index(
                fields=["campaign", "position"], condition=Q(open_slots__gt=0), name="campaign_item_open_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"item {self.token}"


class AssignmentStatus(models.TextChoices):
    ACTIVE = "active", "Being rated"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"


class Assignment(models.Model):
    """An item handed to one annotator. Unique per (item, annotator): nobody rates the same output twice."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_assignments")
    token = models.CharField(max_length=32, unique=True, default=new_token)
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.ACTIVE)
    assigned_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["assigned_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_unique_item_annotator"),
            # One item at a time per annotator and campaign: two tabs asking at once get the same item.
            models.UniqueConstraint(
                fields=["campaign", "annotator"], condition=Q(status="active"), name="assignment_one_active"
            ),
            models.CheckConstraint(condition=Q(status__in=AssignmentStatus.values), name="assignment_status_valid"),
        ]
        indexes = [
            models.Index(fields=["campaign", "annotator", "status"], name="assignment_annotator_idx"),
            models.Index(
                fields=["campaign", "expires_at"], condition=Q(status="active"), name="assignment_active_expiry_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"assignment {self.token}"


class Rating(models.Model):
    """One annotator's rating of one item. One per assignment, so a double submit cannot store two."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="ratings")
    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="ratings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_ratings")
    rubric_version = models.ForeignKey(RubricVersion, on_delete=models.PROTECT, related_name="ratings")
    submission_token = models.CharField(max_length=64, help_text="client-generated; the same token twice is one submit")
    comment = models.TextField(blank=True)
    seconds_on_item = models.FloatField(default=0, help_text="time the page was in front of the annotator")
    seconds_server = models.FloatField(default=0, help_text="time from handing out the item to the first submit")
    revisions = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["campaign", "annotator"], name="rating_campaign_annotator_idx")]


class ValueFields(models.Model):
    """A value on one criterion: a number (Likert level, binary 1/0), one label, several labels, or text."""

    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="+")
    number = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=200, blank=True)
    labels = models.JSONField(null=True, blank=True)
    text = models.TextField(blank=True)

    class Meta:
        abstract = True

    def display(self) -> str:
        if self.number is not None:
            if self.criterion.scale == Scale.BINARY:
                return "pass" if self.number >= 1 else "fail"
            return f"{self.number:g}"
        if self.labels is not None:
            return ", ".join(self.labels)
        return self.label or self.text


class RatingValue(ValueFields):
    rating = models.ForeignKey(Rating, on_delete=models.CASCADE, related_name="values")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["rating", "criterion"], name="rating_value_unique")]


class Correction(models.Model):
    """An annotator's edit of the output, kept next to the original text. Raw material for SFT data."""

    rating = models.OneToOneField(Rating, on_delete=models.CASCADE, related_name="correction")
    item = models.ForeignKey(CampaignItem, on_delete=models.CASCADE, related_name="corrections")
    original_text = models.TextField()
    edited_text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]


class AdjudicationStatus(models.TextChoices):
    OPEN = "open", "Waiting for a reviewer"
    RESOLVED = "resolved", "Adjudicated"


class Adjudication(models.Model):
    """Ratings of an item disagreed beyond the campaign's threshold; a reviewer's values are final."""

    item = models.OneToOneField(CampaignItem, on_delete=models.CASCADE, related_name="adjudication")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="adjudications")
    status = models.CharField(max_length=10, choices=AdjudicationStatus.choices, default=AdjudicationStatus.OPEN)
    criteria = models.JSONField(default=list, help_text="names of the criteria that disagreed, with their spread")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=AdjudicationStatus.values), name="adjudication_status_valid")
        ]


class AdjudicatedValue(ValueFields):
    adjudication = models.ForeignKey(Adjudication, on_delete=models.CASCADE, related_name="values")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["adjudication", "criterion"], name="adjudicated_value_unique")]
