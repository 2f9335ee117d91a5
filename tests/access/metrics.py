"""Metric pages and API: leads only (model identity, comparisons between versions)."""

from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    """A succeeded metric run over the generation run built by tests/access/generation.py."""
    from evalhub.generation.models import RunStatus
    from evalhub.jobs.models import Job
    from evalhub.metrics.models import MetricRun, MetricScore
    from tests.access import generation

    gen = generation.objects(world)["generation_run"]
    job = Job.objects.create(project=world.project, kind="metrics.score", status="succeeded")
    run = MetricRun.objects.create(project=world.project, generation_run=gen, metrics=["output_length"], job=job,
                                   status=RunStatus.SUCCEEDED)
    MetricScore.objects.bulk_create(
        [MetricScore(metric_run=run, output=o, metric="output_length", value=float(len(o.text))) for o in gen.outputs.all()]
    )
    return {"metric_run": run, "model_version": gen.model_version}


metric_run = with_project(metric_run_id="metric_run")

RULES: dict[str, Rule] = {
    "metrics:list": Rule("lead", project, methods=("GET", "POST")),
    "metrics:run": Rule("lead", metric_run),
    "metrics:export": Rule("lead", metric_run),
    "metrics:version": Rule("lead", with_project(version_id="model_version")),
    "metrics:compare": Rule("lead", project),
    "metrics:trust": Rule("lead", project),
    "api-metric-run-list": Rule("lead", project, methods=("GET", "POST"), data={}),
    "api-metric-run-detail": Rule("lead", metric_run),
    "api-metric-aggregates": Rule("lead", metric_run),
    "api-metric-export": Rule("lead", metric_run),
    "api-metric-compare": Rule("lead", project),
}
