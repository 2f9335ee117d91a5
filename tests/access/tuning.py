from __future__ import annotations

import json
from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    from evalhub.core.storage import artifact_dir, artifact_key
    from evalhub.datasets.models import Dataset, DatasetVersion
    from evalhub.jobs.models import Job
    from evalhub.tuning.models import BaseModel, ModelVersion, Sweep, TrainingRun

    base = BaseModel.objects.create(
        name="access-tuning-base", source_kind="folder", path_or_id="/nonexistent"
    )
    dataset = Dataset.objects.create(project=world.project, name="access tuning data")
    version = DatasetVersion.objects.create(
        dataset=dataset, number=1, source="upload", content_hash="0" * 64, row_count=0
    )
    job = Job.objects.create(project=world.project, kind="tuning.train", queue="gpu", status="succeeded")
    run = TrainingRun.objects.create(
        project=world.project,
        name="access run",
        base_model=base,
        method="lora",
        train_version=version,
        job=job,
    )
    adapter = artifact_dir("access", "adapter")
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    merged = artifact_dir("access", "merged")
    (merged / "config.json").write_text("{}")
    model_version = ModelVersion.objects.create(
        project=world.project,
        number=100,
        name="access tuning",
        base_model=base,
        training_run=run,
        adapter_key=artifact_key(adapter),
        merged_key=artifact_key(merged),
    )
    sweep_job = Job.objects.create(
        project=world.project, kind="tuning.sweep", queue="gpu", status="succeeded"
    )
    sweep = Sweep.objects.create(
        project=world.project,
        name="access sweep",
        base_model=base,
        train_version=version,
        val_version=version,
        job=sweep_job,
    )
    return {"tuning_run": run, "tuning_version": model_version, "tuning_sweep": sweep}


run = with_project(run_id="tuning_run")
version = with_project(version_id="tuning_version")
sweep = with_project(sweep_id="tuning_sweep")

RULES: dict[str, Rule] = {
    "tuning:list": Rule("lead", project),
    "tuning:run-create": Rule("lead", project, methods=("GET", "POST")),
    "tuning:run-detail": Rule("lead", run),
    "tuning:run-losses": Rule("lead", run),
    "tuning:run-cancel": Rule("lead", run, methods=("POST",)),
    "tuning:compare": Rule("lead", project),
    "tuning:model-list": Rule("lead", project),
    "tuning:model-create-base": Rule("lead", project, methods=("POST",)),
    "tuning:model-detail": Rule("lead", version),
    "tuning:model-adapter": Rule("lead", version),
    "tuning:model-export": Rule("lead", version, methods=("POST",)),
    "tuning:model-merged": Rule("lead", version),
    "tuning:sweep-list": Rule("lead", project),
    "tuning:sweep-create": Rule("lead", project, methods=("GET", "POST")),
    "tuning:sweep-detail": Rule("lead", sweep),
    "tuning:sweep-promote": Rule("lead", sweep, methods=("POST",)),
    "api-base-model-list": Rule("lead", project),
    "api-training-run-list": Rule("lead", project, methods=("GET", "POST")),
    "api-training-run-detail": Rule("lead", run),
    "api-training-run-cancel": Rule("lead", run, methods=("POST",)),
    "api-training-run-losses": Rule("lead", run),
    "api-model-version-list": Rule("lead", project),
    "api-model-version-detail": Rule("lead", version),
    "api-sweep-list": Rule("lead", project, methods=("GET", "POST")),
    "api-sweep-detail": Rule("lead", sweep),
}
