"""The feedback pages and API as a lead uses them: build and download exports, refusals shown where they belong,
retrain from the page and the API, the timeline and the project page's story (leads only)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from django.urls import reverse

from evalhub.feedback.models import FeedbackExport, RetrainPipeline
from evalhub.jobs.models import Job
from tests.feedback import factories

pytestmark = pytest.mark.django_db


def visible_text(html: str) -> str:
    import re

    from django.utils.html import strip_tags

    return re.sub(r"\s+", " ", strip_tags(html))


def url(name: str, s: Any, **kw: Any) -> str:
    return reverse(name, kwargs={"project_id": s.project.pk, **kw})


def test_export_page_builds_a_version_and_offers_every_format(world: Any, client_for: Any) -> None:
    s = factories.scenario(world)
    factories.arena(s)
    client = client_for(world.lead)
    page = client.post(
        url("feedback:export-create", s),
        {
            "kind": "dpo",
            "sources": ["arena"],
            "min_score": 0.75,
            "margin": 0.25,
            "max_pairs_per_prompt": 3,
            "min_agreement": 0,
            "reliability": "ignore",
            "min_reliability": 0.5,
            "leakage_threshold": 0.8,
            "include_imported": "on",
            "formats": ["parquet", "hf"],
        },
        follow=True,
    )
    export = FeedbackExport.objects.get()
    assert page.redirect_chain[-1][0] == url("feedback:export-detail", s, export_id=export.pk)
    text = page.content.decode()
    assert f"{export.records}" in text and "annotations used" in text and str(export.version) in text
    download = url("feedback:export-download", s, export_id=export.pk)
    for fmt in ("jsonl", "parquet", "hf"):
        assert f"{download}?file={fmt}" in text
    body = b"".join(client.get(download + "?file=jsonl").streaming_content)
    assert [json.loads(line)["chosen"][0]["role"] for line in body.splitlines()] == [
        "assistant"
    ] * export.records
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(download + "?file=hf").streaming_content)))
    assert any(name.endswith("dataset_info.json") for name in archive.namelist())


def test_export_page_says_why_nothing_was_exported(world: Any, client_for: Any) -> None:
    s = factories.scenario(world, products=factories.EVAL_PRODUCTS)
    factories.arena(s)
    page = client_for(world.lead).post(
        url("feedback:export-create", s),
        {
            "kind": "dpo",
            "sources": ["arena"],
            "min_score": 0.75,
            "margin": 0.25,
            "max_pairs_per_prompt": 3,
            "min_agreement": 0,
            "reliability": "ignore",
            "min_reliability": 0.5,
            "leakage_threshold": 0.8,
        },
    )
    assert page.status_code == 200 and "held-out eval set" in page.content.decode()
    assert not FeedbackExport.objects.exists()


def test_export_preview_escapes_model_text(world: Any, client_for: Any) -> None:
    s = factories.scenario(world)
    out = s.outputs[(0, 0)]
    out.text = "<script>alert(1)</script> made of stainless steel"
    out.save()
    factories.arena(s)
    from evalhub.feedback.builders import ExportOptions
    from evalhub.feedback.services import export_create

    e = export_create(project=s.project, user=s.lead, options=ExportOptions(kind="dpo", sources=("arena",)))
    text = client_for(world.lead).get(url("feedback:export-detail", s, export_id=e.pk)).content.decode()
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)" in text


def test_api_builds_exports_and_refuses_by_field(world: Any, api_for: Any) -> None:
    s = factories.scenario(world)
    factories.arena(s)
    api = api_for(world.lead)
    bad = api.post(
        url("api-feedback-export-list", s),
        {"kind": "dpo", "sources": ["arena"], "min_agreement": 3},
        format="json",
    )
    assert bad.status_code == 400 and "min_agreement" in bad.json()
    empty = api.post(url("api-feedback-export-list", s), {"kind": "sft", "sources": ["rated"]}, format="json")
    assert empty.status_code == 400 and "Nothing to export" in json.dumps(empty.json())
    made = api.post(
        url("api-feedback-export-list", s),
        {"kind": "dpo", "sources": ["arena"], "formats": ["parquet"]},
        format="json",
    )
    assert made.status_code == 201, made.json()
    data = made.json()
    assert data["counts"]["written"] == len(factories.PRODUCTS) and set(data["downloads"]) == {
        "jsonl",
        "parquet",
    }
    assert api.get(data["downloads"]["parquet"]).status_code == 200
    assert (
        api.get(url("api-feedback-export-detail", s, export_id=data["id"])).json()["version"]
        == data["version"]
    )


def test_api_refuses_a_retrain_from_a_deleted_version_and_queues_nothing(world: Any, api_for: Any) -> None:
    s = factories.scenario(world)
    factories.arena(s)
    jobs = Job.objects.count()
    response = api_for(world.lead).post(
        url("api-feedback-retrain-list", s),
        {
            "parent": 987654,
            "eval_version": s.eval.pk,
            "mode": "dpo",
            "dpo": {"sources": ["arena"]},
        },
        format="json",
    )
    assert response.status_code == 400 and "does not exist any more" in response.json()["parent"][0]
    assert (
        Job.objects.count() == jobs
        and not RetrainPipeline.objects.exists()
        and not FeedbackExport.objects.exists()
    )


def test_retrain_page_preselects_the_projects_eval_split(world: Any, client_for: Any) -> None:
    s = factories.scenario(world)
    html = client_for(world.lead).get(url("feedback:retrain", s)).content.decode()
    assert f'<option value="{s.eval.pk}" selected>' in html
    assert html.count(" selected>") >= 1 and f'<option value="{s.pool.pk}" selected>' not in html


def test_retrain_page_refuses_with_the_reason_next_to_the_form(
    world: Any, client_for: Any, tiny_base: Any
) -> None:
    s = factories.scenario(world, products=factories.EVAL_PRODUCTS, base=tiny_base)
    factories.arena(s)
    page = client_for(world.lead).post(
        url("feedback:retrain", s),
        {
            "parent": s.versions[0].pk,
            "eval_version": s.eval.pk,
            "mode": "dpo",
            "dpo_sources": ["arena"],
            "min_score": 0.75,
            "margin": 0.25,
            "max_pairs_per_prompt": 3,
            "min_agreement": 0,
            "reliability": "ignore",
            "min_reliability": 0.5,
            "leakage_threshold": 0.8,
            "max_new_tokens": 8,
            "metrics": ["rougeL"],
        },
    )
    text = page.content.decode()
    assert page.status_code == 200 and "Nothing was queued" in text and "held-out eval set" in text
    assert not Job.objects.exists()


def test_retrain_from_the_page_then_the_story_on_the_project_page(
    world: Any, client_for: Any, api_for: Any, tiny_base: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from evalhub.arena import services as arena
    from evalhub.arena.models import Comparison

    s = factories.scenario(world, base=tiny_base)
    factories.arena(s)
    client = client_for(world.lead)
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(
            url("feedback:retrain", s),
            {
                "parent": s.versions[0].pk,
                "eval_version": s.eval.pk,
                "mode": "dpo",
                "dpo_sources": ["arena"],
                "dpo_hyperparameters": json.dumps(
                    {
                        "max_steps": 2,
                        "batch_size": 4,
                        "rank": 4,
                        "alpha": 8,
                        "placement": "attention",
                        "max_seq_len": 128,
                        "learning_rate": 1e-3,
                    }
                ),
                "min_score": 0.75,
                "margin": 0.25,
                "max_pairs_per_prompt": 3,
                "min_agreement": 0,
                "reliability": "ignore",
                "min_reliability": 0.5,
                "leakage_threshold": 0.8,
                "max_new_tokens": 6,
                "metrics": ["rougeL", "chrf"],
            },
        )
    p = RetrainPipeline.objects.get()
    assert page.status_code == 302 and page["Location"] == url("feedback:pipeline", s, pipeline_id=p.pk)
    assert p.status == "succeeded", p.error
    detail = client.get(page["Location"]).content.decode()
    assert "Arena campaign" in detail and p.arena_campaign.name in detail
    # The annotators judge the two versions blind; the new one wins every comparison here.
    for user in s.annotators:
        while (a := arena.comparison_next(campaign=p.arena_campaign, user=user)) is not None:
            c = Comparison.objects.select_related("left__contestant").get(pk=a.comparison_id)
            new_left = c.left.contestant.model_version_id == p.new_version_id
            arena.vote_submit(
                campaign=p.arena_campaign, user=user, token=c.token, choice="a" if new_left else "b"
            )
    home = client.get(reverse("projects:detail", kwargs={"project_id": s.project.pk})).content.decode()
    assert "What feedback did" in home
    story = api_for(world.lead).get(url("api-feedback-timeline", s)).json()[0]
    assert story["version"]["id"] == p.new_version_id and story["parent"]["id"] == s.versions[0].pk
    assert story["elo"]["value"] > 0 and story["annotations"] == p.dpo_export.annotations_used
    assert story["sentence"].startswith(
        f"v{p.new_version.number}, trained on {story['annotations']} annotations: +"
    )
    assert "Elo [" in story["sentence"] and f"vs v{s.versions[0].number}, ROUGE-L" in story["sentence"]
    assert story["sentence"] in visible_text(home)
    assert story["sentence"] in visible_text(client.get(url("feedback:timeline", s)).content.decode())
    # Annotators see the project page, but not which model versions were compared.
    assert (
        "What feedback did"
        not in client_for(world.annotator)
        .get(reverse("projects:detail", kwargs={"project_id": s.project.pk}))
        .content.decode()
    )
