"""Built-in job kinds."""

from __future__ import annotations

import time
from typing import Any

from evalhub.jobs.context import JobContext
from evalhub.jobs.models import Job
from evalhub.jobs.registry import job_kind


@job_kind("jobs.ping")
def ping(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Diagnostic: proves a worker consumes the queue and reports progress (`manage.py ping_worker`)."""
    steps = int(job.params.get("steps", 5))
    delay = float(job.params.get("delay_s", 0.2))
    for step in range(1, steps + 1):
        time.sleep(delay)
        ctx.progress(step, steps, f"step {step} of {steps}", force=True)
    return {"steps": steps, "worker": ctx.owner}


@job_kind("jobs.ping_gpu", queue="gpu")
def ping_gpu(job: Job, ctx: JobContext) -> dict[str, Any]:
    import torch

    ctx.progress(1, 1, "checked", force=True)
    return {"cuda": torch.cuda.is_available(), "worker": ctx.owner}
