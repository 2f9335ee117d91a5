"""The feedback app's part in the job system: no job kind of its own, a listener that advances retrain pipelines
whenever a job they wait for ends (see `services` for why the chain is driven this way)."""

from __future__ import annotations

from evalhub.jobs.registry import on_job_finished


@on_job_finished
def advance_retrains(job):  # type: ignore[no-untyped-def]
    from evalhub.feedback.services import retrain_on_job_finished

    retrain_on_job_finished(job)
