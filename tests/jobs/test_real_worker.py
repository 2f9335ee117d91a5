"""A real Celery worker process on Redis, sharing the PostgreSQL test database with the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from evalhub.jobs.models import Job, JobStatus

ROOT = Path(__file__).resolve().parents[2]


def _needs_real_services() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL shared between processes (make test provides it)")
    if not str(settings.CELERY_BROKER_URL).startswith("redis://"):
        pytest.skip("needs the Redis broker (make test provides it)")


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(queues: str = "default", **env: str) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "DATABASE_URL": _database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "evalhub", "worker", "-Q", queues, "--concurrency", "1", "-P", "solo",
         "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
        cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture
def real_broker() -> Any:
    """Messages go to Redis for these tests, not inline (the suite runs Celery eagerly elsewhere)."""
    from evalhub.celery import app

    app.conf.task_always_eager = False
    yield app
    app.conf.task_always_eager = True


def _purge_queues() -> None:
    from evalhub.celery import app

    with app.connection_for_write() as conn:
        for queue in ("default", "gpu"):
            conn.default_channel.queue_purge(queue)


@pytest.mark.django_db(transaction=True)
def test_worker_runs_a_job_once_even_when_the_message_is_delivered_twice(world: Any, real_broker: Any) -> None:
    _needs_real_services()
    app = real_broker

    _purge_queues()
    job = Job.objects.create(project=world.project, kind="jobs.ping", params={"steps": 3, "delay_s": 0.3})
    # Two messages for one job: a redelivery, or a user double-clicking "run".
    app.send_task("evalhub.jobs.tasks.run_job", args=[job.pk], queue="default")
    app.send_task("evalhub.jobs.tasks.run_job", args=[job.pk], queue="default")
    worker = start_worker()
    try:
        assert wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, 90), Job.objects.get(pk=job.pk).log
        time.sleep(2)  # give the second message time to be consumed
    finally:
        stop_worker(worker)
    job.refresh_from_db()
    assert job.attempts == 1
    assert job.result["steps"] == 3
    assert job.progress_current == job.progress_total == 3


@pytest.mark.django_db(transaction=True)
def test_job_survives_a_killed_worker_and_finishes_on_the_next(world: Any, real_broker: Any) -> None:
    _needs_real_services()
    from evalhub.jobs import services

    app = real_broker

    _purge_queues()
    job = Job.objects.create(project=world.project, kind="jobs.ping", params={"steps": 40, "delay_s": 0.25})
    app.send_task("evalhub.jobs.tasks.run_job", args=[job.pk], queue="default")
    first = start_worker(EVALHUB_JOB_LEASE_SECONDS="5")
    try:
        assert wait_for(lambda: Job.objects.get(pk=job.pk).progress_current >= 3, 60)
    finally:
        stop_worker(first, signal.SIGKILL)
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING  # the row still says running: nobody told it
    second = start_worker(EVALHUB_JOB_LEASE_SECONDS="5")
    try:
        # The lease runs out; the stale-job sweep (celery beat in production) hands the job over.
        assert wait_for(lambda: bool(services.jobs_requeue_stale()) or Job.objects.get(pk=job.pk).attempts > 1, 30)
        assert wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, 120), Job.objects.get(pk=job.pk).log
    finally:
        stop_worker(second)
    job.refresh_from_db()
    assert job.attempts == 2
    assert "stopped heartbeating" in job.log
    assert job.result["worker"] != "" and str(os.getpid()) not in job.result["worker"].split(":")[1]
