"""What a job handler gets: progress reporting, logging, cancellation and a stable checkpoint directory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from evalhub.jobs import services
from evalhub.jobs.models import Job


class JobCancelled(Exception):
    """Raised inside a handler when the user cancelled the job; the job ends as cancelled, not failed."""


class LeaseLost(Exception):
    """This worker no longer owns the job (it was too slow to heartbeat and another worker took over)."""


class JobError(Exception):
    """A failure whose message is meant for the user as it is (bad data, refused config, NaN loss...)."""


class JobContext:
    PROGRESS_EVERY_S = 0.5
    CANCEL_CHECK_EVERY_S = 1.0

    def __init__(self, job: Job, owner: str) -> None:
        self.job = job
        self.owner = owner
        self._last_progress = 0.0
        self._last_cancel_check = 0.0
        self._cancelled = False
        self._lease_lost = threading.Event()

    @property
    def checkpoint_dir(self) -> Path:
        """The same directory on every attempt of this job, so a resumed attempt finds the last checkpoint."""
        path = Path(settings.ARTIFACT_ROOT) / "jobs" / str(self.job.pk)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def progress(self, current: float, total: float, message: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < self.PROGRESS_EVERY_S and current < total:
            return
        self._last_progress = now
        if not services.job_progress(self.job.pk, self.owner, current=current, total=total, message=message):
            raise LeaseLost(f"job {self.job.pk} is no longer owned by {self.owner}")
        self.raise_if_cancelled()

    def log(self, line: str) -> None:
        services.job_log(self.job.pk, line)

    def should_stop(self) -> bool:
        if self._lease_lost.is_set():
            return True
        now = time.monotonic()
        if now - self._last_cancel_check >= self.CANCEL_CHECK_EVERY_S:
            self._last_cancel_check = now
            self._cancelled = services.job_cancel_requested(self.job.pk)
        return self._cancelled

    def raise_if_cancelled(self) -> None:
        if self._lease_lost.is_set():
            raise LeaseLost(f"job {self.job.pk} lease lost")
        if self.should_stop():
            raise JobCancelled()

    def _taken_over(self) -> bool:
        """True when another worker owns the job now, or it ended. A row this thread's connection cannot see
        (the job was created in a transaction not yet committed, as in tests) is not a takeover."""
        row = Job.objects.filter(pk=self.job.pk).values_list("lease_owner", "status").first()
        return row is not None and (row[0] != self.owner or row[1] != "running")

    @contextmanager
    def heartbeating(self) -> Iterator[None]:
        """Renew the lease from a background thread, so a long single step (loading a model) keeps the job alive."""
        stop = threading.Event()
        interval = max(1.0, settings.JOB_LEASE_SECONDS / 4)

        def beat() -> None:
            try:
                while not stop.wait(interval):
                    if not services.job_heartbeat(self.job.pk, self.owner) and self._taken_over():
                        self._lease_lost.set()
                        return
            finally:
                connection.close()

        thread = threading.Thread(target=beat, name=f"job-{self.job.pk}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=interval + 5)
