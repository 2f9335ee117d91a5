"""Job kinds and their handlers. Each app registers the services that do its long work here.

A handler is `handler(job: Job, ctx: JobContext) -> dict` returning the JSON result. It must be safe to call again
after a crash: write outputs idempotently and resume from checkpoints (see JobContext.checkpoint_dir).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext
    from evalhub.jobs.models import Job

Handler = Callable[["Job", "JobContext"], dict[str, Any]]


@dataclass(frozen=True)
class JobKind:
    name: str
    handler: Handler
    queue: str
    on_failure: Callable[[Job], None] | None = None


_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, queue: str = "default", on_failure: Callable[[Job], None] | None = None) -> Callable[[Handler], Handler]:
    """Register a handler for a job kind. `on_failure` lets the owning app mirror a failure into its own row."""

    def register(handler: Handler) -> Handler:
        existing = _KINDS.get(name)
        if existing is not None and existing.handler.__qualname__ != handler.__qualname__:
            raise RuntimeError(f"job kind {name!r} is registered twice")
        _KINDS[name] = JobKind(name=name, handler=handler, queue=queue, on_failure=on_failure)
        return handler

    return register


_FINISH_LISTENERS: list[Callable[[Job], None]] = []


def on_job_finished(listener: Callable[[Job], None]) -> Callable[[Job], None]:
    """Register `listener(job)`, called once for every job that reaches a final state (succeeded, failed, cancelled),
    after that state is committed. Lets one job's end start the next step of a chain (the feedback app's retrain)
    without any worker waiting. A listener must be quick and idempotent; its exceptions are logged, never raised."""
    if listener not in _FINISH_LISTENERS:
        _FINISH_LISTENERS.append(listener)
    return listener


def notify_finished(job_id: int) -> None:
    import logging

    from evalhub.jobs.models import Job

    _load_all()
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return
    for listener in _FINISH_LISTENERS:
        try:
            listener(job)
        except Exception:  # the job's own state is final and committed; a listener must not change that
            logging.getLogger(__name__).exception("job-finished listener %s failed for job %s", listener, job_id)


def get_kind(name: str) -> JobKind:
    _load_all()
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"no handler registered for job kind {name!r}") from None


def _load_all() -> None:
    """Import every app's `jobs` module so their handlers are registered in this process."""
    from importlib import import_module

    from django.apps import apps

    for config in apps.get_app_configs():
        if config.name.startswith("evalhub."):
            try:
                import_module(f"{config.name}.jobs")
            except ModuleNotFoundError as exc:
                if exc.name != f"{config.name}.jobs":
                    raise
