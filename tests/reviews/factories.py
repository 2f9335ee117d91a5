"""Builders for review tests: generation runs of two model versions over a small eval set, a rubric, a campaign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Max

from evalhub.datasets.models import Dataset, DatasetVersion, Example, VersionSource
from evalhub.generation.models import GenerationRun, Output, RunStatus
from evalhub.reviews import services
from evalhub.reviews.models import Campaign, Rubric
from evalhub.tuning.models import BaseModel, ModelVersion

CATEGORIES = ["shoes", "kitchen", "garden"]


@dataclass
class Runs:
    versions: list[ModelVersion]
    runs: list[GenerationRun]
    examples: list[Example]
    outputs: list[Output]


def make_runs(
    project: Any,
    *,
    n_examples: int = 6,
    n_versions: int = 2,
    texts: dict[tuple[int, int], str] | None = None,
    version_names: list[str] | None = None,
    ids: dict[str, int] | None = None,
) -> Runs:
    """`n_versions` model versions, each with a succeeded run over the same `n_examples` examples.

    `ids` may force primary keys (model_version, run, output start) so tests can look for them in pages.
    """
    ids = ids or {}
    n_datasets = Dataset.objects.filter(project=project).count()
    dataset = Dataset.objects.create(project=project, name=f"review-eval-{n_datasets + 1}")
    version = DatasetVersion.objects.create(
        dataset=dataset, number=1, source=VersionSource.UPLOAD, content_hash="x" * 64, row_count=n_examples,
        attribute_names=["category"],
    )
    examples = [
        Example.objects.create(
            version=version, index=i, prompt=f"Describe product {i}: a {CATEGORIES[i % 3]} item.",
            reference=f"Reference copy {i}.", attributes={"category": CATEGORIES[i % 3]},
        )
        for i in range(n_examples)
    ]
    base, _ = BaseModel.objects.get_or_create(name="tiny-base", defaults={"source_kind": "gguf", "path_or_id": "/x"})
    versions, runs, outputs = [], [], []
    names = version_names or [f"adapter-{k}" for k in range(n_versions)]
    next_output = ids.get("output")
    # Other apps' fixtures may already have model versions in this project: continue their numbering.
    first_number = (ModelVersion.objects.filter(project=project).aggregate(m=Max("number"))["m"] or 0) + 1
    for k in range(n_versions):
        extra = {"pk": ids["model_version"] + k} if "model_version" in ids else {}
        mv = ModelVersion.objects.create(project=project, number=ids.get("number", first_number) + k, name=names[k], base_model=base, **extra)
        run_extra = {"pk": ids["run"] + k} if "run" in ids else {}
        run = GenerationRun.objects.create(
            project=project, model_version=mv, eval_version=version, status=RunStatus.SUCCEEDED, **run_extra
        )
        versions.append(mv)
        runs.append(run)
        for i, ex in enumerate(examples):
            text = (texts or {}).get((k, i), f"Output of model {k} for product {i}. Comfortable and durable.")
            o_extra = {}
            if next_output is not None:
                o_extra = {"pk": next_output}
                next_output += 1
            outputs.append(Output.objects.create(run=run, example=ex, text=text, **o_extra))
    return Runs(versions, runs, examples, outputs)


SIMPLE_CRITERIA: list[dict[str, Any]] = [
    {"name": "Accuracy", "scale": "likert", "anchors": ["Wrong", "Poor", "Fair", "Good", "Exact"]},
    {"name": "Safe", "scale": "binary", "anchors": ["Safe", "Unsafe"]},
    {"name": "Tone", "scale": "categorical", "options": ["On brand", "Too formal", "Pushy"], "required": False},
    {"name": "Issues", "scale": "multilabel", "options": ["Typos", "Invented facts", "Too long"], "required": False},
    {"name": "Notes", "scale": "text", "required": False},
]


def make_rubric(project: Any, user: Any, criteria: list[dict[str, Any]] | None = None, name: str = "Copy quality") -> Rubric:
    return services.rubric_create(project=project, name=name, criteria=criteria or SIMPLE_CRITERIA, created_by=user)


def make_campaign(project: Any, user: Any, runs: Runs, *, overlap: int = 2, rubric: Rubric | None = None, **kw: Any) -> Campaign:
    rubric = rubric or make_rubric(project, user, name=f"Copy quality {Rubric.objects.filter(project=project).count() + 1}")
    return services.campaign_create(
        project=project, name=kw.pop("name", "Round 1"), rubric_version=services.rubric_latest_version(rubric),
        sample=services.SampleSpec(run_ids=tuple(r.pk for r in runs.runs), **kw.pop("sample", {})),
        overlap=overlap, created_by=user, **kw,
    )
