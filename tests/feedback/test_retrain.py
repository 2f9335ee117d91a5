"""Retrain from feedback on a tiny random Llama: exports -> SFT -> DPO on top -> generation -> metrics -> arena, as a
chain of ordinary jobs each started by the previous one's end; refusals before anything is queued; recovery."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.feedback import services
from evalhub.feedback.builders import ExportOptions
from evalhub.feedback.models import FeedbackExport, RetrainPipeline, RetrainStage, RetrainStatus
from evalhub.jobs.models import Job
from evalhub.jobs.tasks import execute_job
from evalhub.tuning.models import ModelVersion, TrainingRun
from tests.feedback import factories

pytestmark = pytest.mark.django_db

HP = {
    "max_steps": 2,
    "batch_size": 4,
    "rank": 4,
    "alpha": 8,
    "placement": "attention",
    "max_seq_len": 128,
    "eval_every_steps": 2,
    "save_every_steps": 2,
    "learning_rate": 1e-3,
}
SFT = ExportOptions(kind="sft", sources=("rated", "corrections"), min_score=0.75)
DPO = ExportOptions(kind="dpo", sources=("arena",))


def start(s: factories.Scenario, **kw: Any) -> RetrainPipeline:
    args: dict[str, Any] = {
        "project": s.project,
        "user": s.lead,
        "parent_id": s.versions[0].pk,
        "eval_version": s.eval,
        "mode": "sft_dpo",
        "sft_options": SFT,
        "dpo_options": DPO,
        "hyperparameters": {"sft": dict(HP), "dpo": {**HP, "beta": 0.2}},
        "decode": {"max_new_tokens": 6},
        "metrics": ["rougeL", "output_length"],
    }
    args.update(kw)
    return services.retrain_start(**args)


@pytest.fixture
def annotated(world: Any, tiny_base: Any) -> factories.Scenario:
    s = factories.scenario(world, base=tiny_base)
    factories.review(s, corrections=True)
    factories.arena(s)
    return s


def test_one_action_trains_sft_then_dpo_generates_scores_and_opens_an_arena(
    annotated: factories.Scenario, django_capture_on_commit_callbacks: Any
) -> None:
    s = annotated
    with django_capture_on_commit_callbacks(execute=True):
        p = start(s)
    p.refresh_from_db()
    assert p.status == RetrainStatus.SUCCEEDED, (p.error, p.log)
    assert p.stage == RetrainStage.DONE
    sft_version = ModelVersion.objects.get(training_run=p.sft_run)
    assert p.sft_run.objective == "sft" and p.sft_run.train_version == p.sft_export.version
    assert p.dpo_run.objective == "dpo" and p.dpo_run.train_version == p.dpo_export.version
    assert p.dpo_run.config["beta"] == 0.2
    # Lineage: parent -> SFT version -> DPO version (the new one), each naming the data it learned from.
    assert sft_version.parent == s.versions[0] and p.new_version.parent == sft_version
    assert p.new_version.training_run == p.dpo_run
    assert p.new_version.lineage["datasets"][0]["version_id"] == p.dpo_export.version_id
    # Both versions generated on the eval set with the same settings, scored, and put in one arena campaign.
    assert (
        p.new_generation.model_version == p.new_version and p.parent_generation.model_version == s.versions[0]
    )
    assert p.new_generation.eval_version == p.parent_generation.eval_version == s.eval
    assert p.new_generation.settings["max_new_tokens"] == 6
    assert p.new_metrics.status == p.parent_metrics.status == "succeeded"
    contestants = sorted(p.arena_campaign.contestants.values_list("model_version_id", flat=True))
    assert contestants == sorted([s.versions[0].pk, p.new_version.pk])
    assert p.arena_campaign.is_open
    assert [step["message"].split(";")[0].split(" ")[0] for step in p.log][:1] == ["built"]


def finish(job_id: int, capture: Any) -> list[Any]:
    """Run one job; then deliver its job-finished notification. Returns the jobs that notification queued (their
    messages, held back so the test runs them one by one)."""
    with capture(execute=False) as finished:
        assert execute_job(job_id) == "succeeded", Job.objects.get(pk=job_id).error
    with capture(execute=False) as queued:
        for callback in finished:
            callback()
    return queued


def test_each_step_starts_when_the_previous_job_ends(
    annotated: factories.Scenario, django_capture_on_commit_callbacks: Any
) -> None:
    """No job waits for another: each child job's end advances the pipeline by one step."""
    s, capture = annotated, django_capture_on_commit_callbacks
    with capture(execute=False):
        p = start(s, mode="dpo", sft_options=None)
    assert p.stage == RetrainStage.TRAIN_DPO and p.dpo_run.job.status == "queued"
    assert Job.objects.count() == 1  # only the training job exists so far
    assert len(finish(p.dpo_run.job.pk, capture)) == 2  # both generation jobs, sent once the step committed
    p.refresh_from_db()
    assert p.stage == RetrainStage.GENERATE and p.new_generation.model_version == p.new_version
    assert (
        finish(p.new_generation.job.pk, capture) == []
    )  # the parent's run has not finished yet: nothing to do
    assert len(finish(p.parent_generation.job.pk, capture)) == 2  # both metric runs
    p.refresh_from_db()
    assert p.stage == RetrainStage.SCORE
    finish(p.new_metrics.job.pk, capture)
    finish(p.parent_metrics.job.pk, capture)
    p.refresh_from_db()
    assert p.status == RetrainStatus.SUCCEEDED and p.arena_campaign is not None


def test_a_missed_notification_is_recovered_by_advancing(
    annotated: factories.Scenario, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    s = annotated
    with django_capture_on_commit_callbacks(execute=False):
        p = start(s, mode="dpo", sft_options=None)
    monkeypatch.setattr(
        services, "retrain_on_job_finished", lambda job: None
    )  # the worker died before telling
    finish(p.dpo_run.job.pk, django_capture_on_commit_callbacks)
    p.refresh_from_db()
    assert p.stage == RetrainStage.TRAIN_DPO
    with django_capture_on_commit_callbacks(execute=False):
        p = services.retrain_advance(p)
    assert p.stage == RetrainStage.GENERATE
    assert (
        services.retrain_advance(p).stage == RetrainStage.GENERATE
    )  # nothing finished since: nothing happens


def test_a_failed_step_fails_the_pipeline_with_the_reason(
    annotated: factories.Scenario, django_capture_on_commit_callbacks: Any
) -> None:
    from evalhub.jobs.services import job_request_cancel

    s = annotated
    with django_capture_on_commit_callbacks(execute=False):
        p = start(s, mode="dpo", sft_options=None)
    with django_capture_on_commit_callbacks(execute=True):
        job_request_cancel(p.dpo_run.job)
    p.refresh_from_db()
    assert p.status == RetrainStatus.FAILED and f"training run #{p.dpo_run.pk} cancelled" in p.error


def nothing_queued_after(call: Any) -> dict[str, list[str]]:
    before = (
        Job.objects.count(),
        TrainingRun.objects.count(),
        FeedbackExport.objects.count(),
        RetrainPipeline.objects.count(),
    )
    with pytest.raises(ValidationError) as info:
        call()
    after = (
        Job.objects.count(),
        TrainingRun.objects.count(),
        FeedbackExport.objects.count(),
        RetrainPipeline.objects.count(),
    )
    assert after == before, "a refused retrain queues nothing and leaves no export behind"
    return info.value.message_dict


def test_a_deleted_parent_is_refused_before_anything_is_queued(annotated: factories.Scenario) -> None:
    s = annotated
    gone = ModelVersion.objects.create(
        project=s.project, number=99, name="short-lived", base_model=s.versions[0].base_model
    )
    gone_id = gone.pk
    gone.delete()
    errors = nothing_queued_after(lambda: start(s, parent_id=gone_id))
    assert "does not exist any more" in errors["parent"][0]


def test_an_empty_export_is_refused_before_anything_is_queued(annotated: factories.Scenario) -> None:
    s = annotated
    strict = ExportOptions(
        kind="dpo", sources=("arena",), min_agreement=0.9
    )  # one vote per comparison: no agreement
    errors = nothing_queued_after(lambda: start(s, mode="sft_dpo", dpo_options=strict))
    assert (
        "Nothing to export" in errors["dpo_options"][0] and "Nothing was queued" in errors["dpo_options"][0]
    )
    # The SFT export built first was discarded with its version.
    from evalhub.datasets.models import DatasetVersion

    assert not DatasetVersion.objects.filter(source="feedback").exists()


def test_feedback_on_the_eval_prompts_is_refused(world: Any, tiny_base: Any) -> None:
    s = factories.scenario(world, base=tiny_base, products=factories.EVAL_PRODUCTS)
    factories.arena(s)
    errors = nothing_queued_after(lambda: start(s, mode="dpo", sft_options=None))
    assert "held-out eval set" in errors["dpo_options"][0]


def test_settings_that_cannot_work_are_refused_naming_the_field(annotated: factories.Scenario) -> None:
    s = annotated
    errors = nothing_queued_after(
        lambda: start(
            s,
            mode="dpo",
            sft_options=None,
            hyperparameters={"dpo": {"rank": 0}},
            decode={"max_new_tokens": 0},
            metrics=["rougeL", "vibes"],
        )
    )
    assert {"dpo.rank", "decode.max_new_tokens", "metrics"} <= set(errors)
    assert (
        "needs a DPO export"
        in nothing_queued_after(lambda: start(s, mode="dpo", dpo_options=None))["dpo_options"][0]
    )


def test_a_second_retrain_on_unchanged_feedback_trains_on_the_same_export(
    annotated: factories.Scenario, django_capture_on_commit_callbacks: Any
) -> None:
    from evalhub.datasets.models import DatasetVersion

    s = annotated
    with django_capture_on_commit_callbacks(execute=False):
        first = start(s, mode="dpo", sft_options=None)
        second = start(
            s, mode="dpo", sft_options=None, hyperparameters={"dpo": {**HP, "learning_rate": 5e-4}}
        )
    assert second.dpo_export == first.dpo_export
    assert DatasetVersion.objects.filter(source="feedback").count() == 1
    assert (
        second.dpo_run.config["learning_rate"] == 5e-4
        and "unchanged since an earlier export" in second.log[0]["message"]
    )
