"""Demo step of the arena: a blind A/B campaign between "v1 base" and "v2 LoRA" over the eval prompts, judged overall
and on two criteria (Accuracy, Tone), with some of annotator2's votes already in, so the leaderboard has numbers,
also by criterion; annotator1's share is left for a visitor.

annotator2 votes like a hurried copywriter: the description that names the product's material wins (that is also
their Accuracy preference); when both or neither do, the one that reads as a finished description of a sensible length
wins; otherwise it is a tie (both bad when both are next to empty, and then no criterion is judged). Tone they judge as
in the reviews demo (so annotator2 sees tone the same way in both campaigns), but being hurried, tone alone does not
decide their overall pick. Deterministic, so every demo shows the same votes.

Idempotent: the campaign is found by name, and annotator2 only votes until their share is reached. A campaign made by
an older demo without criteria keeps having none: its votes then carry no per-criterion preferences.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, TextIO

from evalhub.arena import services
from evalhub.arena.models import Campaign, CampaignKind, Vote, VoteOrigin
from evalhub.generation.demo import demo_generation_runs
from evalhub.projects.models import Project

CAMPAIGN_NAME = "Product descriptions · A/B"
VOTER = "annotator2"
ANNOTATORS = ("annotator1", "annotator2")
CRITERIA = ("Accuracy", "Tone")
VOTED_SHARE = 0.5
INSTRUCTIONS = (
    "Two descriptions of the same product, written from the brief above them. Pick the one you would rather publish "
    "on the product page: facts from the brief only, the material named, the tone the brief asks for, a finished "
    "last sentence. Tie when they are equally good; both bad when neither could be published after a small edit."
)


def _finished(text: str) -> bool:
    words = len(text.split())
    return 40 <= words <= 110 and text.rstrip().endswith((".", "!", "?", '"', "”"))


def _side(a_good: bool, b_good: bool) -> str:
    return "tie" if a_good == b_good else ("a" if a_good else "b")


def _on_brand(text: str, prompt: str, material: str) -> bool:
    from evalhub.reviews.demo import judge

    return judge(text, prompt, material)[0]["Tone"] == "On brand"


def prefer_by_criterion(a: str, b: str, material: str, prompt: str = "") -> dict[str, str]:
    """{criterion: a / b / tie}: Accuracy goes to the one that names the product's material, Tone to the one on the
    tone the brief (`prompt`) asks for."""
    m = material.lower()
    return {
        "Accuracy": _side(bool(m) and m in a.lower(), bool(m) and m in b.lower()),
        "Tone": _side(_on_brand(a, prompt, material), _on_brand(b, prompt, material)),
    }


def prefer(a: str, b: str, material: str, prompt: str = "") -> tuple[str, str]:
    """(choice, reason) between response A and response B for a product of this material and brief."""
    if len(a.split()) < 5 and len(b.split()) < 5:
        return "both_bad", "Neither says anything about the product."
    by_criterion = prefer_by_criterion(a, b, material, prompt)
    if (accurate := by_criterion["Accuracy"]) != "tie":
        return accurate, f"Only {accurate.upper()} says it is {material}."
    a_done, b_done = _finished(a), _finished(b)
    if a_done != b_done:
        return ("a" if a_done else "b"), f"{'A' if a_done else 'B'} reads as a finished description."
    return "tie", ""


def simulate_votes(campaign: Campaign, user: Any) -> tuple[int, int]:
    """Vote as `user` until they voted on VOTED_SHARE of the comparisons. Returns (votes now, their votes in all)."""
    target = math.ceil(campaign.comparisons.count() * VOTED_SHARE)
    done = Vote.objects.filter(campaign=campaign, annotator=user, origin=VoteOrigin.ANNOTATOR).count()
    made = 0
    while done < target:
        assignment = services.comparison_next(campaign=campaign, user=user)
        if assignment is None:
            break
        comparison = assignment.comparison
        example = comparison.prompt.example
        material = str(((example.attributes or {}) if example is not None else {}).get("material") or "")
        prompt = example.prompt if example is not None else comparison.prompt.text
        a, b = comparison.left.response_text, comparison.right.response_text
        choice, reason = prefer(a, b, material, prompt)
        criteria = (
            {}
            if choice == "both_bad"
            else {k: v for k, v in prefer_by_criterion(a, b, material, prompt).items() if k in campaign.criteria}
        )
        services.vote_submit(
            campaign=campaign,
            user=user,
            token=comparison.token,
            choice=choice,
            criteria=criteria,
            reason=reason,
            seconds=20 + 0.3 * (len(a.split()) + len(b.split())),
        )
        done += 1
        made += 1
    return made, done


def _tally(campaign: Campaign) -> str:
    """Annotator votes by what they preferred, named as the lead sees the contestants."""
    wins: Counter[str] = Counter()
    votes = Vote.objects.filter(campaign=campaign, origin=VoteOrigin.ANNOTATOR).select_related(
        "comparison__left__contestant__model_version", "comparison__right__contestant__model_version"
    )
    for vote in votes:
        if vote.choice in ("a", "b"):
            side = vote.comparison.left if vote.choice == "a" else vote.comparison.right
            wins[f"{side.contestant.label} preferred"] += 1
        else:
            wins["tie" if vote.choice == "tie" else "both bad"] += 1
    return ", ".join(f"{n} {what}" for what, n in wins.most_common()) or "no votes"


def arena_step(
    project: Project, users: dict[str, Any], stdout: TextIO, state: dict[str, Any] | None = None
) -> str:
    campaign = (
        Campaign.objects.filter(project=project, name=CAMPAIGN_NAME, kind=CampaignKind.GENERATED)
        .order_by("pk")
        .first()
    )
    made = campaign is None
    if campaign is None:
        runs = demo_generation_runs(project, state)
        if len(runs) < 2:
            return "skipped: needs the generation runs of both v1 base and v2 LoRA"
        campaign = services.campaign_create(
            project=project,
            user=users["lead"],
            runs=runs,
            options=services.CampaignOptions(
                name=CAMPAIGN_NAME, instructions=INSTRUCTIONS, overlap=1, seed=0, criteria=CRITERIA
            ),
            annotators=[users[name] for name in ANNOTATORS],
        )
        stdout.write(f"    “{campaign.name}”: {campaign.comparisons.count()} comparisons, one vote each\n")
    voted_now, voted = simulate_votes(campaign, users[VOTER])
    tally = _tally(campaign)
    what = f"{'created' if made else 'found'} “{campaign.name}” ({campaign.comparisons.count()} comparisons)"
    return f"{what}; {VOTER} voted on {voted} ({voted_now} now; {tally}); the rest are annotator1's"


def _step(ctx: Any) -> str:
    return arena_step(ctx.project, ctx.users, ctx.stdout, ctx.state)


try:
    from evalhub.demo.loader import register_step
except ImportError:  # the demo app is optional; the functions above still work on their own
    pass
else:
    register_step("arena: v1 base vs v2 LoRA, annotator2 halfway", _step)
