from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    """A dataset with one version of three examples, a finished quality report and an open curation queue."""
    from evalhub.datasets.models import (
        CurationItem,
        CurationQueue,
        Dataset,
        DatasetVersion,
        Example,
        QualityReport,
        VersionSource,
    )
    from evalhub.jobs.models import Job

    dataset = Dataset.objects.create(project=world.project, name="Access products", created_by=world.lead)
    version = DatasetVersion(dataset=dataset, number=1, source=VersionSource.UPLOAD, content_hash="0" * 64,
                             row_count=3, attribute_names=["category"], has_reference=True, has_label=True)
    version.save(force_insert=True)
    examples = [
        Example.objects.create(version=version, index=i, prompt=f"Facts: item {i}", reference=f"Item {i}.",
                               label="neutral", attributes={"category": "home" if i % 2 else "garden"})
        for i in range(3)
    ]
    job = Job.objects.create(project=world.project, kind="datasets.quality_report", status="succeeded")
    report = QualityReport.objects.create(version=version, job=job, report={})
    queue = CurationQueue.objects.create(version=version, name="Access queue", label_choices=["neutral", "warm"])
    for i, ex in enumerate(examples):
        CurationItem.objects.create(queue=queue, example=ex, position=i)
    return {"dataset": dataset, "version": version, "report": report, "queue": queue}


version = with_project(version_id="version")

RULES: dict[str, Rule] = {
    "datasets:list": Rule("annotator", project),
    "datasets:upload": Rule("lead", project, methods=("GET", "POST")),
    "datasets:version": Rule("annotator", version),
    "datasets:version-split": Rule("lead", version, methods=("POST",)),
    "datasets:version-rebalance": Rule("lead", version, methods=("POST",)),
    "datasets:quality-run": Rule("lead", version, methods=("POST",)),
    "datasets:curation-create": Rule("lead", version, methods=("POST",)),
    "datasets:quality": Rule("annotator", with_project(report_id="report")),
    "datasets:curation": Rule("annotator", with_project(queue_id="queue")),
    "datasets:curation-annotate": Rule("annotator", with_project(queue_id="queue"), methods=("GET", "POST")),
    "datasets:curation-apply": Rule("lead", with_project(queue_id="queue"), methods=("POST",)),
    "api-dataset-list": Rule("annotator", project),
    "api-dataset-upload": Rule("lead", project, methods=("POST",)),
    "api-dataset-detail": Rule("annotator", with_project(dataset_id="dataset")),
    "api-version-list": Rule("annotator", with_project(dataset_id="dataset")),
    "api-version-detail": Rule("annotator", version),
    "api-example-list": Rule("annotator", version),
    "api-quality-report-list": Rule("annotator", version),
    "api-quality-report-create": Rule("lead", version, methods=("POST",)),
    "api-quality-report-detail": Rule("annotator", with_project(report_id="report")),
}
