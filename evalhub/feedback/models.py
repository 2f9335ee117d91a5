"""Feedback exports (annotations turned into training data) and retrain pipelines (export -> train -> generate ->
score -> arena), each a row that says exactly what it used and where it stands."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models


class ExportKind(models.TextChoices):
    SFT = "sft", "SFT: prompt and answer"
    DPO = "dpo", "DPO: prompt, chosen and rejected"


class FeedbackExport(models.Model):
    """One export: the filters as applied, what each step kept or dropped, the exact annotations used (as id
    ranges per table), the files written and the immutable dataset version it became."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="feedback_exports")
    kind = models.CharField(max_length=10, choices=ExportKind.choices)
    name = models.CharField(max_length=200)
    sources = models.JSONField(
        default=list, help_text="rated, corrections, curated (SFT); arena, rubric_pairs (DPO)"
    )
    filters = models.JSONField(default=dict, help_text="every option as applied, defaults included")
    counts = models.JSONField(
        default=dict, help_text="candidates, drops by reason, records written, annotations used"
    )
    lineage = models.JSONField(
        default=dict, help_text="table -> sorted id ranges [[first, last], ...] of the annotations used"
    )
    held_out = models.JSONField(
        default=list, help_text="dataset versions whose prompts were kept out (leakage guard)"
    )
    version = models.OneToOneField(
        "datasets.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="feedback_export",
    )
    files = models.JSONField(default=dict, help_text="format -> artifact key (jsonl, parquet, hf)")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=ExportKind.values), name="feedback_export_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def annotations_used(self) -> int:
        return int((self.counts or {}).get("annotations", 0))

    @property
    def records(self) -> int:
        return int((self.counts or {}).get("written", 0))


class RetrainMode(models.TextChoices):
    SFT = "sft", "SFT on good and corrected outputs"
    DPO = "dpo", "DPO on preference pairs"
    SFT_DPO = "sft_dpo", "SFT, then DPO on top of it"


class RetrainStage(models.TextChoices):
    TRAIN_SFT = "train_sft", "Training (SFT)"
    TRAIN_DPO = "train_dpo", "Training (DPO)"
    GENERATE = "generate", "Generating on the eval set"
    SCORE = "score", "Computing metrics"
    DONE = "done", "Arena campaign open"


class RetrainStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RetrainPipeline(models.Model):
    """A chain of ordinary jobs. Each child job's end advances the chain (`services.retrain_advance`, called by a
    job-finished listener), so no worker ever waits for another one; this row is the chain's state."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="retrain_pipelines"
    )
    parent = models.ForeignKey("tuning.ModelVersion", on_delete=models.PROTECT, related_name="+")
    eval_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=10, choices=RetrainMode.choices)
    settings = models.JSONField(
        default=dict, help_text="hyperparameters per objective, decoding, metrics, arena"
    )
    sft_export = models.ForeignKey(
        FeedbackExport, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    dpo_export = models.ForeignKey(
        FeedbackExport, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    stage = models.CharField(max_length=12, choices=RetrainStage.choices)
    status = models.CharField(
        max_length=12, choices=RetrainStatus.choices, default=RetrainStatus.RUNNING, db_index=True
    )
    sft_run = models.ForeignKey(
        "tuning.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dpo_run = models.ForeignKey(
        "tuning.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    new_version = models.ForeignKey(
        "tuning.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent_generation = models.ForeignKey(
        "generation.GenerationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    new_generation = models.ForeignKey(
        "generation.GenerationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent_metrics = models.ForeignKey(
        "metrics.MetricRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    new_metrics = models.ForeignKey(
        "metrics.MetricRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    arena_campaign = models.ForeignKey(
        "arena.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    log = models.JSONField(default=list, blank=True, help_text="[{at, message}] of each step taken")
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(mode__in=RetrainMode.values), name="retrain_mode_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(stage__in=RetrainStage.values), name="retrain_stage_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=RetrainStatus.values), name="retrain_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Retrain #{self.pk} of {self.parent}"

    @property
    def is_running(self) -> bool:
        return self.status == RetrainStatus.RUNNING
