"""The shared job mechanism: claiming, redelivery, lost workers, failures and cancellation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from evalhub.jobs import services
from evalhub.jobs.context import JobContext, JobError
from evalhub.jobs.models import Job, JobStatus
from evalhub.jobs.registry import job_kind
from evalhub.jobs.tasks import execute_job

CALLS: list[int] = []
FAILURES: list[int] = []


@job_kind("tests.count")
def _count(job: Job, ctx: JobContext) -> dict[str, Any]:
    CALLS.append(job.pk)
    ctx.progress(1, 2, "half way", force=True)
    if job.params.get("fail"):
        raise JobError("the data has no reference column")
    if job.params.get("crash"):
        raise ZeroDivisionError("division by zero")
    if job.params.get("cancel_midway"):
        services.job_request_cancel(job)
        ctx._last_cancel_check = -1e9
        ctx.raise_if_cancelled()
    return {"ok": True, "attempt": Job.objects.get(pk=job.pk).attempts}


def _on_failure(job: Job) -> None:
    FAILURES.append(job.pk)


job_kind("tests.fail_hook", on_failure=_on_failure)(_count)


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FAILURES.clear()


def _job(world: Any, **params: Any) -> Job:
    return Job.objects.create(project=world.project, kind=params.pop("kind", "tests.count"), params=params)


@pytest.mark.django_db
def test_create_enqueues_on_commit_and_runs(world: Any, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(project=world.project, kind="tests.count")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.result == {"ok": True, "attempt": 1}
    assert job.fraction == 1.0
    assert CALLS == [job.pk]


@pytest.mark.django_db
def test_redelivered_message_does_not_run_a_finished_job_twice(world: Any) -> None:
    job = _job(world)
    assert execute_job(job.pk) == "succeeded"
    assert execute_job(job.pk) == "skipped"
    assert CALLS == [job.pk]


@pytest.mark.django_db
def test_message_for_a_job_under_a_live_lease_is_ignored(world: Any) -> None:
    job = _job(world)
    assert services.job_claim(job.pk, "other-worker")
    assert execute_job(job.pk) == "skipped"
    assert CALLS == []
    job.refresh_from_db()
    assert job.lease_owner == "other-worker"


@pytest.mark.django_db
def test_lost_worker_is_detected_and_the_job_runs_again(world: Any) -> None:
    job = _job(world)
    assert services.job_claim(job.pk, "dead-worker")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    requeued = services.jobs_requeue_stale()  # Celery is eager in tests: the requeued message runs now
    assert requeued == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert job.attempts == 2
    assert "stopped heartbeating" in job.log


@pytest.mark.django_db
def test_a_job_that_keeps_losing_its_worker_fails_visibly(world: Any) -> None:
    job = _job(world)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, attempts=3, lease_owner="w", lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    services.jobs_requeue_stale()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "stopped responding 3 times" in job.error
    assert CALLS == []


@pytest.mark.django_db
def test_queued_job_whose_message_was_lost_is_sent_again(world: Any) -> None:
    job = _job(world)
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(hours=2))
    services.jobs_requeue_stale()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


@pytest.mark.django_db
def test_user_facing_failure_is_recorded_and_mirrored(world: Any) -> None:
    job = _job(world, kind="tests.fail_hook", fail=True)
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "the data has no reference column"
    assert FAILURES == [job.pk]


@pytest.mark.django_db
def test_crash_leaves_a_failed_state_with_the_reason_and_traceback_in_log(world: Any) -> None:
    job = _job(world, crash=True)
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "ZeroDivisionError: division by zero"
    assert "Traceback" in job.log


@pytest.mark.django_db
def test_cancel_queued_job_never_runs(world: Any) -> None:
    job = _job(world)
    services.job_request_cancel(job)
    assert job.status == JobStatus.CANCELLED
    assert execute_job(job.pk) == "skipped"
    assert CALLS == []


@pytest.mark.django_db
def test_cancel_running_job_stops_it_as_cancelled(world: Any) -> None:
    job = _job(world, cancel_midway=True)
    assert execute_job(job.pk) == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


@pytest.mark.django_db
def test_progress_from_a_worker_that_lost_its_lease_is_refused(world: Any) -> None:
    job = _job(world)
    assert services.job_claim(job.pk, "a")
    Job.objects.filter(pk=job.pk).update(lease_owner="b")
    assert not services.job_progress(job.pk, "a", current=1, total=2)
    assert not services.job_succeed(job.pk, "a", {})
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


@pytest.mark.django_db
def test_status_endpoint_reports_progress_and_eta(world: Any, client_for: Any) -> None:
    job = _job(world)
    services.job_claim(job.pk, "w")
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(seconds=30))
    services.job_progress(job.pk, "w", current=25, total=100, message="step 25")
    data = client_for(world.annotator).get(f"/p/{world.project.pk}/jobs/{job.pk}/status/").json()
    assert data["status"] == "running"
    assert data["fraction"] == pytest.approx(0.25)
    assert data["message"] == "step 25"
    assert 80 < data["eta_seconds"] < 100  # 30 s for 25 % -> about 90 s left


@pytest.mark.django_db
def test_heartbeat_thread_stops_the_job_only_when_another_worker_took_it(world: Any, settings: Any) -> None:
    import time as _time

    settings.JOB_LEASE_SECONDS = 4  # heartbeat every second
    job = _job(world)
    assert services.job_claim(job.pk, "me")
    ctx = JobContext(Job.objects.get(pk=job.pk), "me")
    with ctx.heartbeating():
        _time.sleep(1.5)
        assert not ctx.should_stop()  # our own lease: renewed, nothing lost
        Job.objects.filter(pk=job.pk).update(lease_owner="someone-else")
        # The heartbeat thread has its own connection; in this test's open transaction it cannot see the row at
        # all, which must not count as losing the job (in production the row is committed before it is queued).
        _time.sleep(1.5)
    assert ctx._taken_over()  # seen from this connection: another owner
