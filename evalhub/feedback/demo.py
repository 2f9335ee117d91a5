"""Demo steps of the feedback stage: annotations that can become training data, and an SFT export made from them.

The demo's reviews and arena votes are all on eval-split prompts, which the export's leakage guard keeps out of
training data (rightly: those prompts measure the model). So, as a team would, the demo also has the model write for
a few *training* prompts and has them rated and corrected:

1. "v2 LoRA" writes for a fixed sample of 12 train-split prompts: a "sample" split of the train version (seeded,
   stratified by category), since a generation run covers a whole dataset version.
2. A second review campaign over those outputs, with the content review's rubric and one rating per output, fully
   rated by annotator2 with the reviews demo's simulated judgement, correcting every output that judgement fixes.
3. An SFT export from rated outputs, corrections and curation decisions (every review campaign in scope: the eval
   campaign's annotations are counted as dropped by the leakage guard), listed on the Feedback page.
4. "Retrain from feedback" once, as a lead would start it: SFT of a LoRA on top of v2 LoRA's, on that export (the
   pipeline finds it unchanged and trains on it), then the pipeline's own generation on the eval split, metrics and
   an arena campaign against v2 LoRA. Its jobs run here, in this process, like the other demo steps' jobs; the
   pipeline is advanced after each one, as its job-finished listener would. So the timeline and the project
   overview tell what the feedback did.

Idempotent: the sample split, the generation run, the campaign, the export and the retrain are found (by parent and
split name, by version and settings, by name, by parent and eval split) and only what is missing is made;
annotator2 only rates what is left; a retrain cut short is driven on from where it stopped. The loader
(evalhub/demo/loader.py) imports this module and runs the steps after the reviews and arena steps.
"""

from __future__ import annotations

import time
from typing import Any, TextIO

from django.core.exceptions import ValidationError

from evalhub.arena import demo as _arena_demo  # noqa: F401  (registers the arena step before ours)
from evalhub.datasets import services as dataset_services
from evalhub.datasets.models import DatasetVersion, VersionSource
from evalhub.feedback import services
from evalhub.feedback.builders import ExportOptions
from evalhub.feedback.models import FeedbackExport, RetrainMode, RetrainPipeline, RetrainStatus
from evalhub.generation import demo as generation_demo
from evalhub.generation.models import GenerationRun, RunStatus
from evalhub.jobs.models import FINISHED
from evalhub.projects.models import Project
from evalhub.reviews import demo as reviews_demo
from evalhub.reviews import services as review_services
from evalhub.reviews.models import Campaign, Correction

SAMPLE_SIZE = 12  # the real model writes ~1 description a second on a 2-core CPU
SAMPLE_SPLIT = "sample"
REST_SPLIT = "rest"
SAMPLE_SEED = 0
CAMPAIGN_NAME = "Training prompts · corrections"
RATER = "annotator2"
EXPORT_NAME = "SFT from reviews and corrections (demo)"
EXPORT_OPTIONS = ExportOptions(kind="sft", sources=("rated", "corrections", "curated"))
# On top of v2 LoRA's own settings (what the pipeline starts from), only fewer steps: ~4 s each on a 2-core CPU, so
# the retrain (training ~50 s, 18 descriptions ~17 s, metrics ~1 s) adds about 70 s to the demo. 10 steps of 2 rows go
# over the export's ~10 records about twice: enough to move the model, which is what the story reports.
RETRAIN_HYPERPARAMETERS: dict[str, Any] = {"max_steps": 10, "save_every_steps": 5}
GUIDELINES = (
    "These descriptions answer briefs from the **training** set: what you rate well and what you correct here "
    "becomes training data for the next version (eval-set prompts never do).\n\n" + reviews_demo.GUIDELINES
)


def _train_split(project: Project, state: dict[str, Any] | None) -> DatasetVersion | None:
    found = (state or {}).get("split:train")
    if found is not None:
        return found
    return (
        DatasetVersion.objects.filter(dataset__project=project, split_name="train")
        .order_by("-created_at", "-pk")
        .first()
    )


def training_sample(
    project: Project, lead: Any, state: dict[str, Any] | None = None
) -> tuple[DatasetVersion | None, bool]:
    """(the 12-prompt sample split of the train split, whether it was made now); None without a train split."""
    train = _train_split(project, state)
    if train is None:
        return None, False
    sample = (
        DatasetVersion.objects.filter(parent=train, source=VersionSource.SPLIT, split_name=SAMPLE_SPLIT)
        .order_by("number")
        .first()
    )
    if sample is not None:
        return sample, False
    if train.row_count <= SAMPLE_SIZE:
        raise ValidationError(f"{train} has {train.row_count} rows: too few to sample {SAMPLE_SIZE}.")
    fraction = SAMPLE_SIZE / train.row_count
    children = dataset_services.version_split(
        version=train,
        user=lead,
        fractions={SAMPLE_SPLIT: fraction, REST_SPLIT: 1 - fraction},
        seed=SAMPLE_SEED,
        stratify_by="category" if "category" in (train.attribute_names or []) else None,
    )
    return next(c for c in children if c.split_name == SAMPLE_SPLIT), True


def _v2(project: Project) -> Any:
    versions = generation_demo.demo_versions(project)
    return versions[1] if len(versions) == 2 else None


def sample_run(project: Project, state: dict[str, Any] | None = None) -> GenerationRun | None:
    """The succeeded demo run of v2 LoRA over the training sample. Creates nothing."""
    train = _train_split(project, state)
    v2 = _v2(project)
    if train is None or v2 is None:
        return None
    sample = DatasetVersion.objects.filter(parent=train, split_name=SAMPLE_SPLIT).order_by("number").first()
    if sample is None:
        return None
    run = generation_demo.existing_run(v2, sample)
    return run if run is not None and run.status == RunStatus.SUCCEEDED else None


def generation_step(project: Project, lead: Any, stdout: TextIO, state: dict[str, Any] | None = None) -> str:
    v2 = _v2(project)
    if v2 is None:
        return "skipped: no v2 LoRA (its training did not finish)"
    sample, made = training_sample(project, lead, state)
    if sample is None:
        return "skipped: the project has no train split"
    if made:
        stdout.write(f"    split {SAMPLE_SIZE} prompts off {sample.parent}: {sample}\n")
    _run, summary = generation_demo.generate(project, lead, v2, sample, stdout)
    return f"{'made' if made else 'found'} {sample} ({sample.row_count} prompts); {summary}"


def review_step(
    project: Project, users: dict[str, Any], stdout: TextIO, state: dict[str, Any] | None = None
) -> str:
    campaign = Campaign.objects.filter(project=project, name=CAMPAIGN_NAME).order_by("pk").first()
    made = campaign is None
    if campaign is None:
        run = sample_run(project, state)
        rubric_from = (
            Campaign.objects.filter(project=project, name=reviews_demo.CAMPAIGN_NAME)
            .select_related("rubric_version")
            .order_by("pk")
            .first()
        )
        if run is None or rubric_from is None:
            return "skipped: needs v2 LoRA's outputs on the training sample and the content review's rubric"
        campaign = review_services.campaign_create(
            project=project,
            name=CAMPAIGN_NAME,
            rubric_version=rubric_from.rubric_version,
            sample=review_services.SampleSpec(run_ids=(run.pk,), seed=0),
            created_by=users["lead"],
            overlap=1,
            annotator_ids=[users[RATER].pk],
            guidelines=GUIDELINES,
        )
        stdout.write(f"    “{campaign.name}”: {campaign.item_count} outputs, one rating each, by {RATER}\n")
    rated_now, rated = reviews_demo.simulate_ratings(campaign, users[RATER], share=1.0, max_corrections=None)
    corrections = Correction.objects.filter(item__campaign=campaign).count()
    return (
        f"{'created' if made else 'found'} “{campaign.name}” ({campaign.item_count} items); "
        f"{RATER} rated {rated} ({rated_now} now), {corrections} correction(s)"
    )


def describe(export: FeedbackExport) -> str:
    counts = export.counts or {}
    kept = counts.get("kept", {})
    dropped: dict[str, int] = {}
    for reasons in counts.get("dropped", {}).values():
        for reason, n in reasons.items():
            dropped[reason] = dropped.get(reason, 0) + n
    by_source = ", ".join(f"{kept.get(s, 0)} {s}" for s in export.sources)
    why = ", ".join(
        f"{n} {reason.replace('_', ' ')}" for reason, n in sorted(dropped.items(), key=lambda x: -x[1])
    )
    return (
        f"“{export.name}” (#{export.pk}, {export.version}): {counts.get('written', 0)} records ({by_source}) from "
        f"{counts.get('annotations', 0)} annotations" + (f"; dropped {why}" if why else "")
    )


def export_step(
    project: Project, users: dict[str, Any], stdout: TextIO, state: dict[str, Any] | None = None
) -> str:
    export = FeedbackExport.objects.filter(project=project, name=EXPORT_NAME).order_by("pk").first()
    if export is not None:
        return "found " + describe(export)
    campaign = Campaign.objects.filter(project=project, name=CAMPAIGN_NAME).order_by("pk").first()
    if campaign is None or campaign.ratings.count() < campaign.item_count:
        return "skipped: the training-prompt campaign is not fully rated yet"
    try:
        export = services.export_create(
            project=project,
            user=users["lead"],
            options=EXPORT_OPTIONS,
            name=EXPORT_NAME,
            reuse_identical=True,
        )
    except ValidationError as exc:
        return "skipped: " + " ".join(exc.messages)
    return ("found identical " if getattr(export, "reused", False) else "made ") + describe(export)


def _demo_retrain(project: Project, parent: Any, eval_version: DatasetVersion) -> RetrainPipeline | None:
    """The demo's retrain of v2 LoRA on the eval split: a succeeded one first, else the latest one still running."""
    pipelines = RetrainPipeline.objects.filter(
        project=project, parent=parent, eval_version=eval_version, mode=RetrainMode.SFT
    ).order_by("pk")
    done = pipelines.filter(status=RetrainStatus.SUCCEEDED).first()
    return done or pipelines.filter(status=RetrainStatus.RUNNING).last()


def drive(pipeline: RetrainPipeline, stdout: TextIO) -> RetrainPipeline:
    """Run the pipeline's unfinished jobs here, advancing it after each round, until it stops running. The
    job-finished listener advances it too when the job's end is committed; advancing again is a no-op then."""
    p = pipeline
    while p.status == RetrainStatus.RUNNING:
        children = (
            p.sft_run,
            p.dpo_run,
            p.new_generation,
            p.parent_generation,
            p.new_metrics,
            p.parent_metrics,
        )
        jobs = [
            c.job for c in children if c is not None and c.job is not None and c.job.status not in FINISHED
        ]
        for job in jobs:
            generation_demo.finish_job(job, stdout)
        stage = p.stage
        p = services.retrain_advance(p)
        if p.stage == stage and p.status == RetrainStatus.RUNNING:
            break  # its jobs ran and it did not move: one of them no one can claim (a cancel requested)
    return p


def story(pipeline: RetrainPipeline) -> str:
    """The overview's sentence for the new version, with the data it learned from and every metric's delta."""
    from evalhub.feedback.selectors import project_story

    entries = project_story(pipeline.project, limit=10**6)
    entry = next((e for e in entries if e.version.pk == pipeline.new_version_id), None)
    if entry is None:
        return f"{pipeline}: no new version"
    data = ", ".join(f"“{e.name}” ({e.records} records)" for e in entry.exports)
    metrics = ", ".join(d.text for d in entry.metrics[1:])
    arena = f"arena “{pipeline.arena_campaign.name}” open" if pipeline.arena_campaign else ""
    return "; ".join(x for x in (entry.sentence, f"on {data}" if data else "", metrics, arena) if x)


def retrain_step(
    project: Project, users: dict[str, Any], stdout: TextIO, state: dict[str, Any] | None = None
) -> str:
    v2 = _v2(project)
    eval_version = generation_demo.demo_eval_split(project, state)
    export = FeedbackExport.objects.filter(project=project, name=EXPORT_NAME).order_by("pk").first()
    if v2 is None or eval_version is None or export is None:
        return "skipped: needs v2 LoRA, the eval split and the SFT export"
    pipeline = _demo_retrain(project, v2, eval_version)
    if pipeline is not None and pipeline.status == RetrainStatus.SUCCEEDED:
        return f"found retrain #{pipeline.pk}: {story(pipeline)}"
    began = time.perf_counter()
    if pipeline is None:
        try:
            pipeline = services.retrain_start(
                project=project,
                user=users["lead"],
                parent_id=v2.pk,
                eval_version=eval_version,
                mode=RetrainMode.SFT,
                sft_options=EXPORT_OPTIONS,
                hyperparameters={"sft": RETRAIN_HYPERPARAMETERS},
                # The demo's decoding settings and metrics: the pipeline reuses v2 LoRA's demo generation run on the
                # eval split and its scores, and the overview compares the two on every metric it shows.
                decode=generation_demo.DEMO_DECODE,
                metrics=generation_demo.DEMO_METRICS,
            )
        except ValidationError as exc:
            return "skipped: " + " ".join(exc.messages)
        stdout.write(
            f"    retrain #{pipeline.pk}: SFT on top of {v2} on “{pipeline.sft_export}” for "
            f"{RETRAIN_HYPERPARAMETERS['max_steps']} steps, then generation, metrics and an arena campaign\n"
        )
    else:
        stdout.write(
            f"    finishing retrain #{pipeline.pk} from its {pipeline.get_stage_display().lower()} step\n"
        )
    pipeline = drive(pipeline, stdout)
    took = time.perf_counter() - began
    if pipeline.status != RetrainStatus.SUCCEEDED:
        return f"retrain #{pipeline.pk} {pipeline.status}" + (f": {pipeline.error}" if pipeline.error else "")
    return f"made retrain #{pipeline.pk} in {took:.0f} s: {story(pipeline)}"


def _generation(ctx: Any) -> str:
    return generation_step(ctx.project, ctx.users["lead"], ctx.stdout, ctx.state)


def _review(ctx: Any) -> str:
    return review_step(ctx.project, ctx.users, ctx.stdout, ctx.state)


def _export(ctx: Any) -> str:
    return export_step(ctx.project, ctx.users, ctx.stdout, ctx.state)


def _retrain(ctx: Any) -> str:
    return retrain_step(ctx.project, ctx.users, ctx.stdout, ctx.state)


try:
    from evalhub.demo.loader import register_step
except ImportError:  # the demo app is optional; the functions above still work on their own
    pass
else:
    register_step("feedback: v2 LoRA on 12 training prompts", _generation)
    register_step("feedback: training prompts rated and corrected", _review)
    register_step("feedback: SFT export", _export)
    register_step("feedback: retrain v2 LoRA from the SFT export", _retrain)
