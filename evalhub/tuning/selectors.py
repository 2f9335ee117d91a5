"""Queries of the tuning app, always within one project that the caller reached through the access chokepoint."""

from __future__ import annotations

from django.db.models import QuerySet

from evalhub.projects.models import Project
from evalhub.tuning.models import ModelVersion, Sweep, TrainingRun

FINISHED_TRAINING = ("completed", "early_stopped")


def runs_of_project(project: Project, *, include_trials: bool = False) -> QuerySet[TrainingRun]:
    runs = TrainingRun.objects.filter(project=project).select_related(
        "job", "base_model", "train_version__dataset", "val_version__dataset", "sweep", "model_version"
    )
    if not include_trials:
        runs = runs.filter(sweep__isnull=True)
    return runs.defer("loss_history")


def finished_runs(project: Project, *, include_trials: bool = False) -> QuerySet[TrainingRun]:
    """Runs whose training finished (the ones the comparison page can put side by side)."""
    return runs_of_project(project, include_trials=include_trials).filter(
        result__status__in=FINISHED_TRAINING
    )


def versions_of_project(project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).select_related(
        "base_model", "training_run", "merge_job"
    )


def sweeps_of_project(project: Project) -> QuerySet[Sweep]:
    return Sweep.objects.filter(project=project).select_related("job", "base_model", "best_run")
