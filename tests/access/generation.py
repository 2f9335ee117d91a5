"""Generation pages and API: leads only, because they show which model version wrote each output."""

from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    """A base model and version, an eval set of two examples and a finished generation run with two outputs."""
    from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionSource
    from evalhub.generation.models import GenerationRun, Output, RunStatus
    from evalhub.jobs.models import Job
    from evalhub.tuning.models import BaseModel, ModelVersion

    base = BaseModel.objects.create(name="access-base", source_kind="folder", path_or_id="/nonexistent/access-base")
    version = ModelVersion.objects.create(project=world.project, number=1, name="access version", base_model=base)
    dataset = Dataset.objects.create(project=world.project, name="Access eval set", created_by=world.lead)
    eval_version = DatasetVersion(dataset=dataset, number=1, source=VersionSource.UPLOAD, content_hash="1" * 64,
                                  row_count=2, attribute_names=["category"], has_reference=True)
    eval_version.save(force_insert=True)
    examples = [
        Example.objects.create(version=eval_version, index=i, prompt=f"Describe item {i}", reference=f"Item {i}.",
                               attributes={"category": "home" if i else "garden"})
        for i in range(2)
    ]
    job = Job.objects.create(project=world.project, kind="generation.generate", queue="gpu", status="succeeded")
    run = GenerationRun.objects.create(project=world.project, model_version=version, eval_version=eval_version,
                                       settings={"max_new_tokens": 8, "seed": 0}, job=job, status=RunStatus.SUCCEEDED)
    outputs = [Output.objects.create(run=run, example=e, text=f"Item {e.index} is nice.", output_tokens=5) for e in examples]
    return {"model_version": version, "eval_version": eval_version, "generation_run": run, "output": outputs[0]}


run = with_project(run_id="generation_run")

RULES: dict[str, Rule] = {
    "generation:list": Rule("lead", project, methods=("GET", "POST")),
    "generation:detail": Rule("lead", run),
    "generation:output": Rule("lead", with_project(run_id="generation_run", output_id="output")),
    "api-generation-run-list": Rule("lead", project, methods=("GET", "POST"), data={}),
    "api-generation-run-detail": Rule("lead", run),
    "api-output-list": Rule("lead", run),
}
