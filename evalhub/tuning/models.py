"""Base models, training runs, sweeps and the model versions they produce (a base plus at most one adapter)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    """An installation-wide base model. Many adapters, across projects, share one base."""

    class SourceKind(models.TextChoices):
        GGUF = "gguf", "GGUF file"
        FOLDER = "folder", "Local Hugging Face folder"
        HUB = "hub", "Hugging Face Hub id (needs downloads allowed)"

    name = models.CharField(max_length=200, unique=True)
    source_kind = models.CharField(max_length=10, choices=SourceKind.choices)
    path_or_id = models.CharField(max_length=500)
    gguf_file = models.CharField(max_length=300, blank=True)
    architecture = models.CharField(max_length=100, blank=True)
    parameter_count = models.BigIntegerField(null=True, blank=True)
    has_chat_template = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sweep(models.Model):
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="sweeps")
    name = models.CharField(max_length=200)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="+")
    train_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    val_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    base_config = models.JSONField(default=dict)
    search_space = models.JSONField(default=dict)
    n_trials = models.PositiveIntegerField(default=8)
    seed = models.IntegerField(default=0)
    initial_trials = models.JSONField(
        default=list,
        blank=True,
        help_text="parameter sets tried first (e.g. a known good config), then the sampler's",
    )
    pruner_startup_trials = models.PositiveIntegerField(
        default=3,
        help_text="trials that always run to the end before the median pruner starts stopping bad ones",
    )
    pruner_warmup_steps = models.PositiveIntegerField(
        default=0, help_text="steps before a trial may be pruned"
    )
    result = models.JSONField(
        default=dict, blank=True, help_text="best value and params, parameter importance"
    )
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="sweep"
    )
    best_run = models.ForeignKey(
        "TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        return self.job.status if self.job_id and self.job else "queued"


class TrialState(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    PRUNED = "pruned", "Pruned"
    FAILED = "failed", "Failed"


class TrainingRun(models.Model):
    class Objective(models.TextChoices):
        SFT = "sft", "Supervised fine-tuning"
        DPO = "dpo", "Direct preference optimisation"

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="training_runs")
    name = models.CharField(max_length=200)
    objective = models.CharField(max_length=10, choices=Objective.choices, default=Objective.SFT)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="training_runs")
    parent_version = models.ForeignKey(
        "ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="child_runs",
        help_text="train on top of this version's adapter (retraining from feedback)",
    )
    method = models.CharField(max_length=20)
    config = models.JSONField(default=dict, help_text="the full trainer config, as run")
    train_version = models.ForeignKey("datasets.DatasetVersion", on_delete=models.PROTECT, related_name="+")
    val_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.CASCADE, related_name="trials")
    trial_number = models.PositiveIntegerField(null=True, blank=True)
    trial_state = models.CharField(
        max_length=10,
        blank=True,
        choices=TrialState.choices,
        help_text="for sweep trials (they run inside the sweep's job)",
    )
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_run"
    )
    result = models.JSONField(
        default=dict, blank=True, help_text="trainer result: params, memory, time, losses"
    )
    loss_history = models.JSONField(default=list, blank=True)
    output_key = models.CharField(max_length=300, blank=True, help_text="artifact key of the run directory")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def status(self) -> str:
        """The job's status; sweep trials (no job of their own) map their trial state onto the same words."""
        if self.job_id and self.job:
            return self.job.status
        if self.trial_state:
            return {
                TrialState.RUNNING: "running",
                TrialState.COMPLETE: "succeeded",
                TrialState.PRUNED: "pruned",
                TrialState.FAILED: "failed",
            }[TrialState(self.trial_state)]
        return "queued"


class ModelVersion(models.Model):
    """What gets generated from, rated, compared and shipped: a base model plus (optionally) one adapter."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    base_model = models.ForeignKey(BaseModel, on_delete=models.PROTECT, related_name="versions")
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="model_version"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    adapter_key = models.CharField(
        max_length=300, blank=True, help_text="artifact key of the PEFT adapter; blank = base only"
    )
    lineage = models.JSONField(
        default=dict,
        blank=True,
        help_text="dataset versions, config, seed, package versions, code revision, params, memory, time, losses",
    )
    merged_key = models.CharField(
        max_length=300, blank=True, help_text="artifact key of the merged export, once made"
    )
    merge_job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="model_version_unique_number")
        ]

    def __str__(self) -> str:
        return f"v{self.number} {self.name}"

    @property
    def is_base_only(self) -> bool:
        return not self.adapter_key
