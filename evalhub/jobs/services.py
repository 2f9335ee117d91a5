"""Every state change of a Job. Tasks and handlers call these; nothing else writes job rows."""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from evalhub.jobs.models import FINISHED, Job, JobStatus
from evalhub.jobs.registry import get_kind, notify_finished

logger = logging.getLogger(__name__)
LOG_LIMIT_CHARS = 200_000


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def job_create(
    *, project: Any, kind: str, params: dict[str, Any] | None = None, created_by: AbstractBaseUser | None = None,
    message: str = "Waiting for a worker",
) -> Job:
    """Create a job row and send it to its queue once the surrounding transaction commits."""
    spec = get_kind(kind)
    job = Job.objects.create(
        project=project, kind=kind, queue=spec.queue, params=params or {}, created_by=created_by, message=message
    )
    transaction.on_commit(lambda: job_enqueue(job.pk))
    return job


def job_enqueue(job_id: int) -> None:
    from evalhub.jobs.tasks import run_job

    job = Job.objects.filter(pk=job_id).only("queue", "status").first()
    if job is None or job.status in FINISHED:
        return
    Job.objects.filter(pk=job_id).update(enqueued_at=timezone.now())
    run_job.apply_async(args=[job_id], queue=job.queue)


def job_claim(job_id: int, owner: str) -> bool:
    """Atomically take the job. False when another worker holds a live lease or the job is finished."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    claimable = Q(status=JobStatus.QUEUED) | Q(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    updated = (
        Job.objects.filter(claimable, pk=job_id, cancel_requested=False)
        .filter(attempts__lt=F("max_attempts"))
        .update(
            status=JobStatus.RUNNING,
            lease_owner=owner,
            lease_expires_at=lease,
            heartbeat_at=now,
            attempts=F("attempts") + 1,
            started_at=now,
            message="Starting",
        )
    )
    return updated == 1


def job_heartbeat(job_id: int, owner: str) -> bool:
    """Renew the lease. False if this worker lost it (another worker took over): the caller must stop."""
    now = timezone.now()
    updated = Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=owner).update(
        heartbeat_at=now, lease_expires_at=now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
    )
    return updated == 1


def job_progress(job_id: int, owner: str, *, current: float, total: float, message: str = "") -> bool:
    now = timezone.now()
    fields: dict[str, Any] = {
        "progress_current": max(0.0, float(current)),
        "progress_total": max(0.0, float(total)),
        "heartbeat_at": now,
        "lease_expires_at": now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
    }
    if message:
        fields["message"] = message[:500]
    return Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=owner).update(**fields) == 1


def job_log(job_id: int, line: str) -> None:
    job = Job.objects.filter(pk=job_id).only("log").first()
    if job is None:
        return
    stamp = timezone.now().strftime("%H:%M:%S")
    text = (job.log + f"[{stamp}] {line}\n")[-LOG_LIMIT_CHARS:]
    Job.objects.filter(pk=job_id).update(log=text)


def _finished(job_id: int) -> None:
    """Tell the job-finished listeners, once the final state is committed."""
    transaction.on_commit(lambda: notify_finished(job_id))


def job_succeed(job_id: int, owner: str, result: dict[str, Any]) -> bool:
    done = (
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=owner).update(
            status=JobStatus.SUCCEEDED, result=result, finished_at=timezone.now(), message="Done",
            progress_current=F("progress_total"), lease_expires_at=None,
        )
        == 1
    )
    if done:
        _finished(job_id)
    return done


def job_fail(job_id: int, owner: str | None, error: str) -> bool:
    qs = Job.objects.filter(pk=job_id).exclude(status__in=FINISHED)
    if owner is not None:
        qs = qs.filter(lease_owner=owner)
    updated = qs.update(
        status=JobStatus.FAILED, error=error[:20_000], finished_at=timezone.now(), message="Failed", lease_expires_at=None
    )
    if updated:
        _notify_failure(job_id)
        _finished(job_id)
    return updated == 1


def job_mark_cancelled(job_id: int, owner: str) -> bool:
    done = (
        Job.objects.filter(pk=job_id, status=JobStatus.RUNNING, lease_owner=owner).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled", lease_expires_at=None
        )
        == 1
    )
    if done:
        _finished(job_id)
    return done


def job_request_cancel(job: Job) -> Job:
    """Queued jobs are cancelled at once; a running job is asked to stop and its worker ends it cleanly."""
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).exclude(status__in=FINISHED).update(cancel_requested=True)
        if Job.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=timezone.now(), message="Cancelled before it started"
        ):
            _finished(job.pk)
    job.refresh_from_db()
    return job


def job_cancel_requested(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, cancel_requested=True).exists()


def jobs_requeue_stale(*, now: Any = None) -> list[int]:
    """Find jobs whose worker vanished (lease expired) or whose message may be lost, and send them again.

    Safe to run at any time and on several nodes: claiming is atomic, so a duplicate message does nothing.
    """
    now = now or timezone.now()
    requeued: list[int] = []
    stale_running = Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    for job in stale_running:
        if job.attempts >= job.max_attempts:
            job_fail(job.pk, None, f"The worker running this job stopped responding {job.attempts} times; giving up.")
            continue
        job_log(job.pk, f"worker {job.lease_owner or '?'} stopped heartbeating; handing the job to another worker")
        requeued.append(job.pk)
    # A broker restart (Redis keeps nothing on disk here) loses queued messages; the row remembers the job.
    lost_after = now - timedelta(seconds=max(settings.JOB_LEASE_SECONDS, 60) * 5)
    requeued += list(
        Job.objects.filter(status=JobStatus.QUEUED, cancel_requested=False, enqueued_at__lt=lost_after).values_list("pk", flat=True)
    )
    for job_id in requeued:
        job_enqueue(job_id)
    return requeued


def _notify_failure(job_id: int) -> None:
    job = Job.objects.get(pk=job_id)
    try:
        spec = get_kind(job.kind)
    except LookupError:
        return
    if spec.on_failure is not None:
        try:
            spec.on_failure(job)
        except Exception:  # the job is already marked failed; the mirror must not mask that
            logger.exception("on_failure hook of %s failed", job.kind)
