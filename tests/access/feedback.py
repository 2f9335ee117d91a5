from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    """An export of two arena votes (with its version and files) and a retrain pipeline from one version."""
    from evalhub.feedback.builders import ExportOptions
    from evalhub.feedback.models import RetrainPipeline
    from evalhub.feedback.services import export_create
    from tests.feedback import factories

    s = factories.scenario(world, products=factories.PRODUCTS[:2], n_annotators=1)
    factories.arena(s)
    export = export_create(
        project=world.project,
        user=world.lead,
        options=ExportOptions(kind="dpo", sources=("arena",)),
        formats=("jsonl", "parquet", "hf"),
    )
    pipeline = RetrainPipeline.objects.create(
        project=world.project,
        parent=s.versions[0],
        eval_version=s.eval,
        mode="dpo",
        stage="train_dpo",
        dpo_export=export,
        created_by=world.lead,
    )
    return {"feedback_export": export, "feedback_pipeline": pipeline}


e = with_project(export_id="feedback_export")
p = with_project(pipeline_id="feedback_pipeline")

RULES: dict[str, Rule] = {
    "feedback:list": Rule("lead", project),
    "feedback:export-create": Rule("lead", project, methods=("GET", "POST")),
    "feedback:export-detail": Rule("lead", e),
    "feedback:export-download": Rule("lead", e),
    "feedback:retrain": Rule("lead", project, methods=("GET", "POST")),
    "feedback:pipeline": Rule("lead", p),
    "feedback:pipeline-advance": Rule("lead", p, methods=("POST",)),
    "feedback:pipeline-cancel": Rule("lead", p, methods=("POST",)),
    "feedback:timeline": Rule("lead", project),
    "api-feedback-export-list": Rule("lead", project, methods=("GET", "POST")),
    "api-feedback-export-detail": Rule("lead", e),
    "api-feedback-export-download": Rule("lead", e),
    "api-feedback-retrain-list": Rule("lead", project, methods=("GET", "POST")),
    "api-feedback-retrain-detail": Rule("lead", p),
    "api-feedback-retrain-advance": Rule("lead", p, methods=("POST",)),
    "api-feedback-timeline": Rule("lead", project),
}
