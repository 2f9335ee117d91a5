"""Datasets, their immutable versions and examples, quality reports, and curation (labeling) queues."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Dataset(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="dataset_unique_name_per_project")]

    def __str__(self) -> str:
        return self.name


class VersionSource(models.TextChoices):
    UPLOAD = "upload", "Upload"
    CURATION = "curation", "Curation"
    SPLIT = "split", "Split"
    REBALANCE = "rebalance", "Rebalance"
    FEEDBACK = "feedback", "Feedback export"
    DEMO = "demo", "Demo data"


class VersionKind(models.TextChoices):
    EXAMPLES = "examples", "Examples (prompt, reference)"
    PREFERENCE = "preference", "Preference pairs (prompt, chosen, rejected)"


class DatasetVersion(models.Model):
    """Immutable. Every training run, export and metric run names the exact version it used."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    source = models.CharField(max_length=20, choices=VersionSource.choices)
    kind = models.CharField(max_length=20, choices=VersionKind.choices, default=VersionKind.EXAMPLES)
    split_name = models.CharField(max_length=20, blank=True, help_text="train / validation / eval when made by a split")
    content_hash = models.CharField(max_length=64, db_index=True)
    row_count = models.PositiveIntegerField()
    file_name = models.CharField(max_length=255, blank=True)
    file_format = models.CharField(max_length=20, blank=True)
    mapping = models.JSONField(default=dict, blank=True)
    attribute_names = models.JSONField(default=list, blank=True)
    has_reference = models.BooleanField(default=False)
    has_label = models.BooleanField(default=False)
    change_summary = models.JSONField(default=dict, blank=True, help_text="what changed relative to the parent")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="version_unique_number")]

    def __str__(self) -> str:
        suffix = f" ({self.split_name})" if self.split_name else ""
        return f"{self.dataset.name} v{self.number}{suffix}"

    @property
    def label(self) -> str:
        return str(self)

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("DatasetVersion is immutable; create a new version instead")
        super().save(*args, **kwargs)


class Example(models.Model):
    """One row of a version. Immutable like its version; changes make a new version."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="examples")
    index = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200, blank=True)
    prompt = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    reference = models.TextField(blank=True, help_text="the target answer; in preference versions, the chosen one")
    rejected = models.TextField(blank=True, help_text="preference versions only: the rejected answer")
    label = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    source_line = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["version_id", "index"]
        constraints = [models.UniqueConstraint(fields=["version", "index"], name="example_unique_index")]

    def __str__(self) -> str:
        return f"#{self.index} of {self.version_id}"

    def chat_messages(self) -> list[dict[str, str]]:
        """The prompt as chat messages (without the reference answer)."""
        if self.messages:
            msgs = list(self.messages)
            if msgs and msgs[-1].get("role") == "assistant":
                msgs = msgs[:-1]
            return msgs
        return [{"role": "user", "content": self.prompt}]

    @property
    def prompt_text(self) -> str:
        if self.prompt:
            return self.prompt
        return "\n\n".join(f"{m.get('role')}: {m.get('content')}" for m in self.chat_messages())


class QualityReport(models.Model):
    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="quality_reports")
    compare_to = models.ForeignKey(DatasetVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    job = models.OneToOneField("jobs.Job", on_delete=models.CASCADE, related_name="quality_report")
    report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class CurationQueue(models.Model):
    """Annotators accept, reject or fix examples of one version; the lead turns the result into a new version."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="curation_queues")
    name = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    label_choices = models.JSONField(default=list, blank=True)
    claim_minutes = models.PositiveIntegerField(
        default=15, help_text="How long an example shown to one annotator is kept from the others."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    result_version = models.ForeignKey(DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class CurationItem(models.Model):
    class Decision(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPT = "accept", "Accept"
        REJECT = "reject", "Reject"
        FIX = "fix", "Fix"

    queue = models.ForeignKey(CurationQueue, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()
    decision = models.CharField(max_length=10, choices=Decision.choices, default=Decision.PENDING, db_index=True)
    label = models.CharField(max_length=200, blank=True)
    fixed_prompt = models.TextField(blank=True)
    fixed_reference = models.TextField(blank=True)
    comment = models.TextField(blank=True)
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    seconds_spent = models.FloatField(default=0)

    class Meta:
        ordering = ["queue_id", "position"]
        indexes = [models.Index(fields=["queue", "decision", "position"], name="curation_item_next")]
        constraints = [
            models.UniqueConstraint(fields=["queue", "example"], name="curation_item_unique_example"),
            models.UniqueConstraint(fields=["queue", "position"], name="curation_item_unique_position"),
        ]
