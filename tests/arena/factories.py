"""Builders for arena tests: an eval set answered by several model versions (generation runs with outputs)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import F

from evalhub.arena import services
from evalhub.arena.models import Assignment, Campaign, Comparison, Contestant, Vote
from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionSource
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.tuning.models import BaseModel, ModelVersion

CATEGORIES = ("kitchen", "garden", "toys")


@dataclass
class Eval:
    version: DatasetVersion
    examples: list[Example]
    versions: list[ModelVersion]
    runs: list[GenerationRun]


def eval_with_runs(
    project: Any, *, n_examples: int = 6, n_versions: int = 3, names: Sequence[str] | None = None,
    text: Any = None, first_number: int | None = None,
) -> Eval:
    """`n_examples` prompts with a category attribute, answered by `n_versions` model versions.

    `text(v, i)` gives version v's answer to example i (default: a sentence naming neither version nor run).
    """
    dataset = Dataset.objects.create(project=project, name=f"Eval set {Dataset.objects.count() + 1}")
    version = DatasetVersion(dataset=dataset, number=1, source=VersionSource.UPLOAD, content_hash="e" * 64,
                             row_count=n_examples, split_name="eval", attribute_names=["category"])
    version.save(force_insert=True)
    examples = [
        Example.objects.create(version=version, index=i, prompt=f"Describe product {i}: a sturdy oak shelf.",
                               attributes={"category": CATEGORIES[i % len(CATEGORIES)]})
        for i in range(n_examples)
    ]
    base, _ = BaseModel.objects.get_or_create(name="tiny-base", defaults={"source_kind": "folder", "path_or_id": "/x"})
    start = (first_number - 1 if first_number is not None else
             ModelVersion.objects.filter(project=project).order_by("-number").values_list("number", flat=True).first() or 0)
    names = list(names or [f"copywriter-{chr(ord('a') + v)}" for v in range(n_versions)])
    versions = [
        ModelVersion.objects.create(project=project, number=start + v + 1, name=names[v], base_model=base)
        for v in range(n_versions)
    ]
    runs = []
    for v, mv in enumerate(versions):
        run = GenerationRun.objects.create(project=project, model_version=mv, eval_version=version,
                                           status=RunStatus.SUCCEEDED)
        Output.objects.bulk_create([
            Output(run=run, example=ex, text=text(v, i) if text else f"Answer {'xyzw'[v % 4]}{i}: solid oak, oiled.")
            for i, ex in enumerate(examples)
        ])
        runs.append(run)
    return Eval(version=version, examples=examples, versions=versions, runs=runs)


def campaign(project: Any, ev: Eval, user: Any = None, **options: Any) -> Campaign:
    max_prompts = options.pop("max_prompts", None)
    annotators = options.pop("annotators", None)
    opts = services.CampaignOptions(name=options.pop("name", "Shelf copy"), seed=options.pop("seed", 7), **options)
    return services.campaign_create(project=project, user=user, runs=ev.runs, options=opts, max_prompts=max_prompts,
                                    annotators=annotators)


def simulate_campaign_votes(c: Any, truth: list[float], *, seed: int = 0, tie_rate: float = 0.0,
                            both_bad_rate: float = 0.0, users: list[Any], per_comparison: int = 1) -> None:
    """`per_comparison` votes per comparison from a Bradley-Terry world with known Elo ratings, stored as votes of
    distinct annotators (with their assignments and the comparisons' counters, as the services would)."""
    rng = random.Random(seed)
    index = dict(Contestant.objects.filter(campaign=c).values_list("pk", "index"))
    votes, assignments = [], []
    for comp in Comparison.objects.filter(campaign=c).select_related("left", "right"):
        li, ri = index[comp.left.contestant_id], index[comp.right.contestant_id]
        p_left = 1 / (1 + 10 ** ((truth[ri] - truth[li]) / 400))
        for user in rng.sample(users, per_comparison):
            u = rng.random()
            choice = "tie" if u < tie_rate else "both_bad" if u < tie_rate + both_bad_rate else (
                "a" if rng.random() < p_left else "b")
            a = Assignment(campaign=c, comparison=comp, annotator=user, status="voted", served_at=c.created_at,
                           expires_at=c.created_at)
            assignments.append(a)
            votes.append(Vote(campaign=c, comparison=comp, annotator=user, choice=choice,
                              seconds_spent=round(rng.uniform(6, 40), 1)))
    Assignment.objects.bulk_create(assignments)
    for v, a in zip(votes, assignments):
        v.assignment = a
    Vote.objects.bulk_create(votes)
    for comp_id, n in Counter(v.comparison_id for v in votes).items():
        Comparison.objects.filter(pk=comp_id).update(n_votes=F("n_votes") + n, n_taken=F("n_taken") + n)
