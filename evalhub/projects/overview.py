"""The project home: one card per stage of the loop with what exists so far and where to go next."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse

from evalhub.projects.access import Access


@dataclass
class Stage:
    key: str
    title: str
    blurb: str
    url: str | None
    count: int | None = None
    lead_only: bool = False


STAGES: list[tuple[str, str, str, str, bool]] = [
    ("data", "Data", "Import, inspect and curate dataset versions.", "datasets:list", False),
    ("tuning", "Fine-tuning", "Train PEFT adapters and sweeps; compare runs.", "tuning:list", True),
    ("generation", "Generation & metrics", "Generate on held-out sets; ROUGE, BLEU, chrF, BERTScore.", "generation:list", True),
    ("reviews", "Reviews", "Blind rubric ratings and corrections by people.", "reviews:list", False),
    ("arena", "Arena", "Blind A/B votes and a leaderboard with intervals.", "arena:list", False),
    ("feedback", "Feedback", "Turn annotations into SFT/DPO data and retrain.", "feedback:list", True),
]


def stage_overview(access: Access) -> list[Stage]:
    stages: list[Stage] = []
    for key, title, blurb, url_name, lead_only in STAGES:
        if lead_only and not access.is_lead:
            continue
        try:
            url = reverse(url_name, kwargs={"project_id": access.project.pk})
        except NoReverseMatch:
            url = None
        stages.append(Stage(key=key, title=title, blurb=blurb, url=url, lead_only=lead_only))
    return stages
