"""Thin Celery wrappers. The job row decides whether anything runs; the message only says "look at job N"."""

from __future__ import annotations

import logging
import traceback
import uuid

from celery import shared_task

from evalhub.jobs import services
from evalhub.jobs.context import JobCancelled, JobContext, JobError, LeaseLost
from evalhub.jobs.models import Job
from evalhub.jobs.registry import get_kind

logger = logging.getLogger(__name__)


@shared_task(name="evalhub.jobs.tasks.run_job", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: int) -> str:
    return execute_job(job_id)


def execute_job(job_id: int) -> str:
    owner = f"{services.worker_id()}:{uuid.uuid4().hex[:8]}"
    if not services.job_claim(job_id, owner):
        logger.info("job %s not claimable (finished, cancelled or owned by a live worker); message ignored", job_id)
        return "skipped"
    job = Job.objects.get(pk=job_id)
    ctx = JobContext(job, owner)
    if job.attempts > 1:
        ctx.log(f"attempt {job.attempts} on {owner}: resuming from the last checkpoint if there is one")
    try:
        spec = get_kind(job.kind)
        with ctx.heartbeating():
            result = spec.handler(job, ctx)
    except JobCancelled:
        services.job_mark_cancelled(job_id, owner)
        return "cancelled"
    except LeaseLost:
        logger.warning("job %s: lease lost by %s; leaving it to the new owner", job_id, owner)
        return "lease-lost"
    except JobError as exc:
        ctx.log(f"failed: {exc}")
        services.job_fail(job_id, owner, str(exc))
        return "failed"
    except Exception as exc:  # any other crash still leaves a visible failed state with the reason
        ctx.log(traceback.format_exc()[-4000:])
        services.job_fail(job_id, owner, f"{type(exc).__name__}: {exc}")
        logger.exception("job %s failed", job_id)
        return "failed"
    services.job_succeed(job_id, owner, result or {})
    return "succeeded"


@shared_task(name="evalhub.jobs.tasks.requeue_stale_jobs", ignore_result=True)
def requeue_stale_jobs() -> list[int]:
    return services.jobs_requeue_stale()
