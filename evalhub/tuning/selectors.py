"""Queries of the tuning app, always within one project that the caller reached through the access chokepoint."""

from __future__ import annotations

from django.db.models import QuerySet

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


def _device_label(device: dict[str, object]) -> str:
    memory = f"{int(device.get('memory_bytes') or 0) / 2**30:.1f} GiB"
    bf16 = "bf16" if device.get("bf16") else "no bf16"
    return f"{device.get('name') or 'unknown GPU'} ({memory}, {bf16})"


def gpu_worker_note() -> str:
    """One line for the launch page: what the gpu-queue workers can do, so a lead knows before picking QLoRA or bf16."""
    minutes = f"{job_workers.LIVE_WITHIN.total_seconds() / 60:.0f} minutes"
    nodes = job_workers.live_workers(job_workers.LIVE_WITHIN, queue=job_workers.GPU_QUEUE)
    if not nodes:
        return f"Workers: no GPU worker has reported in the last {minutes}; runs train on CPU."
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
