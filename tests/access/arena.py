from __future__ import annotations

from typing import Any

from tests.access.rules import Rule, project, with_project


def objects(world: Any) -> dict[str, Any]:
    """A campaign between two model versions on three prompts."""
    from tests.arena.factories import campaign, eval_with_runs

    ev = eval_with_runs(world.project, n_examples=3, n_versions=2, first_number=301)
    return {"campaign": campaign(world.project, ev, user=world.lead)}


c = with_project(campaign_id="campaign")

RULES: dict[str, Rule] = {
    "arena:list": Rule("annotator", project),
    "arena:create": Rule("lead", project, methods=("GET", "POST")),
    "arena:import": Rule("lead", project, methods=("GET", "POST")),
    "arena:detail": Rule("annotator", c),
    "arena:vote": Rule("annotator", c, methods=("GET", "POST")),
    "arena:status": Rule("lead", c, methods=("POST",)),
    "arena:leaderboard": Rule("lead", c),
    "arena:annotators": Rule("lead", c),
    "api-arena-campaign-list": Rule("annotator", project),
    "api-arena-campaign-create": Rule("lead", project, methods=("POST",)),
    "api-arena-import": Rule("lead", project, methods=("POST",)),
    "api-arena-campaign-detail": Rule("annotator", c),
    "api-arena-campaign-status": Rule("lead", c, methods=("POST",)),
    "api-arena-next": Rule("annotator", c),
    "api-arena-vote": Rule("annotator", c, methods=("POST",)),
    "api-arena-skip": Rule("annotator", c, methods=("POST",)),
    "api-arena-leaderboard": Rule("lead", c),
    "api-arena-annotators": Rule("lead", c),
}
