"""Every state change of the feedback app: exports (annotations -> an immutable dataset version plus files) and
retrain pipelines (export -> train -> generate -> score -> arena).

The retrain chain: one job's success starts the next. Each step is an ordinary job of the app that owns it
(`tuning.train`, `generation.generate`, `metrics.score`), and the jobs app calls `retrain_advance` (through a
job-finished listener registered in `feedback.jobs`) whenever one of them ends. Chosen over an orchestrating job that
waits for its children because a waiting job holds a worker slot for hours: with the embedded setup's single worker
(`-Q default,gpu --concurrency 1`) it would wait forever for children that can only run in that slot, and in
production every concurrent retrain would pin one CPU worker. Here no worker waits; the pipeline row is the chain's
state, `retrain_advance` is idempotent (it locks the row and only acts on finished children), and a listener that
never ran (a worker killed between a child's success and the listener) is recovered by `retrain_advance` from the
pipeline page ("Check progress") or the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from evalhub.core.storage import artifact_dir, artifact_from_key, artifact_key, artifact_path
from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionKind, VersionSource
from evalhub.feedback import builders
from evalhub.feedback.builders import ExportOptions
from evalhub.feedback.formats import jsonl_to_hf_folder, jsonl_to_parquet
from evalhub.feedback.models import (
    ExportKind,
    FeedbackExport,
    RetrainMode,
    RetrainPipeline,
    RetrainStage,
    RetrainStatus,
)
from evalhub.jobs.models import FINISHED, Job, JobStatus
from evalhub.projects.models import Project

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet", "hf")
DATASET_NAMES = {ExportKind.SFT: "Feedback: SFT", ExportKind.DPO: "Feedback: preferences"}
BATCH = 2000
DEFAULT_METRICS = ["rougeL", "chrf", "output_length"]
DEFAULT_DPO_HYPERPARAMETERS: dict[str, Any] = {"learning_rate": 5e-5, "epochs": 1, "max_steps": None}
_REASON_WORDS = {
    "leakage": "prompt in a held-out eval set",
    "low_agreement": "agreement below the minimum",
    "not_adjudicated": "not adjudicated",
    "excluded_annotator": "only annotators who were left out",
    "ratings_by_excluded_annotators": "ratings by annotators who were left out",
    "below_min_score": "score below the threshold",
    "superseded_by_correction": "a correction of it is exported instead",
    "below_margin": "score difference below the margin",
    "missing_criteria": "not rated on every chosen criterion",
    "split_vote": "votes split evenly",
    "no_preference": "votes were ties or both bad",
    "duplicate": "duplicate",
    "empty_output": "empty or failed output",
    "identical_or_empty": "identical or empty sides",
    "no_reference": "no reference answer",
}


# --------------------------------------------------------------------------------------------------------------------
# Exports


def _example_fields(record: builders.Record) -> dict[str, Any]:
    single_user = len(record.prompt) == 1 and record.prompt[0]["role"] == "user"
    return {
        "external_id": record.key[:200],
        "prompt": record.prompt[0]["content"] if single_user else "",
        "messages": None if single_user else record.prompt,
        "reference": record.answer,
        "rejected": record.rejected,
        "attributes": record.attributes,
    }


def _write(plan: builders.Plan, jsonl: Path, rows_file: Path) -> tuple[int, str, list[str]]:
    """Stream the records into the TRL JSONL and a side file of dataset rows; (count, sha256, attribute names)."""
    digest = hashlib.sha256()
    count = 0
    attribute_names: dict[str, None] = {}
    with jsonl.open("w", encoding="utf-8") as out, rows_file.open("w", encoding="utf-8") as rows:
        for record in builders.records(plan):
            line = json.dumps(record.trl(), ensure_ascii=False) + "\n"
            out.write(line)
            digest.update(line.encode("utf-8"))
            rows.write(json.dumps(_example_fields(record), ensure_ascii=False) + "\n")
            attribute_names.update(dict.fromkeys(record.attributes))
            count += 1
    return count, digest.hexdigest(), list(attribute_names)


def explain_empty(counts: dict[str, Any]) -> str:
    """Why an export has no record, in words: the leakage case named first, since it is the surprising one."""
    candidates = sum(counts.get("candidates", {}).values())
    if candidates == 0:
        return "Nothing to export: there are no annotations of the chosen kinds in scope yet."
    dropped: dict[str, int] = {}
    for reasons in counts.get("dropped", {}).values():
        for reason, n in reasons.items():
            dropped[reason] = dropped.get(reason, 0) + n
    leaked = dropped.get("leakage", 0)
    parts = [
        f"{n:,} {_REASON_WORDS.get(r, r.replace('_', ' '))}"
        for r, n in sorted(dropped.items(), key=lambda x: -x[1])
    ]
    if leaked and leaked == sum(
        n for r, n in dropped.items() if r not in ("ratings_by_excluded_annotators",)
    ):
        return (
            f"Nothing to export: every one of the {leaked:,} record(s) that passed the filters has a prompt in a "
            "held-out eval set, and those never enter training data. Annotate outputs on prompts outside the "
            "eval sets."
        )
    return f"Nothing to export: the filters leave no record ({candidates:,} candidate(s); dropped: {'; '.join(parts)})."


def _feedback_dataset(project: Project, kind: str, user: AbstractBaseUser | None) -> Dataset:
    dataset, _ = Dataset.objects.get_or_create(
        project=project,
        name=DATASET_NAMES[ExportKind(kind)],
        defaults={
            "description": "Training data exported from reviews, corrections, curation and arena votes.",
            "created_by": user,
        },
    )
    return Dataset.objects.select_for_update().get(pk=dataset.pk)


def _create_version(
    *,
    dataset: Dataset,
    kind: str,
    rows_file: Path,
    count: int,
    digest: str,
    attribute_names: list[str],
    user: AbstractBaseUser | None,
    summary: dict[str, Any],
    note: str,
) -> DatasetVersion:
    same = dataset.versions.filter(content_hash=digest).order_by("number").first()
    if same is not None:
        raise ValidationError(
            f"Nothing new: this export is identical to v{same.number} of “{dataset.name}” "
            "(no annotation changed what it contains), so no version was created."
        )
    number = (dataset.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = DatasetVersion(
        dataset=dataset,
        number=number,
        source=VersionSource.FEEDBACK,
        kind=VersionKind.PREFERENCE if kind == ExportKind.DPO else VersionKind.EXAMPLES,
        content_hash=digest,
        row_count=count,
        file_format="jsonl",
        attribute_names=attribute_names,
        has_reference=True,
        change_summary=summary,
        note=note,
        created_by=user,
    )
    version.save(force_insert=True)
    batch: list[Example] = []
    with rows_file.open(encoding="utf-8") as fh:
        for index, line in enumerate(fh):
            batch.append(Example(version=version, index=index, **json.loads(line)))
            if len(batch) >= BATCH:
                Example.objects.bulk_create(batch)
                batch = []
    if batch:
        Example.objects.bulk_create(batch)
    return version


def export_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    options: ExportOptions,
    name: str = "",
    formats: Sequence[str] = ("jsonl",),
    extra_held_out: Iterable[int] = (),
    reuse_identical: bool = False,
) -> FeedbackExport:
    """Build an export: stream the records to JSONL (and Parquet / an HF folder when asked), then store them as a new
    immutable dataset version (source "feedback") with a FeedbackExport row holding filters, counts and lineage.

    Refused with ValidationError, creating nothing: bad options, an export whose filters leave nothing (or only
    records whose prompts are in a held-out eval set; the message says so), content identical to an earlier version
    (unless `reuse_identical`: then that earlier export is returned, with `reused = True`; a retrain with new
    settings on unchanged feedback trains on the same version).
    """
    formats = list(dict.fromkeys(["jsonl", *formats]))
    if set(formats) - set(FORMATS):
        raise ValidationError({"formats": f"Choose among {', '.join(FORMATS)}."})
    name = (name or "").strip()[:200]
    plan = builders.plan_export(project, options, extra_held_out=extra_held_out)
    staging = artifact_dir("feedback", "staging", uuid.uuid4().hex)
    try:
        jsonl = staging / "data.jsonl"
        count, digest, attribute_names = _write(plan, jsonl, staging / ".rows.jsonl")
        counts = plan.tally.as_counts()
        if count == 0:
            raise ValidationError({"__all__": explain_empty(counts)})
        if reuse_identical:
            same = (
                FeedbackExport.objects.filter(
                    project=project,
                    kind=options.kind,
                    version__content_hash=digest,
                    version__dataset__name=DATASET_NAMES[ExportKind(options.kind)],
                )
                .order_by("pk")
                .first()
            )
            if same is not None:
                shutil.rmtree(staging, ignore_errors=True)
                same.reused = True  # type: ignore[attr-defined]
                return same
        if "parquet" in formats:
            jsonl_to_parquet(jsonl, staging / "data.parquet")
        if "hf" in formats:
            jsonl_to_hf_folder(jsonl, staging / "hf")
        lineage = plan.tally.lineage()
        summary = {
            "feedback_export": None,  # filled in below, once the export row has an id
            "kind": options.kind,
            "sources": list(options.sources),
            "filters": options.as_dict(),
            "counts": counts,
            "held_out_versions": plan.held_out_ids,
            "excluded_annotators": plan.quality.as_dict()["excluded"],
        }
        with transaction.atomic():
            dataset = _feedback_dataset(project, options.kind, user)
            export = FeedbackExport.objects.create(
                project=project,
                kind=options.kind,
                name=name or f"{options.kind.upper()} from {', '.join(options.sources)}",
                sources=list(options.sources),
                filters=options.as_dict(),
                counts=counts,
                lineage=lineage,
                held_out=plan.held_out_ids,
                created_by=user,
            )
            summary["feedback_export"] = export.pk
            version = _create_version(
                dataset=dataset,
                kind=options.kind,
                rows_file=staging / ".rows.jsonl",
                count=count,
                digest=digest,
                attribute_names=attribute_names,
                user=user,
                summary=summary,
                note=f"feedback export #{export.pk}: {count:,} records from {counts['annotations']:,} annotations",
            )
            folder = artifact_path("feedback", "exports", export.pk)
            shutil.rmtree(folder, ignore_errors=True)  # a leftover of a rolled-back attempt with the same id
            (staging / ".rows.jsonl").unlink()
            folder.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(folder)
            staging = folder
            files = {"jsonl": artifact_key(folder / "data.jsonl")}
            if "parquet" in formats:
                files["parquet"] = artifact_key(folder / "data.parquet")
            if "hf" in formats:
                files["hf"] = artifact_key(folder / "hf")
            export.version = version
            export.files = files
            export.save(update_fields=["version", "files"])
        return export
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def export_discard(export: FeedbackExport) -> None:
    """Undo an export nothing uses yet (a retrain refused after building it): its version, rows and files."""
    version = export.version
    folder = artifact_path("feedback", "exports", export.pk)
    with transaction.atomic():
        export.delete()
        if version is not None:
            version.examples.all().delete()
            version.delete()
    shutil.rmtree(folder, ignore_errors=True)


def export_file(export: FeedbackExport, fmt: str) -> Path:
    key = (export.files or {}).get(fmt)
    if not key:
        raise ValidationError(
            {"format": f"This export has no {fmt} file; choose one of {', '.join(export.files)}."}
        )
    path = artifact_from_key(key)
    if not path.exists():
        raise ValidationError({"format": "The file is missing from storage."})
    return path


# --------------------------------------------------------------------------------------------------------------------
# Retrain from feedback


def _log(p: RetrainPipeline, message: str) -> None:
    p.log = [*(p.log or []), {"at": timezone.now().isoformat(timespec="seconds"), "message": message}]


def _training_config(
    parent: Any, objective: str, overrides: dict[str, Any] | None, base_model: Any
) -> tuple[str, dict[str, Any]]:
    """(method, hyperparameters) for a retrain step: the parent's own settings, DPO defaults on top for DPO, then
    the caller's. Validated here so a retrain is refused before anything is queued."""
    from evalhub.tuning import services as tuning

    run = parent.training_run
    base = dict(run.config) if run is not None else {}
    base.pop("beta", None)
    method = str(base.pop("method", "lora"))
    hyper = {k: v for k, v in base.items() if k != "placement"}
    placement = base.get("placement")
    if objective == "dpo":
        hyper.update(DEFAULT_DPO_HYPERPARAMETERS)
    given = dict(overrides or {})
    beta = given.pop("beta", None)
    method = str(given.pop("method", method))
    placement = given.pop("placement", placement)
    hyper.update(given)
    config = tuning.build_config(method, placement, hyper)
    tuning.config_validate(config, base_model)
    if objective == "dpo":
        from trainer.config import LORA_FAMILY

        if config.method not in LORA_FAMILY:
            raise ValidationError(
                {"method": f"DPO trains a LoRA-family adapter; {parent} has a {config.method} one"}
            )
    settings = config.to_dict()
    settings.pop("method")
    if beta is not None:
        settings["beta"] = beta
    return config.method, settings


def _start_training(
    p: RetrainPipeline, objective: str, parent: Any, export: FeedbackExport, user: Any
) -> Any:
    from evalhub.tuning import services as tuning

    settings = dict(p.settings.get(objective, {}))
    method = settings.pop("method")
    beta = settings.pop("beta", None)
    placement = settings.pop("placement", None)
    return tuning.training_run_create(
        project=p.project,
        user=user,
        base_model=parent.base_model,
        train_version=export.version,
        val_version=None,
        method=method,
        placement=placement,
        hyperparameters=settings,
        parent_version=parent,
        objective=objective,
        beta=beta,
        name=f"Retrain #{p.pk} · {objective.upper()} on {export.version.label} from {parent}",
    )


def retrain_start(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    parent_id: int | None,
    eval_version: DatasetVersion | None,
    mode: str,
    sft_options: ExportOptions | None = None,
    dpo_options: ExportOptions | None = None,
    hyperparameters: dict[str, dict[str, Any]] | None = None,
    decode: dict[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
) -> RetrainPipeline:
    """Build the export(s) and queue the first training run of a retrain. Everything that can be checked is checked
    first; a refusal (ValidationError naming the field) leaves nothing queued and no export behind."""
    from evalhub.generation.files import model_version_problems
    from evalhub.generation.services import decode_settings
    from evalhub.tuning import services as tuning
    from evalhub.tuning.models import ModelVersion

    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    parent = (
        ModelVersion.objects.filter(project=project, pk=parent_id)
        .select_related("base_model", "training_run")
        .first()
        if parent_id is not None
        else None
    )
    if parent is None:
        add(
            "parent",
            "That model version does not exist any more (it was deleted, or never was part of this "
            "project); choose the version to retrain from."
            if parent_id is not None
            else "Choose the model version to retrain from.",
        )
    if mode not in RetrainMode.values:
        add("mode", f"Choose one of {', '.join(RetrainMode.values)}.")
    if eval_version is None:
        add("eval_version", "Choose the eval set to generate on and compare with.")
    elif eval_version.dataset.project_id != project.pk:
        add("eval_version", "That dataset version belongs to another project.")
    elif not eval_version.examples.exists():
        add("eval_version", f"{eval_version} has no examples to generate from.")
    needs_sft = mode in (RetrainMode.SFT, RetrainMode.SFT_DPO)
    needs_dpo = mode in (RetrainMode.DPO, RetrainMode.SFT_DPO)
    if needs_sft and (sft_options is None or sft_options.kind != ExportKind.SFT):
        add("sft_options", "This mode needs an SFT export: choose its sources and filters.")
    if needs_dpo and (dpo_options is None or dpo_options.kind != ExportKind.DPO):
        add("dpo_options", "This mode needs a DPO export: choose its sources and filters.")
    hyper = hyperparameters or {}
    settings: dict[str, Any] = {}
    if parent is not None:
        problems = model_version_problems(parent)
        if problems:
            add("parent", " ".join(problems))
        for objective, needed in (("sft", needs_sft), ("dpo", needs_dpo)):
            if not needed:
                continue
            try:
                method, values = _training_config(parent, objective, hyper.get(objective), parent.base_model)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    for message in messages:
                        add(f"{objective}.{field}", message)
                continue
            settings[objective] = {"method": method, **values}
            # SFT then DPO: the DPO step continues the SFT step's adapter, which has the parent's shape.
            if not (objective == "dpo" and needs_sft):
                for message in tuning.parent_adapter_problems(parent, project, method):
                    add("parent", message)
    try:
        settings["decode"] = decode_settings(decode or {}).to_dict()
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            add(f"decode.{field}", "; ".join(messages))
    chosen_metrics = list(dict.fromkeys(metrics or DEFAULT_METRICS))
    from trainer.metrics import METRICS

    unknown = [m for m in chosen_metrics if m not in METRICS]
    if unknown:
        add("metrics", f"Unknown metric(s): {', '.join(unknown)}; choose among {', '.join(METRICS)}.")
    settings["metrics"] = chosen_metrics
    if errors:
        raise ValidationError(errors)
    assert parent is not None and eval_version is not None

    made: list[FeedbackExport] = []
    try:
        sft_export = dpo_export = None
        for objective, options in (
            ("sft", sft_options if needs_sft else None),
            ("dpo", dpo_options if needs_dpo else None),
        ):
            if options is None:
                continue
            try:
                export = export_create(
                    project=project,
                    user=user,
                    options=options,
                    extra_held_out=[eval_version.pk],
                    name=f"Retrain of {parent}: {objective.upper()} data",
                    reuse_identical=True,
                )
            except ValidationError as exc:
                message = "; ".join(exc.messages)
                raise ValidationError({f"{objective}_options": f"{message} Nothing was queued."}) from exc
            if not getattr(export, "reused", False):
                made.append(export)  # only what this call created is undone on a refusal
            sft_export, dpo_export = (export, dpo_export) if objective == "sft" else (sft_export, export)
        with transaction.atomic():
            pipeline = RetrainPipeline.objects.create(
                project=project,
                parent=parent,
                eval_version=eval_version,
                mode=mode,
                settings=settings,
                sft_export=sft_export,
                dpo_export=dpo_export,
                stage=RetrainStage.TRAIN_SFT if needs_sft else RetrainStage.TRAIN_DPO,
                created_by=user,
            )
            first = sft_export if needs_sft else dpo_export
            assert first is not None
            run = _start_training(pipeline, "sft" if needs_sft else "dpo", parent, first, user)
            if needs_sft:
                pipeline.sft_run = run
            else:
                pipeline.dpo_run = run
            used = [e for e in (sft_export, dpo_export) if e is not None]
            described = ", ".join(
                f"{e.name} ({e.records:,} records, {e.annotations_used:,} annotations"
                + (", unchanged since an earlier export" if getattr(e, "reused", False) else "")
                + ")"
                for e in used
            )
            _log(pipeline, f"built {described}; queued training run #{run.pk}")
            pipeline.save()
        return pipeline
    except BaseException:
        for export in made:
            export_discard(export)
        raise


def _job_state(job: Job | None) -> str:
    return job.status if job is not None else JobStatus.QUEUED


def _fail(p: RetrainPipeline, message: str) -> None:
    p.status = RetrainStatus.FAILED
    p.error = message[:5000]
    p.finished_at = timezone.now()
    _log(p, f"failed: {message}")


def _reuse_parent_generation(p: RetrainPipeline) -> Any:
    from evalhub.generation.models import GenerationRun, RunStatus

    for run in GenerationRun.objects.filter(
        project=p.project, model_version=p.parent, eval_version=p.eval_version, status=RunStatus.SUCCEEDED
    ).order_by("-created_at"):
        if run.settings == p.settings["decode"]:
            return run
    return None


def _reuse_metrics(generation_run: Any, metrics: list[str]) -> Any:
    from evalhub.generation.models import RunStatus
    from evalhub.metrics.models import MetricRun

    for run in MetricRun.objects.filter(generation_run=generation_run, status=RunStatus.SUCCEEDED).order_by(
        "-created_at"
    ):
        if set(metrics) <= set((run.summary or {}).get("done", [])) | set(run.refused or {}):
            return run
    return None


def _step(p: RetrainPipeline) -> bool:
    """Move the pipeline on by one step if its current children have finished. True when something changed."""
    from evalhub.arena import services as arena
    from evalhub.generation.services import generation_run_create
    from evalhub.metrics.services import metric_run_create
    from evalhub.tuning.models import ModelVersion

    if p.status != RetrainStatus.RUNNING:
        return False
    if p.stage in (RetrainStage.TRAIN_SFT, RetrainStage.TRAIN_DPO):
        run = p.sft_run if p.stage == RetrainStage.TRAIN_SFT else p.dpo_run
        if run is None:
            _fail(p, "the training run of this step was deleted")
            return True
        state = _job_state(run.job)
        if state not in FINISHED:
            return False
        if state != JobStatus.SUCCEEDED:
            _fail(
                p,
                f"training run #{run.pk} {state}"
                + (f": {run.job.error}" if run.job and run.job.error else ""),
            )
            return True
        version = ModelVersion.objects.filter(training_run=run).first()
        if version is None:
            _fail(p, f"training run #{run.pk} finished without a model version")
            return True
        if p.stage == RetrainStage.TRAIN_SFT and p.mode == RetrainMode.SFT_DPO:
            assert p.dpo_export is not None
            try:
                p.dpo_run = _start_training(p, "dpo", version, p.dpo_export, p.created_by)
            except ValidationError as exc:
                _fail(p, f"the DPO step could not start: {'; '.join(exc.messages)}")
                return True
            p.stage = RetrainStage.TRAIN_DPO
            _log(p, f"{version} trained (SFT); queued DPO training run #{p.dpo_run.pk} on top of it")
            return True
        p.new_version = version
        p.new_generation = generation_run_create(
            project=p.project,
            model_version=version,
            eval_version=p.eval_version,
            settings=p.settings["decode"],
            created_by=p.created_by,
        )
        p.parent_generation = _reuse_parent_generation(p) or generation_run_create(
            project=p.project,
            model_version=p.parent,
            eval_version=p.eval_version,
            settings=p.settings["decode"],
            created_by=p.created_by,
        )
        p.stage = RetrainStage.GENERATE
        _log(
            p,
            f"{version} trained; generating on {p.eval_version} (runs #{p.new_generation.pk} and "
            f"#{p.parent_generation.pk} for {p.parent})",
        )
        return True
    if p.stage == RetrainStage.GENERATE:
        runs = [p.parent_generation, p.new_generation]
        if any(r is None for r in runs):
            _fail(p, "a generation run of this step was deleted")
            return True
        states = [_job_state(r.job) for r in runs]  # type: ignore[union-attr]
        if any(s not in FINISHED for s in states):
            return False
        bad = [(r, s) for r, s in zip(runs, states) if s != JobStatus.SUCCEEDED]
        if bad:
            _fail(
                p,
                "; ".join(
                    f"generation run #{r.pk} {s}" + (f": {r.error}" if r.error else "") for r, s in bad
                ),
            )  # type: ignore[union-attr]
            return True
        metrics = list(p.settings.get("metrics") or DEFAULT_METRICS)
        p.parent_metrics = _reuse_metrics(p.parent_generation, metrics) or metric_run_create(
            generation_run=p.parent_generation, metrics=metrics, created_by=p.created_by
        )
        p.new_metrics = metric_run_create(
            generation_run=p.new_generation, metrics=metrics, created_by=p.created_by
        )
        p.stage = RetrainStage.SCORE
        _log(
            p,
            f"generated; scoring {', '.join(metrics)} (metric runs #{p.parent_metrics.pk} and #{p.new_metrics.pk})",
        )
        return True
    if p.stage == RetrainStage.SCORE:
        runs = [p.parent_metrics, p.new_metrics]
        if any(r is None for r in runs):
            _fail(p, "a metric run of this step was deleted")
            return True
        states = [_job_state(r.job) for r in runs]  # type: ignore[union-attr]
        if any(s not in FINISHED for s in states):
            return False
        bad = [(r, s) for r, s in zip(runs, states) if s != JobStatus.SUCCEEDED]
        if bad:
            _fail(
                p, "; ".join(f"metric run #{r.pk} {s}" + (f": {r.error}" if r.error else "") for r, s in bad)
            )  # type: ignore[union-attr]
            return True
        try:
            p.arena_campaign = arena.campaign_create(
                project=p.project,
                user=p.created_by,
                runs=[p.parent_generation, p.new_generation],
                options=arena.CampaignOptions(
                    name=f"{p.new_version} vs {p.parent} (retrain #{p.pk})",
                    instructions="Which description would you publish? Judge the text only.",
                    seed=p.pk,
                ),
            )
        except ValidationError as exc:
            _fail(p, f"the arena campaign could not be opened: {'; '.join(exc.messages)}")
            return True
        p.stage = RetrainStage.DONE
        p.status = RetrainStatus.SUCCEEDED
        p.finished_at = timezone.now()
        _log(p, f"metrics computed; arena campaign “{p.arena_campaign.name}” is open for votes")
        return True
    return False


def retrain_advance(pipeline: RetrainPipeline | int) -> RetrainPipeline:
    """Take every step whose prerequisites are done. Idempotent and safe to call from anywhere at any time."""
    pk = pipeline if isinstance(pipeline, int) else pipeline.pk
    with transaction.atomic():
        p = RetrainPipeline.objects.select_for_update().get(pk=pk)
        changed = False
        for _ in range(
            10
        ):  # a handful of steps can be done at once (a reused generation run is already finished)
            if not _step(p):
                break
            changed = True
        if changed:
            p.save()
    return p


def retrain_on_job_finished(job: Job) -> None:
    """The job-finished listener: advance the running pipelines that wait for this job."""
    waiting = (
        RetrainPipeline.objects.filter(status=RetrainStatus.RUNNING)
        .filter(
            Q(sft_run__job=job)
            | Q(dpo_run__job=job)
            | Q(parent_generation__job=job)
            | Q(new_generation__job=job)
            | Q(parent_metrics__job=job)
            | Q(new_metrics__job=job)
        )
        .values_list("pk", flat=True)
    )
    for pk in list(waiting):
        retrain_advance(pk)


def retrain_cancel(pipeline: RetrainPipeline) -> RetrainPipeline:
    from evalhub.jobs.services import job_request_cancel

    with transaction.atomic():
        p = RetrainPipeline.objects.select_for_update().get(pk=pipeline.pk)
        if p.status != RetrainStatus.RUNNING:
            return p
        p.status = RetrainStatus.CANCELLED
        p.finished_at = timezone.now()
        _log(p, "cancelled")
        p.save()
    for child in (
        p.sft_run,
        p.dpo_run,
        p.new_generation,
        p.parent_generation,
        p.new_metrics,
        p.parent_metrics,
    ):
        job = getattr(child, "job", None)
        if job is not None and job.status not in FINISHED:
            job_request_cancel(job)
    return p
