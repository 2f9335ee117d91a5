"""Creating campaigns from generation runs: prompts matched by example, stored random sides, refusals."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from evalhub.arena import services
from evalhub.arena.models import Campaign, Candidate, Comparison, Contestant, Prompt
from evalhub.generation.models import GenerationRun, Output, RunStatus
from tests.arena.factories import Eval, campaign, eval_with_runs

pytestmark = pytest.mark.django_db


def test_one_comparison_per_prompt_and_pair_with_both_side_orders(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=40, n_versions=3)
    c = campaign(world.project, ev, user=world.lead)
    assert c.contestants.count() == 3
    assert Prompt.objects.filter(campaign=c).count() == 40
    comps = list(Comparison.objects.filter(campaign=c).select_related("left", "right"))
    assert len(comps) == 40 * 3
    assert len({(x.prompt_id, x.pair_lo_id, x.pair_hi_id) for x in comps}) == len(comps)
    # Sides are drawn per comparison: each contestant of a pair shows up on the left for some prompts.
    left_is_lo = [x.left.contestant_id == x.pair_lo_id for x in comps]
    assert 0.3 < sum(left_is_lo) / len(left_is_lo) < 0.7
    # ...and the candidates are the matching outputs of each run for that prompt's example.
    for x in comps[:10]:
        for cand in (x.left, x.right):
            out = Output.objects.get(pk=cand.output_id)
            assert out.example_id == x.prompt.example_id
            assert out.run_id == Contestant.objects.get(pk=cand.contestant_id).generation_run_id
    # Tokens are random, not derived from ids.
    assert all(len(x.token) >= 16 and str(x.pk) != x.token for x in comps)


def test_sides_are_stored_not_redrawn(world: Any, ev: Eval) -> None:
    c = campaign(world.project, ev)
    before = dict(Comparison.objects.filter(campaign=c).values_list("token", "left_id"))
    services.comparison_next(campaign=c, user=world.annotator)
    assert dict(Comparison.objects.filter(campaign=c).values_list("token", "left_id")) == before


def test_prompts_missing_an_output_only_drop_the_pairs_that_need_it(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=4, n_versions=3)
    Output.objects.filter(run=ev.runs[2], example=ev.examples[0]).update(error="CUDA out of memory")
    Output.objects.filter(run__in=ev.runs[1:], example=ev.examples[1]).delete()
    c = campaign(world.project, ev)
    # example 0: only runs 0 and 1 -> 1 pair; example 1: only run 0 -> dropped; examples 2, 3: 3 pairs each.
    assert Prompt.objects.filter(campaign=c).count() == 3
    assert Comparison.objects.filter(campaign=c).count() == 1 + 3 + 3
    assert Candidate.objects.filter(prompt__campaign=c).count() == 2 + 3 + 3


def test_max_prompts_samples_examples(world: Any) -> None:
    ev = eval_with_runs(world.project, n_examples=10, n_versions=2)
    c = campaign(world.project, ev, max_prompts=4)
    assert Prompt.objects.filter(campaign=c).count() == 4
    assert Comparison.objects.filter(campaign=c).count() == 4


def test_refusals_name_the_field_and_store_nothing(world: Any, ev: Eval) -> None:
    other = eval_with_runs(world.project, n_examples=2, n_versions=1)
    cases = [
        (ev.runs[:1], "runs", "at least two"),
        ([ev.runs[0], other.runs[0]], "runs", "same eval dataset version"),
        ([ev.runs[0], ev.runs[0]], "runs", "same run was picked twice"),
    ]
    dup = GenerationRun.objects.create(project=world.project, model_version=ev.versions[0], eval_version=ev.version,
                                       status=RunStatus.SUCCEEDED)
    cases.append(([ev.runs[0], dup], "runs", "same model version"))
    running = GenerationRun.objects.create(project=world.project, model_version=other.versions[0],
                                           eval_version=ev.version, status=RunStatus.RUNNING)
    cases.append(([ev.runs[0], running], "runs", "has not finished"))
    for runs, field, words in cases:
        with pytest.raises(ValidationError) as info:
            services.campaign_create(project=world.project, user=None, runs=runs,
                                     options=services.CampaignOptions(name="x"))
        assert words in " ".join(info.value.message_dict[field])
    for bad, field in [({"name": " "}, "name"), ({"overlap": 0}, "overlap"), ({"confidence": 1.0}, "confidence"),
                       ({"scheduling": "magic"}, "scheduling"), ({"criteria": ("x" * 61,)}, "criteria")]:
        opts = services.CampaignOptions(**{"name": "ok", **bad})  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as info:
            services.campaign_create(project=world.project, user=None, runs=ev.runs, options=opts)
        assert field in info.value.message_dict
    assert Campaign.objects.count() == 0


def test_runs_of_another_project_are_refused(world: Any, ev: Eval) -> None:
    foreign = eval_with_runs(world.other_project, n_examples=2, n_versions=2)
    with pytest.raises(ValidationError) as info:
        services.campaign_create(project=world.project, user=None, runs=[ev.runs[0], *foreign.runs[:1]],
                                 options=services.CampaignOptions(name="x"))
    assert "belong to this project" in str(info.value)


def test_lead_creates_a_campaign_through_the_page(world: Any, ev: Eval, client_for: Any) -> None:
    client = client_for(world.lead)
    url = f"/p/{world.project.pk}/arena/new/"
    page = client.get(url)
    assert page.status_code == 200 and "copywriter-a" in page.content.decode()
    response = client.post(url, {
        "name": "Shelf copy", "runs": [r.pk for r in ev.runs], "overlap": 2, "scheduling": "active",
        "stop_when_decided": "on", "confidence": 0.95, "min_votes_to_decide": 20, "both_bad_as": "tie",
        "claim_minutes": 30, "criteria": "accuracy, persuasiveness",
    })
    assert response.status_code == 302
    c = Campaign.objects.get()
    assert (c.overlap, c.scheduling, c.criteria) == (2, "active", ["accuracy", "persuasiveness"])
    bad = client.post(url, {"name": "Again", "runs": [ev.runs[0].pk], "overlap": 1, "scheduling": "uniform",
                            "confidence": 0.95, "min_votes_to_decide": 20, "both_bad_as": "tie", "claim_minutes": 30})
    assert bad.status_code == 400 and "at least two" in bad.content.decode()
    assert Campaign.objects.count() == 1


def test_lead_creates_through_the_api(world: Any, ev: Eval, api_for: Any) -> None:
    api = api_for(world.lead)
    url = f"/api/projects/{world.project.pk}/arena/campaigns/create/"
    r = api.post(url, {"name": "API", "runs": [x.pk for x in ev.runs], "overlap": 3}, format="json")
    assert r.status_code == 201, r.content
    assert [c["name"] for c in r.json()["contestants"]] == [str(v) for v in ev.versions]
    r = api.post(url, {"name": "API", "runs": [ev.runs[0].pk, 999999]}, format="json")
    assert r.status_code == 400 and "runs" in r.json()
