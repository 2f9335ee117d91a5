"""A project with annotations, made through the real services: a pool of prompts (not held out) and an eval split,
two model versions whose outputs differ in whether they name the product's material, rubric ratings (with
corrections, adjudications and gold items when asked) and arena votes cast by simulated annotators."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from evalhub.datasets.models import Dataset, DatasetVersion, Example
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.projects.models import Membership, Role
from evalhub.tuning.models import BaseModel, ModelVersion

PRODUCTS = [
    ("Tallis mixing bowl", "stainless steel"),
    ("Wren T-shirt", "organic cotton"),
    ("Pebblebox speaker", "recycled aluminium"),
    ("Fjell flask", "borosilicate glass"),
    ("Oslo stool", "solid oak"),
    ("Kettle No. 5", "enamelled cast iron"),
]
EVAL_PRODUCTS = [("Marlowe hairbrush", "boar bristle"), ("Sandbar sun hat", "paper straw")]
CRITERIA = [
    {"name": "Quality", "scale": "likert", "anchors": ["Unusable", "Poor", "Fair", "Good", "Publish"]},
    {"name": "Names material", "scale": "binary", "anchors": ["Yes", "No"]},
]


def brief(name: str, material: str) -> str:
    return (
        f"Write a product description (60-90 words).\nProduct: {name}\nMaterial: {material}\nTone: practical"
    )


def good_text(name: str, material: str) -> str:
    return f"The {name} is made of {material}, built for daily use and easy to care for."


def plain_text(name: str, material: str) -> str:
    return f"The {name} is a handy thing for your home, simple and useful every day."


def version_of(project: Any, dataset: str, rows: list[dict[str, Any]], split: str = "") -> DatasetVersion:
    ds, _ = Dataset.objects.get_or_create(project=project, name=dataset)
    version = DatasetVersion(
        dataset=ds,
        number=ds.versions.count() + 1,
        source="upload",
        split_name=split,
        content_hash=hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest(),
        row_count=len(rows),
        attribute_names=["material"],
        has_reference=any(r.get("reference") for r in rows),
    )
    version.save(force_insert=True)
    Example.objects.bulk_create(
        Example(
            version=version,
            index=i,
            prompt=r["prompt"],
            reference=r.get("reference", ""),
            attributes=r.get("attributes", {}),
        )
        for i, r in enumerate(rows)
    )
    return version


@dataclass
class Scenario:
    project: Any
    lead: Any
    annotators: list[Any]
    pool: DatasetVersion
    eval: DatasetVersion
    versions: list[ModelVersion]
    runs: list[GenerationRun]
    outputs: dict[tuple[int, int], Output] = field(default_factory=dict)  # (version index, example index)
    rubric: Any = None
    review: Any = None
    arena: Any = None


def scenario(
    world: Any,
    *,
    products: list[tuple[str, str]] | None = None,
    n_annotators: int = 3,
    extra_pool_prompts: list[str] | None = None,
    base: BaseModel | None = None,
) -> Scenario:
    """Two model versions answered every pool prompt: version 0 names the material, version 1 does not. They are
    base-only versions of `base` (a real model when the test generates or trains, else a placeholder)."""
    products = products or PRODUCTS
    users = [world.annotator]
    for i in range(n_annotators - 1):
        u = get_user_model().objects.create_user(f"rater{i}", password="x")
        Membership.objects.create(project=world.project, user=u, role=Role.ANNOTATOR)
        users.append(u)
    rows = [
        {"prompt": brief(n, m), "reference": good_text(n, m), "attributes": {"material": m}}
        for n, m in products
    ]
    rows += [{"prompt": p, "attributes": {"material": "n/a"}} for p in extra_pool_prompts or []]
    pool = version_of(world.project, "Feedback pool", rows)
    ev = version_of(
        world.project,
        "Products",
        [
            {"prompt": brief(n, m), "reference": good_text(n, m), "attributes": {"material": m}}
            for n, m in EVAL_PRODUCTS
        ],
        split="eval",
    )
    if base is None:
        base, _ = BaseModel.objects.get_or_create(
            name="feedback-base", defaults={"source_kind": "folder", "path_or_id": "/x"}
        )
    start = ModelVersion.objects.filter(project=world.project).count()
    versions, runs = [], []
    s = Scenario(world.project, world.lead, users, pool, ev, versions, runs)
    examples = list(pool.examples.order_by("index"))
    for k in range(2):
        mv = ModelVersion.objects.create(
            project=world.project, number=start + k + 1, name=f"writer-{k}", base_model=base
        )
        run = GenerationRun.objects.create(
            project=world.project, model_version=mv, eval_version=pool, status=RunStatus.SUCCEEDED
        )
        for i, ex in enumerate(examples):
            name, material = products[i] if i < len(products) else (f"item {i}", "n/a")
            text = good_text(name, material) if k == 0 else plain_text(name, material)
            s.outputs[(k, i)] = Output.objects.create(run=run, example=ex, text=text)
        versions.append(mv)
        runs.append(run)
    return s


def names_material(prompt: str, text: str) -> bool:
    material = prompt.split("Material: ")[1].split("\n")[0] if "Material: " in prompt else ""
    return bool(material) and material in text


Rater = Callable[[Any, str, str], dict[str, Any]]


def material_rater(user: Any, prompt: str, text: str) -> dict[str, Any]:
    """A simulated annotator who cares about one thing: is the material named?"""
    named = names_material(prompt, text)
    return {"Quality": 5 if named else 2, "Names material": 1 if named else 0}


def review(
    s: Scenario,
    *,
    overlap: int = 2,
    rater: Rater = material_rater,
    corrections: bool = False,
    gold: dict[int, dict[str, Any]] | None = None,
) -> Any:
    """A rubric campaign over both runs, rated by every annotator until nothing is left (overlap k).

    `gold`: example index -> expected values, for version 0's output of that example (rated by everyone).
    With `corrections`, annotators rewrite outputs that do not name the material."""
    from evalhub.reviews import services

    s.rubric = services.rubric_create(project=s.project, name="Copy", criteria=CRITERIA, created_by=s.lead)
    campaign = services.campaign_create(
        project=s.project,
        name="Copy round",
        rubric_version=services.rubric_latest_version(s.rubric),
        sample=services.SampleSpec(run_ids=tuple(r.pk for r in s.runs)),
        overlap=overlap,
        created_by=s.lead,
    )
    for index, expected in (gold or {}).items():
        item = campaign.items.get(output=s.outputs[(0, index)])
        services.campaign_set_gold(campaign=campaign, item=item, expected=expected)
    for user in s.annotators:
        while (a := services.assignment_next(campaign=campaign, user=user)) is not None:
            output = a.item.output
            prompt = output.example.prompt
            corrected = None
            if corrections and not names_material(prompt, output.text):
                name, material = (
                    prompt.split("Product: ")[1].split("\n")[0],
                    prompt.split("Material: ")[1].split("\n")[0],
                )
                corrected = good_text(name, material) + f" (edited by {user.username})"
            services.rating_submit(
                campaign=campaign,
                user=user,
                assignment_token=a.token,
                values=rater(user, prompt, output.text),
                corrected_text=corrected,
                submission_token=f"{user.pk}-{a.pk}",
            )
    s.review = campaign
    return campaign


Voter = Callable[[Any, str, str, str], str]


def material_voter(user: Any, prompt: str, a: str, b: str) -> str:
    na, nb = names_material(prompt, a), names_material(prompt, b)
    return "a" if na and not nb else "b" if nb and not na else "tie"


def arena(
    s: Scenario, *, overlap: int = 1, voter: Voter = material_voter, voters: list[Any] | None = None
) -> Any:
    """An arena campaign over both runs, judged by the annotators until nothing is left."""
    from evalhub.arena import services
    from evalhub.arena.models import Comparison

    campaign = services.campaign_create(
        project=s.project,
        user=s.lead,
        runs=s.runs,
        options=services.CampaignOptions(
            name="Material duel", overlap=overlap, seed=3, stop_when_decided=False
        ),
    )
    for user in voters or s.annotators:
        while (a := services.comparison_next(campaign=campaign, user=user)) is not None:
            comparison = Comparison.objects.select_related(
                "prompt__example", "left__output", "right__output"
            ).get(pk=a.comparison_id)
            choice = voter(
                user,
                comparison.prompt.prompt_text,
                comparison.left.response_text,
                comparison.right.response_text,
            )
            services.vote_submit(campaign=campaign, user=user, token=comparison.token, choice=choice)
    s.arena = campaign
    return campaign
