"""Job handlers of the generation app (registered on import by evalhub.jobs.registry)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evalhub.jobs.registry import job_kind

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext
    from evalhub.jobs.models import Job


def _mirror_failure(job: Job) -> None:
    from evalhub.generation.services import generation_run_mark_failed

    run_id = job.params.get("run_id")
    if run_id is not None:
        generation_run_mark_failed(int(run_id), job.error)


@job_kind("generation.generate", queue="gpu", on_failure=_mirror_failure)
def generate(job: Job, ctx: JobContext) -> dict[str, Any]:
    from evalhub.generation.models import GenerationRun
    from evalhub.generation.services import generation_run_execute

    run = GenerationRun.objects.get(pk=job.params["run_id"], project_id=job.project_id)
    return generation_run_execute(run=run, ctx=ctx)
