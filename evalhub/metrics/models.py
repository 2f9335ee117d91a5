"""Automated metric runs over a generation run's outputs, and one score per output and metric."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from evalhub.generation.models import RunStatus


class MetricRun(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="metric_runs")
    generation_run = models.ForeignKey("generation.GenerationRun", on_delete=models.CASCADE, related_name="metric_runs")
    metrics = models.JSONField(default=list, help_text="metric names, e.g. rouge, bleu, chrf, bertscore")
    options = models.JSONField(default=dict, blank=True)
    job = models.OneToOneField("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="metric_run")
    corpus = models.JSONField(default=dict, blank=True, help_text="corpus-level values where standard (BLEU, chrF)")
    refused = models.JSONField(default=dict, blank=True, help_text="metric -> why it could not run")
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True, help_text="why the run failed, written for the user")
    summary = models.JSONField(default=dict, blank=True, help_text="outputs scored / excluded, score names per metric")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(status__in=RunStatus.values), name="metric_run_status_valid")]

    def __str__(self) -> str:
        return f"Metric run #{self.pk}"


class MetricScore(models.Model):
    metric_run = models.ForeignKey(MetricRun, on_delete=models.CASCADE, related_name="scores")
    output = models.ForeignKey("generation.Output", on_delete=models.CASCADE, related_name="metric_scores")
    metric = models.CharField(max_length=60)
    value = models.FloatField(null=True, blank=True, help_text="null when undefined for this output (e.g. no reference)")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric_run", "output", "metric"], name="metric_score_unique")
        ]
        indexes = [models.Index(fields=["metric_run", "metric"])]
