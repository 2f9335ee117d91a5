"""Demo steps of the generation and metrics stages: "v1 base" and "v2 LoRA" write descriptions for the eval split,
and both runs are scored with the automated metrics.

Each step is idempotent: it finds what an earlier run made (a generation run of that version over that eval split
with the demo's decoding settings, a metric run of that generation run with the demo's metrics) and only makes what
is missing. Jobs run here, in this process, like the tuning demo's training run; if a worker already took one
(`make demo` started it), the step waits for the worker instead. A job left "running" by a demo cut short is taken
over once its lease runs out. The loader (evalhub/demo/loader.py) imports this module and runs the steps after the
tuning step.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, TextIO

from django.utils import timezone

from evalhub.datasets.models import DatasetVersion
from evalhub.generation import services
from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.jobs.models import FINISHED, Job, JobStatus
from evalhub.jobs.services import jobs_requeue_stale
from evalhub.jobs.tasks import execute_job
from evalhub.metrics.models import MetricRun
from evalhub.metrics.services import metric_run_create
from evalhub.projects.models import Project
from evalhub.tuning.demo import DEMO_BASE_NAME, DEMO_RUN_NAME  # also registers the tuning step before ours
from evalhub.tuning.models import ModelVersion

# Greedy, so the demo's outputs are the same on every machine. 60-90 words is ~80-120 tokens: 120 new tokens let
# nearly every description end on its own. The 18 eval prompts go through in one batch.
DEMO_DECODE: dict[str, Any] = {"do_sample": False, "max_new_tokens": 120, "seed": 0, "batch_size": 18}
DEMO_METRICS: list[str] = ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "bertscore", "output_length"]
WAIT_FOR_WORKER_S = 3600
_FAILED = (RunStatus.FAILED, RunStatus.CANCELLED)


# --------------------------------------------------------------------------------------------------------------------
# Lookups shared with the reviews and arena demo steps


def demo_eval_split(project: Project, state: dict[str, Any] | None = None) -> DatasetVersion | None:
    """The eval split the data steps made (from the loader's state when it has it)."""
    found = (state or {}).get("split:eval")
    if found is not None:
        return found
    return (
        DatasetVersion.objects.filter(dataset__project=project, split_name="eval")
        .order_by("-created_at", "-pk")
        .first()
    )


def demo_versions(project: Project) -> list[ModelVersion]:
    """[v1 base, v2 LoRA] as the tuning demo step made them; the LoRA is missing when its training did not finish."""
    v1 = (
        ModelVersion.objects.filter(
            project=project, base_model__name=DEMO_BASE_NAME, adapter_key="", training_run__isnull=True
        )
        .order_by("number")
        .first()
    )
    v2 = (
        ModelVersion.objects.filter(project=project, training_run__name=DEMO_RUN_NAME)
        .exclude(adapter_key="")
        .order_by("-number")
        .first()
    )
    return [v for v in (v1, v2) if v is not None]


def _wanted_settings() -> dict[str, Any]:
    return services.decode_settings(DEMO_DECODE).to_dict()


def existing_run(version: ModelVersion, eval_version: DatasetVersion) -> GenerationRun | None:
    """The demo's run of this version: a succeeded one first, else the latest one still queued or running."""
    wanted = _wanted_settings()
    runs = [
        r
        for r in GenerationRun.objects.filter(model_version=version, eval_version=eval_version)
        .select_related("job")
        .order_by("-pk")
        if r.settings == wanted
    ]
    done = [r for r in runs if r.status == RunStatus.SUCCEEDED]
    if done:
        return done[-1]  # the oldest succeeded one: the one the reviews and the arena were built on
    return next((r for r in runs if r.status not in _FAILED), None)


def demo_generation_runs(project: Project, state: dict[str, Any] | None = None) -> list[GenerationRun]:
    """The succeeded demo generation runs, in version order (v1 base first). Creates nothing."""
    eval_version = demo_eval_split(project, state)
    if eval_version is None:
        return []
    runs = [existing_run(v, eval_version) for v in demo_versions(project)]
    return [r for r in runs if r is not None and r.status == RunStatus.SUCCEEDED]


# --------------------------------------------------------------------------------------------------------------------
# Running jobs here


def finish_job(job: Job, stdout: TextIO, *, wait_s: float = WAIT_FOR_WORKER_S) -> None:
    """Run the job in this process; if a live worker holds it, wait for that worker. A job whose worker died (a
    demo cut short) is claimed here once its lease runs out, or failed by the stale-job sweep after its last try."""
    deadline = time.monotonic() + wait_s
    said = False
    while time.monotonic() < deadline:
        if execute_job(job.pk) != "skipped":
            break
        job.refresh_from_db()
        if job.status in FINISHED or job.status == JobStatus.QUEUED:
            break  # finished, or queued yet unclaimable (cancel requested, attempts used up): nothing to wait for
        if (
            job.status == JobStatus.RUNNING
            and job.lease_expires_at is not None
            and (job.lease_expires_at < timezone.now() - timedelta(seconds=1))
        ):
            jobs_requeue_stale()  # what the beat does every minute: hand it on, or fail it after its last attempt
            continue
        if not said:
            stdout.write(f"    a worker is running {job.kind} #{job.pk}; waiting\n")
            said = True
        time.sleep(2)
    job.refresh_from_db()


# --------------------------------------------------------------------------------------------------------------------
# Steps


def generate(
    project: Project, lead: Any, version: ModelVersion, eval_version: DatasetVersion, stdout: TextIO
) -> tuple[GenerationRun, str]:
    """The demo's run of `version` over `eval_version` with the demo's decoding settings, made and run here when it
    is missing (or finished when an earlier demo left it unfinished); (the run, a summary). The run did not succeed
    when its status says otherwise."""
    run = existing_run(version, eval_version)
    if run is not None and run.status == RunStatus.SUCCEEDED:
        return run, f"found {version} (run #{run.pk})"
    if run is None:
        run = services.generation_run_create(
            project=project,
            model_version=version,
            eval_version=eval_version,
            settings=DEMO_DECODE,
            created_by=lead,
        )
        stdout.write(f"    generating {eval_version.row_count} descriptions with {version}\n")
    else:
        stdout.write(f"    finishing generation run #{run.pk} of {version}\n")
    assert run.job is not None
    finish_job(run.job, stdout)
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED:
        return run, f"{version}: run #{run.pk} {run.status}" + (f" ({run.error})" if run.error else "")
    summary = run.summary or {}
    return run, (
        f"made {version} (run #{run.pk}: {summary.get('outputs', 0)} outputs, "
        f"{summary.get('generation_seconds', 0):.0f} s, {summary.get('hit_max_tokens', 0)} hit the token limit)"
    )


def generation_step(project: Project, lead: Any, stdout: TextIO, state: dict[str, Any] | None = None) -> str:
    eval_version = demo_eval_split(project, state)
    versions = demo_versions(project)
    if eval_version is None or not versions:
        return "skipped: no eval split or no demo model version"
    parts = [generate(project, lead, version, eval_version, stdout)[1] for version in versions]
    if len(versions) < 2:
        parts.append("no v2 LoRA to compare (its training did not finish)")
    return "; ".join(parts)


def _existing_metric_run(run: GenerationRun) -> MetricRun | None:
    runs = [
        m
        for m in MetricRun.objects.filter(generation_run=run).select_related("job").order_by("pk")
        if list(m.metrics) == DEMO_METRICS
    ]
    done = [m for m in runs if m.status == RunStatus.SUCCEEDED]
    if done:
        return done[0]
    return next((m for m in reversed(runs) if m.status not in _FAILED), None)


def metrics_step(project: Project, lead: Any, stdout: TextIO, state: dict[str, Any] | None = None) -> str:
    runs = demo_generation_runs(project, state)
    if not runs:
        return "skipped: no finished demo generation run"
    parts: list[str] = []
    for run in runs:
        version = run.model_version
        metric_run = _existing_metric_run(run)
        made = metric_run is None or metric_run.status != RunStatus.SUCCEEDED
        if metric_run is None:
            metric_run = metric_run_create(generation_run=run, metrics=DEMO_METRICS, created_by=lead)
            stdout.write(f"    scoring {version}'s outputs with {', '.join(DEMO_METRICS)}\n")
        if metric_run.status != RunStatus.SUCCEEDED:
            assert metric_run.job is not None
            finish_job(metric_run.job, stdout)
            metric_run.refresh_from_db()
        if metric_run.status != RunStatus.SUCCEEDED:
            parts.append(
                f"{version}: metric run #{metric_run.pk} {metric_run.status}"
                + (f" ({metric_run.error})" if metric_run.error else "")
            )
            continue
        corpus = metric_run.corpus or {}
        shown = ", ".join(
            f"{name} {corpus[name]:.3g}"
            for name in ("rougeL", "chrf", "bertscore", "output_length")
            if corpus.get(name) is not None
        )
        parts.append(f"{'made' if made else 'found'} {version} (#{metric_run.pk}: {shown})")
    return "; ".join(parts)


def _generation(ctx: Any) -> str:
    return generation_step(ctx.project, ctx.users["lead"], ctx.stdout, ctx.state)


def _metrics(ctx: Any) -> str:
    return metrics_step(ctx.project, ctx.users["lead"], ctx.stdout, ctx.state)


try:
    from evalhub.demo.loader import register_step
except ImportError:  # the demo app is optional; the functions above still work on their own
    pass
else:
    register_step("generation: v1 base and v2 LoRA on the eval split", _generation)
    register_step("metrics: ROUGE, BLEU, chrF, BERTScore, length", _metrics)
