from __future__ import annotations

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(models.Model):
    """One unit of long work. This row, not the broker, is the truth about the job.

    A worker may only run a job after *claiming* it (an atomic UPDATE that takes a lease); it then renews the lease
    by heartbeating. A redelivered message finds the job running under a live lease, or finished, and does nothing.
    A job whose lease expired (its worker died) is claimed again and its handler resumes from its checkpoint.
    """

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=60, db_index=True)
    queue = models.CharField(max_length=30, default="default")
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_current = models.FloatField(default=0)
    progress_total = models.FloatField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=JobStatus.values), name="job_status_valid"),
            models.CheckConstraint(condition=models.Q(progress_current__gte=0), name="job_progress_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def fraction(self) -> float:
        if self.status == JobStatus.SUCCEEDED:
            return 1.0
        if self.progress_total <= 0:
            return 0.0
        return max(0.0, min(1.0, self.progress_current / self.progress_total))

    @property
    def eta_seconds(self) -> float | None:
        """Linear estimate from the time spent so far; None until there is something to extrapolate from."""
        if self.status != JobStatus.RUNNING or not self.started_at or self.fraction <= 0 or not self.heartbeat_at:
            return None
        elapsed = (self.heartbeat_at - self.started_at).total_seconds()
        return max(0.0, elapsed * (1 - self.fraction) / self.fraction)


class WorkerNode(models.Model):
    """What one Celery worker can do, as it reported itself: the web process may have no GPU while workers do.

    Written by the worker's own signal handlers (evalhub/jobs/workers.py): on start, about once a minute after, and
    on a clean stop. A worker that died without stopping simply stops being seen; readers judge liveness by age.
    """

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list, blank=True)
    cuda = models.BooleanField(default=False)
    cuda_devices = models.JSONField(default=list, blank=True)  # [{"name", "memory_bytes", "bf16"}]
    bitsandbytes = models.BooleanField(default=False)
    torch_version = models.CharField(max_length=60, blank=True)
    python_version = models.CharField(max_length=30, blank=True)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname
