"""The demo steps of the later stages (generation, metrics, reviews, arena, feedback), run through the loader on the
real demo data but a tiny random model: they build what a visitor's pages need, and a second run changes nothing."""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from evalhub.demo import loader

pytestmark = pytest.mark.django_db

OURS = (
    "generation: v1 base and v2 LoRA on the eval split",
    "metrics: ROUGE, BLEU, chrF, BERTScore, length",
    "reviews: content rubric campaign, annotator2 halfway",
    "arena: v1 base vs v2 LoRA, annotator2 halfway",
)
BEFORE = (
    "users",
    "project",
    "dataset: import products.jsonl",
    "dataset: split train/validation/eval",
    "tuning: base model, v1 base, v2 LoRA",
)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny models on a shared 2-core machine: more threads than cores makes every step slower.
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models import make_tiny_model

    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model(path, seed=0)
    return path


@pytest.fixture
def tiny_demo(settings: Any, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Iterator[None]:
    """The demo with the tiny model as its base, 2 training steps and short generations."""
    import trainer.models
    from evalhub.generation import demo as generation_demo
    from evalhub.generation.services import generators_clear
    from evalhub.tuning import demo as tuning_demo

    # Only the heartbeat thread would touch the test database from another thread; with a long lease it has no
    # reason to.
    settings.JOB_LEASE_SECONDS = 10**6
    monkeypatch.setattr(
        trainer.models,
        "demo_model_source",
        lambda: trainer.models.ModelSource(kind="folder", path_or_id=str(tiny_model_dir)),
    )
    monkeypatch.setattr(tuning_demo, "demo_step", functools.partial(tuning_demo.demo_step, max_steps=2))
    # The tiny tokenizer is nearly byte-level: a demo row is ~1,700 of its tokens (~400 of SmolLM2's).
    monkeypatch.setattr(
        tuning_demo, "DEMO_HYPERPARAMETERS", {**tuning_demo.DEMO_HYPERPARAMETERS, "max_seq_len": 2048}
    )
    monkeypatch.setattr(generation_demo, "DEMO_DECODE", {**generation_demo.DEMO_DECODE, "max_new_tokens": 12})
    generators_clear()
    yield
    generators_clear()


def _run(names: tuple[str, ...]) -> str:
    """What `load_demo` does, for the named steps only (the quality reports and curation queue are not needed)."""
    loader._load_app_steps()
    known = [s.name for s in loader.STEPS]
    assert set(names) <= set(known), f"steps missing from the loader: {set(names) - set(known)}"
    out = io.StringIO()
    ctx = loader.DemoContext(stdout=out)
    for step in loader.STEPS:
        if step.name in names:
            began = time.perf_counter()
            summary = step.run(ctx)
            ctx.say(f"  {step.name}: {summary} [{time.perf_counter() - began:.1f} s]")
    return out.getvalue()


def _counts() -> dict[str, int]:
    from evalhub.arena import models as arena
    from evalhub.generation.models import GenerationRun, Output
    from evalhub.jobs.models import Job
    from evalhub.metrics.models import MetricRun, MetricScore
    from evalhub.reviews import models as reviews

    tables = {
        "jobs": Job,
        "generation runs": GenerationRun,
        "outputs": Output,
        "metric runs": MetricRun,
        "scores": MetricScore,
        "rubrics": reviews.Rubric,
        "review campaigns": reviews.Campaign,
        "review items": reviews.CampaignItem,
        "review assignments": reviews.Assignment,
        "ratings": reviews.Rating,
        "rating values": reviews.RatingValue,
        "corrections": reviews.Correction,
        "arena campaigns": arena.Campaign,
        "comparisons": arena.Comparison,
        "arena assignments": arena.Assignment,
        "votes": arena.Vote,
    }
    return {name: model.objects.count() for name, model in tables.items()}


def test_later_stage_steps_fill_every_page_and_run_twice_without_change(
    tiny_demo: None, client_for: Any
) -> None:
    from django.contrib.auth import get_user_model

    from evalhub.arena import models as arena
    from evalhub.arena.services import comparison_next
    from evalhub.generation.demo import DEMO_METRICS
    from evalhub.generation.models import GenerationRun
    from evalhub.metrics.models import MetricRun, MetricScore
    from evalhub.projects.models import Project
    from evalhub.reviews import models as reviews
    from evalhub.reviews.services import assignment_next

    first = _run(BEFORE + OURS)
    project = Project.objects.get(name=loader.PROJECT_NAME)
    users = {u.username: u for u in get_user_model().objects.all()}
    lead, a1, a2 = users["lead"], users["annotator1"], users["annotator2"]

    # Generation: both versions over the 18 eval prompts, greedy, one output per prompt.
    runs = list(GenerationRun.objects.filter(project=project).order_by("model_version__number"))
    assert [str(r.model_version) for r in runs] == ["v1 base", "v2 LoRA"], first
    assert all(r.status == "succeeded" and r.outputs.count() == 18 for r in runs), first
    assert all(r.settings["do_sample"] is False for r in runs)

    # Metrics: every demo metric scored on every output of both runs, with a corpus figure.
    metric_runs = list(MetricRun.objects.filter(generation_run__in=runs))
    assert len(metric_runs) == 2 and all(m.status == "succeeded" and m.refused == {} for m in metric_runs), (
        first
    )
    for m in metric_runs:
        assert set(m.corpus) == set(DEMO_METRICS)
        assert MetricScore.objects.filter(metric_run=m, value__isnull=False).count() == 18 * len(DEMO_METRICS)

    # Reviews: both runs' outputs mixed, two ratings wanted each; annotator2 rated half, with one correction, and
    # annotator1 has rated nothing yet.
    campaign = reviews.Campaign.objects.get(project=project)
    assert (campaign.item_count, campaign.overlap, campaign.rubric_version.rubric.copied_from_template) == (
        36,
        2,
        "content",
    )
    assert set(campaign.annotators.values_list("username", flat=True)) == {"annotator1", "annotator2"}
    assert "Accuracy" in campaign.guidelines_html
    ratings = reviews.Rating.objects.filter(campaign=campaign)
    assert ratings.filter(annotator=a2).count() == 18 and not ratings.filter(annotator=a1).exists()
    assert set(ratings.values_list("item__output__run", flat=True)) == {r.pk for r in runs}
    assert reviews.RatingValue.objects.filter(rating__campaign=campaign).count() == 18 * 4  # every criterion
    correction = reviews.Correction.objects.get(item__campaign=campaign)
    assert correction.rating.annotator == a2 and correction.edited_text != correction.original_text
    assert correction.item.output.example.attributes["material"] in correction.edited_text  # the fix names it

    # Arena: one comparison per eval prompt, one vote each; annotator2 voted on half.
    arena_campaign = arena.Campaign.objects.get(project=project)
    assert arena_campaign.comparisons.count() == 18 and arena_campaign.overlap == 1
    contestants = {str(c.model_version) for c in arena_campaign.contestants.all()}
    assert contestants == {"v1 base", "v2 LoRA"}
    votes = arena.Vote.objects.filter(campaign=arena_campaign, origin="annotator")
    assert votes.filter(annotator=a2).count() == 9 and not votes.filter(annotator=a1).exists()
    # Judged on two criteria too, every vote that judged anything saying how each criterion went.
    assert arena_campaign.criteria == ["Accuracy", "Tone"]
    assert all(set(v.criteria) == ({"Accuracy", "Tone"} if v.choice != "both_bad" else set()) for v in votes)

    # A second load changes nothing and says so.
    before = _counts()
    second = _run(BEFORE + OURS)
    assert _counts() == before, second
    for name in OURS:
        line = next(line for line in second.splitlines() if line.strip().startswith(name + ":"))
        assert "made" not in line and "created" not in line, line
    print(first + second)  # the steps' timings, shown with -s
    assert "rated 18 (0 now)" in second and "voted on 9 (0 now" in second, second

    # What a visitor finds: the lead's pages show the numbers; annotator1 has work waiting in both campaigns.
    page = client_for(lead).get(
        reverse("reviews:results", kwargs={"project_id": project.pk, "campaign_id": campaign.pk})
    )
    assert page.status_code == 200 and "v2 LoRA" in page.content.decode()
    page = client_for(lead).get(
        reverse("reviews:agreement", kwargs={"project_id": project.pk, "campaign_id": campaign.pk})
    )
    assert page.status_code == 200 and "annotator2" in page.content.decode()
    page = client_for(lead).get(
        reverse("arena:leaderboard", kwargs={"project_id": project.pk, "campaign_id": arena_campaign.pk})
    )
    assert page.status_code == 200 and "v2 LoRA" in page.content.decode()
    assert assignment_next(campaign=campaign, user=a1) is not None
    assert comparison_next(campaign=arena_campaign, user=a1) is not None


def _products() -> list[dict[str, Any]]:
    with loader.products_path().open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_simulated_copywriter_rates_and_votes_for_the_description_that_names_the_material() -> None:
    from evalhub.arena.demo import prefer
    from evalhub.reviews.demo import corrected, judge

    relevance = {"good": 0, "vague": 0}
    for row in _products()[:12]:
        good = row["reference"]
        # The same text without its material, cut off mid-sentence, with a number the brief never gave.
        vague = good.replace(row["material"], "quality material").rsplit(".", 2)[0] + " with 97 extra"
        assert row["material"] in good and row["material"] not in vague
        g, _ = judge(good, row["prompt"], row["material"])
        v, why = judge(vague, row["prompt"], row["material"])
        assert g["Accuracy"] > v["Accuracy"], row["id"]
        relevance["good"] += g["Relevance"]
        relevance["vague"] += v["Relevance"]
        assert "97" in why and "mid-sentence" in why
        assert (
            prefer(good, vague, row["material"])[0] == "a" and prefer(vague, good, row["material"])[0] == "b"
        )
        assert prefer(good, good, row["material"]) == ("tie", "")
        fixed = corrected(vague, row["material"])
        assert row["material"] in fixed and fixed.endswith(".") and "97 extra" not in fixed
    assert relevance["good"] > relevance["vague"]
    assert prefer("", "ok", "oak")[0] == "both_bad"


def test_arena_demo_votes_judge_accuracy_and_tone_and_fill_the_criterion_leaderboard(
    world: Any, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With outputs worth judging (the tiny model's are next to empty, so its votes are all "both bad"), annotator2's
    demo votes say how each criterion went, consistently with their overall choice."""
    from django.contrib.auth import get_user_model

    from evalhub.arena import demo as arena_demo
    from evalhub.arena.models import Vote
    from evalhub.arena.selectors import criteria_leaderboard
    from evalhub.datasets.models import Example
    from evalhub.projects.models import Membership, Role
    from tests.arena.factories import eval_with_runs

    rows = _products()[:6]

    def vague(row: dict[str, Any]) -> str:  # without its material, as in the test above
        return row["reference"].replace(row["material"], "quality material").rsplit(".", 2)[0] + " with 97 extra"

    ev = eval_with_runs(world.project, n_examples=6, n_versions=2, names=["base", "tuned"],
                        text=lambda v, i: vague(rows[i]) if v == 0 else rows[i]["reference"])
    for example, row in zip(ev.examples, rows):
        Example.objects.filter(pk=example.pk).update(prompt=row["prompt"], attributes={"material": row["material"]})
    monkeypatch.setattr(arena_demo, "demo_generation_runs", lambda project, state=None: ev.runs)
    a2 = get_user_model().objects.create_user("annotator2", password="x")
    Membership.objects.create(project=world.project, user=a2, role=Role.ANNOTATOR)
    users = {"lead": world.lead, "annotator1": world.annotator, "annotator2": a2}

    arena_demo.arena_step(world.project, users, io.StringIO())
    votes = list(Vote.objects.filter(annotator=a2).select_related("comparison__left__contestant__model_version",
                                                                  "comparison__right__contestant__model_version"))
    assert len(votes) == 3
    campaign = votes[0].campaign
    assert campaign.criteria == ["Accuracy", "Tone"]
    for vote in votes:
        assert set(vote.criteria) == {"Accuracy", "Tone"}
        tuned_side = "a" if vote.comparison.left.contestant.model_version.name == "tuned" else "b"
        assert vote.criteria["Accuracy"] == tuned_side == vote.choice  # only the tuned one names the material
    before = [(v.pk, v.choice, v.criteria) for v in Vote.objects.order_by("pk")]
    arena_demo.arena_step(world.project, users, io.StringIO())
    assert [(v.pk, v.choice, v.criteria) for v in Vote.objects.order_by("pk")] == before

    accuracy = next(b for b in criteria_leaderboard(campaign) if b.criterion == "Accuracy")
    assert accuracy.n_votes == 3 and accuracy.versions[0].name.endswith("tuned") and accuracy.versions[0].wins == 3
    page = client_for(world.lead).get(
        reverse("arena:leaderboard", kwargs={"project_id": world.project.pk, "campaign_id": campaign.pk})
    ).content.decode()
    assert 'id="by-criterion"' in page and "Tone" in page


def test_simulated_copywriter_prefers_the_description_on_the_briefs_tone() -> None:
    from evalhub.arena.demo import prefer, prefer_by_criterion

    wins = 0
    for row in _products()[:12]:
        good = row["reference"]
        pushy = f"{good} A real game-changer!"  # a stock sales phrase is never on brand
        tone = prefer_by_criterion(good, pushy, row["material"], row["prompt"])
        assert tone["Accuracy"] == "tie" and tone["Tone"] in ("a", "tie")  # "tie": the good one drifted too
        if tone["Tone"] == "a":
            wins += 1
            assert prefer(good, pushy, row["material"], row["prompt"])[0] == "tie"  # hurried: tone alone decides nothing
            assert prefer_by_criterion(pushy, good, row["material"], row["prompt"])["Tone"] == "b"
    assert wins >= 6


FEEDBACK = (
    "feedback: v2 LoRA on 12 training prompts",
    "feedback: training prompts rated and corrected",
    "feedback: SFT export",
)


def test_feedback_steps_rate_and_correct_training_prompts_into_an_sft_export_without_eval_prompts(
    tiny_demo: None, client_for: Any
) -> None:
    from django.contrib.auth import get_user_model

    from evalhub.datasets.models import DatasetVersion, Example
    from evalhub.feedback.models import FeedbackExport
    from evalhub.generation.models import GenerationRun
    from evalhub.projects.models import Project
    from evalhub.reviews import models as reviews
    from evalhub.reviews.demo import CAMPAIGN_NAME as EVAL_CAMPAIGN
    from evalhub.reviews.demo import corrected

    first = _run(BEFORE + OURS + FEEDBACK)
    names = [s.name for s in loader.STEPS]
    assert min(names.index(n) for n in FEEDBACK) > max(names.index(n) for n in OURS)  # after reviews and arena
    project = Project.objects.get(name=loader.PROJECT_NAME)
    a2 = get_user_model().objects.get(username="annotator2")
    train = DatasetVersion.objects.get(dataset__project=project, split_name="train")
    eval_prompts = set(
        Example.objects.filter(version__dataset__project=project, version__split_name="eval").values_list(
            "prompt", flat=True
        )
    )

    # v2 LoRA wrote for 12 prompts split off the train split (none of them an eval prompt).
    sample = DatasetVersion.objects.get(parent=train, split_name="sample")
    sample_prompts = set(sample.examples.values_list("prompt", flat=True))
    assert sample.row_count == 12 and len(sample_prompts) == 12, first
    assert sample_prompts <= set(train.examples.values_list("prompt", flat=True))
    run = GenerationRun.objects.get(eval_version=sample)
    assert str(run.model_version) == "v2 LoRA" and run.status == "succeeded" and run.outputs.count() == 12

    # The campaign over them: the content review's rubric, one rating each, all by annotator2, who corrected every
    # output the simulated copywriter fixes.
    campaign = reviews.Campaign.objects.get(project=project, name="Training prompts · corrections")
    eval_campaign = reviews.Campaign.objects.get(project=project, name=EVAL_CAMPAIGN)
    assert campaign.rubric_version_id == eval_campaign.rubric_version_id
    assert (campaign.item_count, campaign.overlap) == (12, 1)
    assert list(campaign.annotators.values_list("username", flat=True)) == ["annotator2"]
    ratings = reviews.Rating.objects.filter(campaign=campaign)
    assert ratings.count() == 12 and set(ratings.values_list("annotator", flat=True)) == {a2.pk}
    needs_fix = sum(
        1
        for o in run.outputs.select_related("example")
        if corrected(o.text, o.example.attributes["material"]) != o.text.strip()
    )
    corrections = reviews.Correction.objects.filter(item__campaign=campaign)
    assert needs_fix > 1 and corrections.count() == needs_fix, first

    # The SFT export: records only from the training prompts; the eval campaign's correction was kept out.
    export = FeedbackExport.objects.get(project=project)
    assert (export.kind, export.name) == ("sft", "SFT from reviews and corrections (demo)")
    assert export.counts["written"] > 0 and export.version is not None, first
    assert export.counts["dropped"]["corrections"]["leakage"] == 1  # the reviews demo's one correction
    exported = set(export.version.examples.values_list("prompt", flat=True))
    assert exported and exported <= sample_prompts and not exported & eval_prompts
    used = [pk for first_id, last_id in export.lineage["corrections"] for pk in range(first_id, last_id + 1)]
    assert set(used) <= set(corrections.values_list("pk", flat=True))
    line = next(line for line in first.splitlines() if line.strip().startswith(FEEDBACK[2] + ":"))
    assert f"{export.counts['written']} records" in line and "leakage" in line, line

    # A second load changes nothing and says so.
    def counts() -> dict[str, int]:
        return {
            **_counts(),
            "versions": DatasetVersion.objects.count(),
            "exports": FeedbackExport.objects.count(),
        }

    before = counts()
    second = _run(BEFORE + OURS + FEEDBACK)
    assert counts() == before, second
    for name in FEEDBACK:
        line = next(line for line in second.splitlines() if line.strip().startswith(name + ":"))
        assert "found" in line and "made" not in line and "created" not in line, line
    print(first + second)  # the steps' timings, shown with -s

    # The Feedback page lists it for the lead.
    page = client_for(get_user_model().objects.get(username="lead")).get(
        reverse("feedback:list", kwargs={"project_id": project.pk})
    )
    assert page.status_code == 200 and "SFT from reviews and corrections (demo)" in page.content.decode()


RETRAIN = ("feedback: retrain v2 LoRA from the SFT export",)


def test_retrain_step_runs_the_pipeline_once_on_the_sft_export_and_the_timeline_and_overview_tell_its_story(
    tiny_demo: None, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth import get_user_model
    from django.utils.html import escape

    from evalhub.arena import models as arena
    from evalhub.datasets.models import DatasetVersion
    from evalhub.feedback import demo as feedback_demo
    from evalhub.feedback.models import FeedbackExport, RetrainPipeline
    from evalhub.generation.demo import demo_eval_split, demo_versions, existing_run
    from evalhub.projects.models import Project
    from evalhub.tuning.models import ModelVersion, TrainingRun

    monkeypatch.setattr(feedback_demo, "RETRAIN_HYPERPARAMETERS", {"max_steps": 3, "save_every_steps": 3})
    first = _run(BEFORE + OURS + FEEDBACK + RETRAIN)
    names = [s.name for s in loader.STEPS]
    assert names.index(RETRAIN[0]) > max(names.index(n) for n in FEEDBACK)  # after the export it trains on
    project = Project.objects.get(name=loader.PROJECT_NAME)
    lead = get_user_model().objects.get(username="lead")
    _v1, v2 = demo_versions(project)
    eval_split = demo_eval_split(project)
    assert eval_split is not None

    # One finished pipeline: SFT on the demo's export (unchanged, so not exported again), on top of v2 LoRA, with the
    # demo's step count and v2 LoRA's other settings.
    p = RetrainPipeline.objects.get(project=project)
    assert (p.status, p.stage, p.mode, p.parent_id, p.eval_version_id) == (
        "succeeded", "done", "sft", v2.pk, eval_split.pk
    ), first
    export = FeedbackExport.objects.get(project=project)
    assert p.sft_export_id == export.pk
    child = p.new_version
    assert child is not None and child.parent_id == v2.pk and child.number == v2.number + 1
    assert child.training_run is not None and child.training_run.objective == "sft"
    config = child.training_run.config
    assert (config["method"], config["max_steps"], config["rank"]) == ("lora", 3, v2.training_run.config["rank"])
    assert [d["version_id"] for d in child.lineage["datasets"]] == [export.version_id]

    # Its own generation on the eval split, scored; v2 LoRA's demo run and metrics are reused as the parent's.
    assert p.new_generation.model_version_id == child.pk and p.new_generation.status == "succeeded"
    assert p.new_generation.outputs.count() == eval_split.row_count
    assert p.parent_generation == existing_run(v2, eval_split)
    assert p.new_metrics.status == "succeeded" and p.new_metrics.generation_run_id == p.new_generation.pk
    assert p.parent_metrics.generation_run_id == p.parent_generation.pk
    # An arena campaign of the new version against its parent, open for votes.
    contestants = set(p.arena_campaign.contestants.values_list("model_version", flat=True))
    assert contestants == {v2.pk, child.pk} and p.arena_campaign.comparisons.count() == eval_split.row_count

    # The demo's line is the story: the new version, the data it learned from, how it compares with v2 LoRA.
    line = next(line for line in first.splitlines() if line.strip().startswith(RETRAIN[0] + ":"))
    sentence = f"v{child.number}, trained on {export.annotations_used} annotations: vs v{v2.number}"
    assert sentence in line and "ROUGE-L" in line and "chrF" in line and export.name in line, line

    # The timeline, the pipeline page and the lead's overview tell it too.
    story = feedback_demo.story(p)
    timeline = client_for(lead).get(reverse("feedback:timeline", kwargs={"project_id": project.pk}))
    assert timeline.status_code == 200
    sentence_shown = story.split("; ")[0]
    assert escape(sentence_shown) in timeline.content.decode()
    page = client_for(lead).get(reverse("feedback:pipeline", kwargs={"project_id": project.pk, "pipeline_id": p.pk}))
    assert page.status_code == 200 and escape(sentence_shown) in page.content.decode()
    overview = client_for(lead).get(reverse("projects:detail", kwargs={"project_id": project.pk})).content.decode()
    assert "What feedback did" in overview and f"retrain #{p.pk}" in overview
    assert f"trained on {export.annotations_used} annotations" in overview

    # A second load finds it and changes nothing.
    def counts() -> dict[str, int]:
        return {
            **_counts(),
            "pipelines": RetrainPipeline.objects.count(),
            "training runs": TrainingRun.objects.count(),
            "model versions": ModelVersion.objects.count(),
            "dataset versions": DatasetVersion.objects.count(),
            "exports": FeedbackExport.objects.count(),
            "arena campaigns": arena.Campaign.objects.count(),
        }

    before = counts()
    second = _run(BEFORE + OURS + FEEDBACK + RETRAIN)
    assert counts() == before, second
    line = next(line for line in second.splitlines() if line.strip().startswith(RETRAIN[0] + ":"))
    assert f"found retrain #{p.pk}" in line and sentence in line, line
    print(first + second)  # the steps' timings, shown with -s
