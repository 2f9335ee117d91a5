"""Blind pairwise comparisons: campaigns, their contestants, prompts, candidate texts, comparisons, assignments, votes.

Vocabulary
- A *campaign* compares two or more *contestants* on the same prompts. A contestant is a generation run of one model
  version (its outputs are the candidates), or, for imported preference data, a pseudo source ("chosen" /
  "rejected" by default) with no model version.
- A *prompt* is one eval example (or one imported record); a *candidate* is one contestant's text for that prompt.
- A *comparison* is one prompt and two candidates from different contestants. Its sides (which candidate is shown as
  A, on the left) are drawn at random when the campaign is created and stored, so every annotator sees the same
  layout and position bias can be measured. Annotators only ever see its random `token`.
- An *assignment* is a comparison served to one annotator: it reserves one of the comparison's `overlap` slots until
  the annotator votes, skips, or leaves it longer than `claim_minutes`.
- A *vote* is A (left), B (right), tie or both bad, optionally per rubric criterion, with a reason. Imported
  preference records carry their dataset's own judgement as a vote of origin "import" (no annotator), so every
  preference in EvalHub, ours or imported, reaches the DPO export the same way (winner chosen, loser rejected).

Model identity (`Contestant.model_version`, `generation_run`, `external_name`) is for leads only: nothing an
annotator receives names a contestant, a run, an output id or a model version.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class CampaignStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class CampaignKind(models.TextChoices):
    GENERATED = "generated", "Outputs of generation runs"
    IMPORTED = "imported", "Imported preference data"


class Scheduling(models.TextChoices):
    UNIFORM = "uniform", "Uniform: every pair of versions equally often"
    ACTIVE = "active", "Active: the pair whose ranking is most uncertain first"


class BothBadAs(models.TextChoices):
    TIE = "tie", "Count as a tie"
    EXCLUDE = "exclude", "Leave out of the ratings"


class Choice(models.TextChoices):
    """A vote, relative to the sides as shown: A is the left response, B the right one."""

    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both are bad"


CRITERION_CHOICES = (Choice.A, Choice.B, Choice.TIE)


class Campaign(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="arena_campaigns")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=CampaignKind.choices, default=CampaignKind.GENERATED)
    status = models.CharField(max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.OPEN, db_index=True)
    instructions = models.TextField(blank=True, help_text="Shown to annotators above every comparison.")
    eval_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="the eval set whose outputs are compared (generated campaigns)",
    )
    source_name = models.CharField(max_length=255, blank=True, help_text="imported campaigns: the file imported")
    scheduling = models.CharField(max_length=10, choices=Scheduling.choices, default=Scheduling.UNIFORM)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="votes wanted per comparison, each by a different annotator")
    stop_when_decided = models.BooleanField(
        default=True, help_text="stop serving a pair of versions once the interval of their difference excludes zero"
    )
    confidence = models.FloatField(default=0.95)
    min_votes_to_decide = models.PositiveIntegerField(
        default=20, help_text="a pair is never called decided on fewer votes than this (bootstrap intervals on a "
                              "handful of unanimous votes are too narrow to trust)",
    )
    criteria = models.JSONField(default=list, blank=True, help_text="optional rubric criteria judged A / B / tie")
    both_bad_as = models.CharField(max_length=10, choices=BothBadAs.choices, default=BothBadAs.TIE)
    reg = models.FloatField(
        default=0.05, help_text="L2 penalty on log-strengths used only while maximum-likelihood ratings do not exist"
    )
    claim_minutes = models.PositiveIntegerField(default=30, help_text="how long a served comparison is kept for its annotator")
    seed = models.BigIntegerField(default=0)
    annotators = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", help_text="who may vote; empty = every project member"
    )
    state = models.JSONField(default=dict, blank=True, help_text="scheduler cache: bootstrap ratings and decided pairs")
    state_n_votes = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=CampaignStatus.values), name="arena_campaign_status_valid"),
            models.CheckConstraint(condition=models.Q(kind__in=CampaignKind.values), name="arena_campaign_kind_valid"),
            models.CheckConstraint(condition=models.Q(scheduling__in=Scheduling.values), name="arena_campaign_scheduling_valid"),
            models.CheckConstraint(condition=models.Q(overlap__gte=1), name="arena_campaign_overlap_positive"),
            models.CheckConstraint(condition=models.Q(confidence__gt=0.5, confidence__lt=1), name="arena_campaign_confidence_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open(self) -> bool:
        return self.status == CampaignStatus.OPEN


class Contestant(models.Model):
    """One side of the competition. Only leads may see what it is."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contestants")
    index = models.PositiveSmallIntegerField(help_text="0..K-1: the model index in the statistics")
    model_version = models.ForeignKey("tuning.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    generation_run = models.ForeignKey("generation.GenerationRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    external_name = models.CharField(max_length=200, blank=True, help_text="imported sources, e.g. chosen / rejected")

    class Meta:
        ordering = ["campaign_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="arena_contestant_unique_index"),
            models.UniqueConstraint(
                fields=["campaign", "model_version"], condition=models.Q(model_version__isnull=False),
                name="arena_contestant_unique_version",
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The lead-facing name."""
        if self.model_version_id is not None:
            return str(self.model_version)
        return self.external_name or f"source {self.index + 1}"


class Prompt(models.Model):
    """One eval example (generated campaigns) or one imported record. Attributes are copied from the example (which
    is immutable) so slicing the leaderboard needs no join into the datasets tables."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="prompts")
    example = models.ForeignKey("datasets.Example", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True, help_text="imported prompts (generated ones read the example)")
    messages = models.JSONField(null=True, blank=True, help_text="imported conversational prompts: [{role, content}]")
    attributes = models.JSONField(default=dict, blank=True)
    source_line = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["campaign_id", "id"]

    def __str__(self) -> str:
        return f"Prompt #{self.pk}"

    def turns(self) -> list[dict[str, str]]:
        """The prompt as chat turns for display (a plain prompt is one user turn)."""
        if self.example_id is not None:
            example = self.example
            return [{"role": m.get("role", ""), "content": m.get("content", "")} for m in example.chat_messages()]
        if self.messages:
            return [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in self.messages]
        return [{"role": "user", "content": self.text}]

    @property
    def prompt_text(self) -> str:
        if self.example_id is not None:
            return self.example.prompt_text
        return self.text


class Candidate(models.Model):
    """One contestant's response to one prompt: a generated output, or an imported text."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    contestant = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="candidates")
    output = models.ForeignKey("generation.Output", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(blank=True, help_text="imported responses (generated ones read the output)")

    class Meta:
        ordering = ["prompt_id", "contestant_id"]
        constraints = [models.UniqueConstraint(fields=["prompt", "contestant"], name="arena_candidate_unique")]

    def __str__(self) -> str:
        return f"Candidate #{self.pk}"

    @property
    def response_text(self) -> str:
        return self.output.text if self.output_id is not None else self.text


class Comparison(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    token = models.CharField(max_length=32, unique=True, help_text="the only name annotators ever see")
    left = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+", help_text="shown as A")
    right = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+", help_text="shown as B")
    pair_lo = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="+")
    pair_hi = models.ForeignKey(Contestant, on_delete=models.CASCADE, related_name="+")
    order_key = models.PositiveIntegerField(help_text="random: the serving order among equally covered comparisons")
    n_taken = models.PositiveSmallIntegerField(default=0, help_text="votes plus live assignments (at most overlap)")
    n_votes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["campaign_id", "order_key"]
        indexes = [models.Index(fields=["campaign", "pair_lo", "pair_hi", "n_taken"], name="arena_comparison_serve")]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "pair_lo", "pair_hi"], name="arena_comparison_unique_pair"),
            models.CheckConstraint(condition=~models.Q(pair_lo=models.F("pair_hi")), name="arena_comparison_two_sides"),
        ]

    def __str__(self) -> str:
        return f"Comparison {self.token}"


class AssignmentStatus(models.TextChoices):
    OPEN = "open", "Being judged"
    VOTED = "voted", "Voted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Left too long; slot released"


class Assignment(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.OPEN)
    served_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["served_at", "id"]
        indexes = [models.Index(fields=["campaign", "status", "expires_at"], name="arena_assignment_expiry")]
        constraints = [
            # The rule "no annotator judges the same pair (same prompt, same two versions) twice".
            models.UniqueConstraint(fields=["comparison", "annotator"], name="arena_assignment_once_per_annotator"),
            # One comparison in hand at a time: a double-clicked "next" cannot reserve two slots.
            models.UniqueConstraint(
                fields=["campaign", "annotator"], condition=models.Q(status="open"), name="arena_assignment_one_open"
            ),
            models.CheckConstraint(condition=models.Q(status__in=AssignmentStatus.values), name="arena_assignment_status_valid"),
        ]


class VoteOrigin(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    IMPORT = "import", "Imported label"


class Vote(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="votes")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="votes")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    assignment = models.OneToOneField(Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="vote")
    origin = models.CharField(max_length=10, choices=VoteOrigin.choices, default=VoteOrigin.ANNOTATOR)
    choice = models.CharField(max_length=10, choices=Choice.choices)
    criteria = models.JSONField(default=dict, blank=True, help_text="criterion -> a / b / tie")
    reason = models.TextField(blank=True)
    seconds_spent = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["campaign", "origin"], name="arena_vote_campaign_origin")]
        constraints = [
            models.UniqueConstraint(
                fields=["comparison", "annotator"], condition=models.Q(annotator__isnull=False),
                name="arena_vote_once_per_annotator",
            ),
            models.CheckConstraint(condition=models.Q(choice__in=Choice.values), name="arena_vote_choice_valid"),
            models.CheckConstraint(condition=models.Q(origin__in=VoteOrigin.values), name="arena_vote_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"Vote {self.choice} on {self.comparison_id}"
