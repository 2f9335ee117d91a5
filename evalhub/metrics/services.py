"""Every state change of metric runs and scores.

Queues: a run that includes BERTScore goes to the `gpu` queue (job kind `metrics.score_gpu`), any other run to
`default` (`metrics.score`). BERTScore runs a transformer over every candidate and reference, which is GPU work;
ROUGE, BLEU, chrF, exact match, token F1 and length are string operations that take seconds on a CPU and should not
wait behind a fine-tune on the one-job-at-a-time GPU queue.

Refusals are by name and recorded in `MetricRun.refused` (metric -> reason, from `trainer.metrics.plan` or a
`MetricError` naming the metric): when the eval split has no references, each reference-based metric is refused and
the reference-free ones still run. When only some examples lack a reference, reference-based metrics run on the others and the rest get no value
(never a silent 0). Outputs whose generation failed get no value for any metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction

from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.jobs.services import job_create
from evalhub.metrics.models import MetricRun, MetricScore

if TYPE_CHECKING:
    from evalhub.jobs.context import JobContext

JOB_KIND = "metrics.score"
JOB_KIND_GPU = "metrics.score_gpu"
GPU_MODULES = frozenset({"bertscore"})
DEFAULT_METRICS = ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "bertscore", "exact_match", "token_f1", "output_length"]


def available_metrics() -> list[str]:
    """Names of the local metrics (trainer.metrics.METRICS), in the library's order."""
    from trainer.metrics import METRICS

    return list(METRICS)


def metric_module(name: str) -> str:
    """The evaluate module that computes `name` (several ROUGE or BERTScore names share one); a hub metric is its own."""
    from trainer.metrics import METRICS

    spec = METRICS.get(name)
    return spec.module if spec is not None else name


def unit_scale(name: str) -> bool:
    from trainer.metrics import METRICS

    spec = METRICS.get(name)
    return spec is not None and spec.scale == "0-1"


def _has_references(generation_run: GenerationRun) -> bool:
    return generation_run.eval_version.examples.exclude(reference="").exists()


def _clean_options(options: Any, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Options are {module or metric name: {option: value}}; the library checks the option names themselves."""
    if options in (None, ""):
        return {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValidationError({"options": 'Options must map a metric to its settings, e.g. {"bertscore": {"num_layers": 6}}.'})
    wanted = set(names) | {metric_module(n) for n in names}
    stray = sorted(k for k in options if k not in wanted)
    if stray:
        raise ValidationError({"options": f"Options given for metrics that were not requested: {', '.join(stray)}."})
    return options


def metric_run_create(
    *,
    generation_run: GenerationRun,
    metrics: Sequence[str],
    options: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
) -> MetricRun:
    """Validate and queue a metric run over a succeeded generation run. ValidationError names the field at fault.

    Unknown metric names are refused here; reference-based metrics on an eval set without references are accepted
    and recorded as refused by name (the run still scores the reference-free ones).
    """
    from django.conf import settings

    from trainer.metrics import plan

    names = list(dict.fromkeys(m.strip() for m in metrics if m and m.strip()))
    if not names:
        raise ValidationError({"metrics": "Choose at least one metric."})
    _, refused = plan(names, has_references=True, allow_downloads=settings.ALLOW_MODEL_DOWNLOADS)
    if refused:
        raise ValidationError({"metrics": [str(err) for err in refused.values()]})
    opts = _clean_options(options, names)
    if generation_run.status != RunStatus.SUCCEEDED:
        raise ValidationError({"generation_run": f"Generation run #{generation_run.pk} has not finished ({generation_run.status})."})
    if not Output.objects.filter(run=generation_run).exists():
        raise ValidationError({"generation_run": f"Generation run #{generation_run.pk} has no outputs."})
    _, no_ref_refusals = plan(names, has_references=_has_references(generation_run), allow_downloads=settings.ALLOW_MODEL_DOWNLOADS)
    kind = JOB_KIND_GPU if GPU_MODULES & {metric_module(n) for n in names if n not in no_ref_refusals} else JOB_KIND
    with transaction.atomic():
        run = MetricRun.objects.create(
            project=generation_run.project, generation_run=generation_run, metrics=names, options=opts,
            refused={name: err.message for name, err in no_ref_refusals.items()}, created_by=created_by,
        )
        run.job = job_create(
            project=generation_run.project, kind=kind, params={"metric_run_id": run.pk}, created_by=created_by,
            message=f"Waiting for a worker to score {', '.join(names)}",
        )
        run.save(update_fields=["job"])
    return run


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _store(run: MetricRun, outputs: list[Output], results: dict[str, Any]) -> None:
    """Replace this run's scores of these names (one transaction, so a crash never leaves half a metric)."""
    rows = [
        MetricScore(metric_run=run, output=o, metric=name, value=_finite(v))
        for name, result in results.items()
        for o, v in zip(outputs, result.per_item)
    ]
    with transaction.atomic():
        MetricScore.objects.filter(metric_run=run, metric__in=list(results)).delete()
        MetricScore.objects.bulk_create(rows, batch_size=1000)


def _set(run: MetricRun, **fields: Any) -> None:
    MetricRun.objects.filter(pk=run.pk).update(**fields)
    for name, value in fields.items():
        setattr(run, name, value)


def metric_run_execute(*, run: MetricRun, ctx: JobContext) -> dict[str, Any]:
    """Score every requested metric not done yet, one evaluate module at a time (a resumed attempt skips modules
    already stored). Outputs whose generation failed get no value; so do outputs without a reference, for the
    reference-based metrics; the library refuses a reference-based metric by name when no output has a reference."""
    from django.conf import settings

    from evalhub.jobs.context import JobCancelled, JobError
    from trainer.metrics import MetricError, plan, score

    run = MetricRun.objects.select_related("generation_run").get(pk=run.pk)
    _set(run, status=RunStatus.RUNNING, error="")
    outputs = list(
        Output.objects.filter(run=run.generation_run).select_related("example").order_by("example__index", "sample_index")
    )
    predictions: list[str | None] = [None if o.error else o.text for o in outputs]
    references: list[str | None] = [o.example.reference if o.example.reference.strip() else None for o in outputs]
    has_references = any(r is not None for r in references)

    summary: dict[str, Any] = dict(run.summary or {})
    done: list[str] = list(summary.get("done", []))
    refused: dict[str, str] = dict(run.refused or {})
    corpus: dict[str, Any] = dict(run.corpus or {})
    summary.update(
        outputs=len(outputs),
        excluded_generation_errors=sum(o.error != "" for o in outputs),
        without_reference=sum(1 for p, r in zip(predictions, references) if p is not None and r is None) if has_references else 0,
    )
    runnable, refusals = plan(
        [m for m in run.metrics if m not in refused], has_references=has_references,
        allow_downloads=settings.ALLOW_MODEL_DOWNLOADS,
    )
    for name, err in refusals.items():
        refused[name] = err.message
        ctx.log(f"{name} refused: {err.message}")
    groups: dict[str, list[str]] = {}
    for name in runnable:
        if name not in done:
            groups.setdefault(metric_module(name), []).append(name)
    _set(run, refused=refused, summary=summary)

    total = len(groups)
    try:
        for step, (module, names) in enumerate(groups.items()):
            ctx.progress(step, total, f"scoring {', '.join(names)}", force=True)
            opts = {k: v for k, v in (run.options or {}).items() if k in names or k == module}
            try:
                results = score(
                    names, predictions, references if has_references else None, options=opts,
                    allow_downloads=settings.ALLOW_MODEL_DOWNLOADS,
                )
            except MetricError as exc:
                for name in names:
                    refused[name] = exc.message if exc.metric in (name, module, None) else str(exc)
                _set(run, refused=refused)
                ctx.log(f"{', '.join(names)} refused: {exc}")
                continue
            _store(run, outputs, results)
            for name, result in results.items():
                corpus[name] = _finite(result.corpus)
            done.extend(names)
            summary["done"] = done
            _set(run, corpus=corpus, summary=summary)
    except JobCancelled:
        _set(run, status=RunStatus.CANCELLED)
        raise
    if not done:
        raise JobError("No metric could run. " + "; ".join(f"{m}: {why}" for m, why in refused.items()))
    _set(run, status=RunStatus.SUCCEEDED, summary=summary, corpus=corpus, refused=refused)
    ctx.progress(total, total, "done", force=True)
    return {"scored": done, "refused": refused}


def metric_run_mark_failed(run_id: int, error: str) -> None:
    MetricRun.objects.filter(pk=run_id).update(status=RunStatus.FAILED, error=error[:5000])
