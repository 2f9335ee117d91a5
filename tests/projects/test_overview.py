"""The project overview: annotators and reviewers see their own open work (blind), leads see the loop's numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from evalhub.datasets import services as dataset_services
from evalhub.datasets.models import CurationQueue, QualityReport
from evalhub.jobs.models import Job, JobStatus
from evalhub.projects.models import Membership, Role
from evalhub.reviews.models import Adjudication, Campaign, CampaignStatus
from evalhub.tuning.models import TrainingRun
from tests.arena.factories import Eval, eval_with_runs, simulate_campaign_votes
from tests.arena.factories import campaign as arena_campaign
from tests.generation.factories import make_metric_run
from tests.reviews.factories import Runs, make_campaign, make_runs

pytestmark = pytest.mark.django_db

SECRET_NAMES = ["kestrel-hidden-lora", "marten-secret-dpo", "osprey-private", "lynx-undisclosed"]


@dataclass
class Scene:
    runs: Runs  # two versions, rated in the review campaign
    ev: Eval  # two more versions, compared in the arena
    review: Campaign
    arena: Any
    queue: CurationQueue


@pytest.fixture
def scene(world: Any) -> Scene:
    runs = make_runs(world.project, n_examples=4, n_versions=2, version_names=SECRET_NAMES[:2])
    review = make_campaign(world.project, world.lead, runs, overlap=2, name="Round 1 ratings")
    ev = eval_with_runs(world.project, n_examples=3, n_versions=2, names=SECRET_NAMES[2:])
    duel = arena_campaign(world.project, ev, name="Shelf duel")
    queue = dataset_services.curation_queue_create(version=ev.version, name="Tone pass", created_by=world.lead)
    return Scene(runs=runs, ev=ev, review=review, arena=duel, queue=queue)


def page(client: Any, project: Any) -> str:
    r = client.get(f"/p/{project.pk}/")
    assert r.status_code == 200
    return r.content.decode()


def text_of(html: str) -> str:
    """The visible text of the page's main part (the stage navigation left out), whitespace collapsed."""
    main = html.split("<main>", 1)[-1].split("</main>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


def identity_words(s: Scene) -> list[str]:
    """What would tell an annotator which model wrote an output: names, version numbers, run and output ids."""
    versions = [*s.runs.versions, *s.ev.versions]
    words = [*SECRET_NAMES, "model_version", "generation_run"]
    words += [f"v{v.number}" for v in versions] + [str(v) for v in versions]
    words += [f"run #{r.pk}" for r in [*s.runs.runs, *s.ev.runs]] + [f"/generation/{r.pk}/" for r in [*s.runs.runs, *s.ev.runs]]
    return words


def assert_blind(html: str, s: Scene, who: str) -> None:
    for word in identity_words(s):
        # Whole words only: a random CSRF token may well contain "v2".
        found = re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", html, flags=re.IGNORECASE)
        assert found is None, f"the overview shows {who} {word!r}: …{html[max(0, found.start() - 60):found.end() + 60]}…"


def test_annotator_sees_each_open_campaign_and_queue_with_their_counts(world: Any, scene: Scene, client_for: Any) -> None:
    client = client_for(world.annotator)
    html = page(client, world.project)
    text = text_of(html)
    pid = world.project.pk
    assert "Your work" in text and "The loop" not in text
    # Review: 8 outputs, open to every member, none rated yet.
    assert "Round 1 ratings" in text and "You rated 0 of about 8" in text
    assert f'href="/p/{pid}/reviews/c/{scene.review.pk}/next/">Start rating</a>' in html
    # Arena: 3 prompts x 1 pair of versions, one vote each.
    assert "Shelf duel" in text and "You voted 0 times · 3 comparisons left for you" in text
    assert f'href="/p/{pid}/arena/{scene.arena.pk}/vote/">Start voting</a>' in html
    # Curation: the queue's 3 examples.
    assert "Tone pass" in text and "3 examples left of 3" in text
    assert f'href="/p/{pid}/data/curation/{scene.queue.pk}/annotate/">Start curating</a>' in html
    assert "Nothing waiting for you" not in text
    assert_blind(html, scene, "an annotator")

    # After rating one item the row counts it and offers to continue.
    location = client.get(f"/p/{pid}/reviews/c/{scene.review.pk}/next/")["Location"]
    done = client.post(location, {"c1": "4", "c2": "1", "submission_token": "t1"})
    assert done.status_code == 302
    html = page(client, world.project)
    assert "You rated 1 of about 8" in text_of(html)
    assert f'href="/p/{pid}/reviews/c/{scene.review.pk}/next/">Continue</a>' in html
    assert_blind(html, scene, "an annotator")


def test_rows_only_for_what_this_person_can_do_now(world: Any, scene: Scene, client_for: Any) -> None:
    other = get_user_model().objects.create_user("rater-x")
    Membership.objects.create(project=world.project, user=other, role=Role.ANNOTATOR)
    make_campaign(world.project, world.lead, scene.runs, overlap=1, name="Only for rater-x", annotator_ids=[other.pk])
    Campaign.objects.filter(pk=scene.review.pk).update(status=CampaignStatus.CLOSED)
    scene.arena.annotators.set([other])
    CurationQueue.objects.filter(pk=scene.queue.pk).update(status=CurationQueue.Status.CLOSED)

    text = text_of(page(client_for(world.annotator), world.project))
    assert "Nothing waiting for you" in text
    for name in ("Round 1 ratings", "Only for rater-x", "Shelf duel", "Tone pass"):
        assert name not in text
    theirs = text_of(page(client_for(other), world.project))
    assert "Only for rater-x" in theirs and "Shelf duel" in theirs and "Nothing waiting" not in theirs


def test_nothing_open_says_so(world: Any, client_for: Any) -> None:
    assert "Nothing waiting for you" in text_of(page(client_for(world.annotator), world.project))


def test_reviewer_sees_items_waiting_for_adjudication(world: Any, scene: Scene, client_for: Any) -> None:
    items = list(scene.review.items.order_by("position")[:2])
    for item in items:
        Adjudication.objects.create(item=item, campaign=scene.review)
    pid = world.project.pk
    html = page(client_for(world.reviewer), world.project)
    text = text_of(html)
    assert "2 items where raters disagree, waiting for a reviewer" in text
    assert f'href="/p/{pid}/reviews/c/{scene.review.pk}/adjudicate/">Adjudicate</a>' in html
    assert_blind(html, scene, "a reviewer")
    # Annotators do not adjudicate.
    assert "waiting for a reviewer" not in text_of(page(client_for(world.annotator), world.project))


def test_lead_sees_each_stage_with_live_numbers(world: Any, scene: Scene, client_for: Any) -> None:
    older, newer = scene.ev.versions
    newer.lineage = {"best_val_loss": 1.23456}
    newer.save(update_fields=["lineage"])
    make_metric_run(scene.ev.runs[0], {"rougeL": [0.1, 0.2, 0.3], "bertscore": [0.5, 0.5, 0.5]})
    make_metric_run(scene.ev.runs[1], {"rougeL": [0.3, 0.3, 0.3], "bertscore": [0.6, 0.6, 0.6]})
    voters = []
    for i in range(3):
        u = get_user_model().objects.create_user(f"voter{i}")
        Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        voters.append(u)
    simulate_campaign_votes(scene.arena, [1000, 1400], users=voters, per_comparison=3)
    Adjudication.objects.create(item=scene.review.items.first(), campaign=scene.review)
    job = Job.objects.create(project=world.project, kind="tuning.train", status=JobStatus.RUNNING,
                             progress_current=30, progress_total=100)
    TrainingRun.objects.create(project=world.project, name="lora-r8", base_model=newer.base_model, method="lora",
                               train_version=scene.ev.version, job=job)

    html = page(client_for(world.lead), world.project)
    text = text_of(html)
    assert "The loop" in text and "Your work" not in text
    # Data: the review eval set and the arena eval set.
    assert "Datasets 2 (2 versions)" in text and "no quality report yet" in text and "Curation 1 queue open" in text
    # Fine-tuning: runs by status, the newest version with its validation loss, the running run's progress.
    assert "Runs 1 running" in text and f"Latest model {newer} · best val loss 1.2346" in text
    assert "lora-r8 step 30 of 100" in text
    # Generate & measure: the two arena versions' means, older first.
    assert "Generation runs 4 succeeded" in text
    assert f"Compared v{older.number} → v{newer.number}" in text
    assert "ROUGE-L 0.200 → 0.300 (+0.100)" in text and "BERTScore 0.500 → 0.600 (+0.100)" in text
    # Reviews: the campaign's bar and what waits for a reviewer.
    assert "Round 1 ratings" in text and "0 of 16 ratings" in text and "Needs adjudication 1 item" in text
    # Arena: the stronger version leads, with its interval and the votes.
    assert re.search(rf"Leader {re.escape(str(newer))} · \d+ \[\d+, \d+\] Elo", text)
    assert "Votes 9 in Shelf duel (2 versions)" in text
    # Feedback: nothing yet, and what to do.
    assert "No export yet" in text
    # Jobs running now, with a live progress bar.
    assert "Jobs running now" in text and "Training" in text
    assert f'data-job-status-url="/p/{world.project.pk}/jobs/{job.pk}/status/"' in html
    assert 'style="width: 30%"' in html
    # Leads name versions; the same check that passes for annotators catches it here.
    with pytest.raises(AssertionError):
        assert_blind(html, scene, "a lead")


def test_lead_is_not_told_a_leader_while_the_top_rank_is_shared(world: Any, scene: Scene, client_for: Any) -> None:
    voters = []
    for i in range(2):
        u = get_user_model().objects.create_user(f"voter{i}")
        Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        voters.append(u)
    simulate_campaign_votes(scene.arena, [1000, 1000], users=voters, per_comparison=2)
    text = text_of(page(client_for(world.lead), world.project))
    assert "Leader " not in text
    assert re.search(r"Ahead .+ · \d+ \[\d+, \d+\] Elo", text)
    assert "Not decided shares rank 1 with" in text and "intervals overlap" in text


def test_lead_of_an_empty_project_gets_the_first_steps(world: Any, client_for: Any) -> None:
    text = text_of(page(client_for(world.lead), world.project))
    assert "No dataset yet" in text and "No training run yet" in text and "No review campaign yet" in text
    assert "No arena votes yet" in text and "No job is running or queued" in text


def test_outsider_gets_404(world: Any, scene: Scene, client_for: Any) -> None:
    assert client_for(world.outsider).get(f"/p/{world.project.pk}/").status_code == 404


def test_lead_sees_the_findings_of_each_versions_newest_quality_report(world: Any, scene: Scene, client_for: Any) -> None:
    def report(version: Any, findings: list[str]) -> QualityReport:
        job = Job.objects.create(project=world.project, kind="datasets.quality_report", status=JobStatus.SUCCEEDED)
        return QualityReport.objects.create(version=version, job=job, report={"findings": findings})

    report(scene.ev.version, ["old 1", "old 2", "old 3"])
    newest = report(scene.ev.version, ["near-duplicate prompts", "rare category"])
    report(scene.runs.examples[0].version, [])
    html = page(client_for(world.lead), world.project)
    # A re-run replaces the version's older report; a clean report adds nothing.
    assert "Quality findings 2 across 2 reports" in text_of(html)
    assert f'href="/p/{world.project.pk}/data/quality/{newest.pk}/">2 across 2 reports</a>' in html
