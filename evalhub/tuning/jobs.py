"""Job handlers of the tuning app. Each loads its row and calls one service; all run on the `gpu` queue."""

from __future__ import annotations

from typing import Any

from evalhub.jobs.context import JobContext
from evalhub.jobs.models import Job
from evalhub.jobs.registry import job_kind
from evalhub.tuning import services
from evalhub.tuning.models import ModelVersion, Sweep, TrainingRun


@job_kind(services.TRAIN_KIND, queue="gpu", on_failure=services.training_run_failed)
def train(job: Job, ctx: JobContext) -> dict[str, Any]:
    run = TrainingRun.objects.select_related(
        "project", "base_model", "train_version", "val_version", "parent_version", "created_by"
    ).get(pk=job.params["training_run_id"])
    return services.training_run_execute(run, ctx)


@job_kind(services.MERGE_KIND, queue="gpu")
def export_merged(job: Job, ctx: JobContext) -> dict[str, Any]:
    version = ModelVersion.objects.select_related("base_model").get(pk=job.params["model_version_id"])
    return services.model_version_merge_execute(version, ctx)


@job_kind(services.SWEEP_KIND, queue="gpu")
def sweep(job: Job, ctx: JobContext) -> dict[str, Any]:
    obj = Sweep.objects.select_related("project", "base_model", "train_version", "val_version").get(
        pk=job.params["sweep_id"]
    )
    return services.sweep_execute(obj, ctx)
