"""Queries of the tuning app, always within one project that the caller reached through the access chokepoint."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from evalhub.jobs import workers as job_workers
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


@dataclass(frozen=True)
class TrainingSummary:
    runs_by_status: dict[str, int]  # runs (sweep trials left out) by their job's status
    latest: ModelVersion | None
    latest_loss: float | None  # the latest version's best validation loss
    best: ModelVersion | None  # the version with the lowest best validation loss, if not the latest
    best_loss: float | None
    running: list[TrainingRun]  # runs whose job is running now, with the job loaded


def training_summary(project: Project) -> TrainingSummary:
    by_status = {
        (status or "queued"): n
        for status, n in TrainingRun.objects.filter(project=project, sweep__isnull=True)
        .values_list("job__status").annotate(n=Count("id")).order_by()
    }
    losses = [
        (pk, loss) for pk, loss in ModelVersion.objects.filter(project=project)
        .values_list("pk", "lineage__best_val_loss").order_by("-number")
        if isinstance(loss, (int, float))
    ]
    versions = ModelVersion.objects.filter(project=project).defer("lineage")
    latest = versions.order_by("-number").first()
    loss_of = dict(losses)
    best_pk, best_loss = min(losses, key=lambda x: x[1]) if losses else (None, None)
    best = None
    if best_pk is not None and (latest is None or best_pk != latest.pk):
        best = versions.filter(pk=best_pk).first()
    running = list(
        runs_of_project(project, include_trials=False).filter(job__status="running").order_by("-created_at")[:3]
    )
    return TrainingSummary(
        runs_by_status=by_status, latest=latest, latest_loss=loss_of.get(latest.pk) if latest else None,
        best=best, best_loss=best_loss if best is not None else None, running=running,
    )


def _device_label(device: dict[str, object]) -> str:
    memory = f"{int(device.get('memory_bytes') or 0) / 2**30:.1f} GiB"
    bf16 = "bf16" if device.get("bf16") else "no bf16"
    return f"{device.get('name') or 'unknown GPU'} ({memory}, {bf16})"


def gpu_worker_note() -> str:
    """One line for the launch page: what the gpu-queue workers can do, so a lead knows before picking QLoRA or bf16."""
    minutes = f"{job_workers.LIVE_WITHIN.total_seconds() / 60:.0f} minutes"
    nodes = job_workers.live_workers(job_workers.LIVE_WITHIN, queue=job_workers.GPU_QUEUE)
    if not nodes:
        return (f"Workers: none on the gpu queue has reported in the last {minutes}; runs wait in the queue until "
                "one starts (`celery -A evalhub worker -Q gpu`).")
    count = f"{len(nodes)} on the gpu queue"
    with_cuda = [node for node in nodes if node.cuda]
    if not with_cuda:
        return f"Workers: {count}, none with CUDA; runs train on CPU."
    labels: dict[str, int] = {}
    for node in with_cuda:
        for device in node.cuda_devices or []:
            label = _device_label(device)
            labels[label] = labels.get(label, 0) + 1
    devices = "; ".join(label if n == 1 else f"{n}× {label}" for label, n in labels.items())
    note = f"Workers: {count}, {len(with_cuda)} with CUDA: {devices}"
    if not any(node.bitsandbytes for node in with_cuda):
        note += "; none has bitsandbytes, so no QLoRA"
    return note + "."
