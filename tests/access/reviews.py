"""Who may use the reviews pages and API. Annotators rate (blind); reviewers adjudicate and see agreement and
corrections; leads manage rubrics and campaigns and see results with model versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    from evalhub.reviews import services
    from evalhub.reviews.models import Adjudication
    from tests.reviews.factories import make_campaign, make_runs

    runs = make_runs(world.project, n_examples=2)
    campaign = make_campaign(world.project, world.lead, runs, overlap=2)
    rubric = campaign.rubric_version.rubric
    assignment = services.assignment_next(campaign=campaign, user=world.annotator)
    assert assignment is not None
    item = assignment.item
    adjudication = Adjudication.objects.create(item=item, campaign=campaign, criteria=[{"criterion": "Accuracy", "spread": 3}])
    return {"campaign": campaign, "rubric": rubric, "assignment": assignment, "adjudicated_item": item,
            "adjudication": adjudication}


def _with(**extra: Callable[[dict[str, Any]], Any]) -> Callable[[Any, dict[str, Any]], dict[str, Any]]:
    def build(w: Any, o: dict[str, Any]) -> dict[str, Any]:
        return {"project_id": w.project.pk, **{k: f(o) for k, f in extra.items()}}

    return build


campaign = with_project(campaign_id="campaign")
rate_kwargs = _with(campaign_id=lambda o: o["campaign"].pk, token=lambda o: o["assignment"].token)
adjudicate_kwargs = _with(campaign_id=lambda o: o["campaign"].pk, item_token=lambda o: o["adjudicated_item"].token)

RULES: dict[str, Rule] = {
    "reviews:list": Rule("annotator", project),
    "reviews:rubrics": Rule("lead", project),
    "reviews:rubric-new": Rule("lead", project),
    "reviews:rubric-edit": Rule("lead", with_project(rubric_id="rubric")),
    "reviews:campaign-new": Rule("lead", project),
    "reviews:campaign": Rule("annotator", campaign),
    "reviews:campaign-settings": Rule("lead", campaign, methods=("POST",), data={"action": "guidelines", "guidelines": "Be kind."}),
    "reviews:gold": Rule("lead", campaign),
    "reviews:next": Rule("annotator", campaign),
    "reviews:rate": Rule("annotator", rate_kwargs, methods=("GET", "POST")),
    "reviews:skip": Rule("annotator", rate_kwargs, methods=("POST",)),
    "reviews:adjudications": Rule("reviewer", campaign),
    "reviews:adjudicate": Rule("reviewer", adjudicate_kwargs),
    "reviews:corrections": Rule("reviewer", campaign),
    "reviews:agreement": Rule("reviewer", campaign),
    "reviews:results": Rule("lead", campaign),
    "reviews:export": Rule("lead", _with(campaign_id=lambda o: o["campaign"].pk, fmt=lambda o: "csv")),
    "api-review-campaigns": Rule("annotator", project),
    "api-review-next": Rule("annotator", campaign),
    "api-review-submit": Rule("annotator", campaign, methods=("POST",), data={}),
    "api-review-skip": Rule("annotator", campaign, methods=("POST",), data={}),
    "api-review-agreement": Rule("reviewer", campaign),
    "api-review-results": Rule("lead", campaign),
    "api-review-rubrics": Rule("lead", project, methods=("GET", "POST"), data={"template": "chatbot"}),
}
