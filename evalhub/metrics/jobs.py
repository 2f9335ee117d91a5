"""Job handlers of the metrics app. One handler, two queues: see evalhub.metrics.services for why."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalhub.jobs.registry import job_kind

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext
    from evalhub.jobs.models import Job


def _mirror_failure(job: Job) -> None:
    from evalhub.metrics.services import metric_run_mark_failed

    run_id = job.params.get("metric_run_id")
    if run_id is not None:
        metric_run_mark_failed(int(run_id), job.error)


def _score(job: Job, ctx: JobContext) -> dict[str, Any]:
    from evalhub.metrics.models import MetricRun
    from evalhub.metrics.services import metric_run_execute

    run = MetricRun.objects.get(pk=job.params["metric_run_id"], project_id=job.project_id)
    return metric_run_execute(run=run, ctx=ctx)


@job_kind("metrics.score", queue="default", on_failure=_mirror_failure)
def score(job: Job, ctx: JobContext) -> dict[str, Any]:
    return _score(job, ctx)


@job_kind("metrics.score_gpu", queue="gpu", on_failure=_mirror_failure)
def score_gpu(job: Job, ctx: JobContext) -> dict[str, Any]:
    return _score(job, ctx)
