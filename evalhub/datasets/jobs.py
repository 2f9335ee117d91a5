"""Long work of the datasets app, run by the shared job mechanism (evalhub.jobs)."""

from __future__ import annotations

from typing import Any

from evalhub.datasets import services
from evalhub.datasets.models import QualityReport
from evalhub.jobs.context import JobContext, JobError
from evalhub.jobs.models import Job
from evalhub.jobs.registry import job_kind


@job_kind(services.QUALITY_JOB_KIND)
def quality_report_job(job: Job, ctx: JobContext) -> dict[str, Any]:
    """Compute one quality report. Safe to run again after a crash: it overwrites the same report row."""
    report = QualityReport.objects.select_related("version__dataset", "compare_to__dataset").filter(job=job).first()
    if report is None:
        raise JobError("The quality report this job belongs to no longer exists.")
    ctx.log(f"quality report of {report.version}" + (f" compared to {report.compare_to}" if report.compare_to else ""))
    data = services.quality_report_compute(report=report, progress=lambda cur, total, msg: ctx.progress(cur, total, msg))
    ctx.progress(3, 3, "Done", force=True)
    return {"report_id": report.pk, "n_rows": data.get("n_rows"), "findings": len(data.get("findings", []))}
