"""Generation runs of a model version over an eval split, and the outputs they produced."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.db import models


class RunStatus(models.TextChoices):
    """Mirrors the job's status on the run row, so lists and filters need no join (the job stays the truth)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class GenerationRun(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="generation_runs")
    model_version = models.ForeignKey("tuning.ModelVersion", on_delete=models.PROTECT, related_name="generation_runs")
    eval_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    settings = models.JSONField(default=dict, help_text="decoding settings: greedy/sampling, temperature, top-p, max tokens, seed, samples")
    job = models.OneToOneField("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_run")
    summary = models.JSONField(default=dict, blank=True, help_text="tokens/s, total tokens, errors")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="why the run failed, written for the user")
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="generation_run_status_valid")]

    def __str__(self) -> str:
        return f"Generation #{self.pk} of {self.model_version}"


class Output(models.Model):
    """One generated text. Untrusted: always rendered escaped. Raters never see `run.model_version`."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="outputs")
    example = models.ForeignKey("datasets.Example", on_delete=models.PROTECT, related_name="outputs")
    sample_index = models.PositiveSmallIntegerField(default=0)
    text = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    latency_s = models.FloatField(default=0)
    finish_reason = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True)
    flags = models.JSONField(
        default=list, blank=True,
        help_text="per-output states worth a badge: empty, repaired (invalid characters replaced), length (hit max tokens)",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run_id", "example_id", "sample_index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "example", "sample_index"], name="output_unique_per_example_sample")
        ]

    def __str__(self) -> str:
        return f"Output #{self.pk}"
