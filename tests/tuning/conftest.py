"""Fixtures for the tuning app: a tiny random Llama registered as a base model, dataset versions to train on."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests import model_fixtures

PRODUCTS = [
    ("stainless steel water bottle", "Keeps drinks cold for 24 hours and hot for 12, with a leak-proof lid."),
    ("ceramic coffee mug", "A speckled glaze, a comfortable handle and room for a generous morning pour."),
    ("running shoes", "Breathable mesh and a cushioned sole make every kilometre feel lighter."),
    ("wool scarf", "Soft merino wool that keeps you warm without the itch."),
    ("desk lamp", "Warm, dimmable light and a flexible arm for late-night reading."),
    ("backpack", "Padded straps, a laptop sleeve and water-resistant fabric for daily commutes."),
    ("cast iron pan", "Pre-seasoned and oven safe, it sears steak and bakes cornbread alike."),
    ("yoga mat", "A grippy, cushioned surface that stays put through every pose."),
    ("bluetooth speaker", "Room-filling sound in a splash-proof body with a 12-hour battery."),
    ("linen shirt", "Breathable linen with a relaxed fit, made for warm afternoons."),
    ("notebook", "Thick, ink-friendly paper bound in a lay-flat cover."),
    ("chef knife", "A razor-sharp steel blade balanced for precise, effortless cuts."),
]

# Defined once in tests/model_fixtures.py; assigned here so they apply to this package (autouse included).
_one_torch_thread = model_fixtures._one_torch_thread
tiny_model_dir = model_fixtures.tiny_model_dir
tiny_base = model_fixtures.tiny_base


# Small enough that a run takes about a second on one CPU thread, with checkpoints and evaluations on the way.
TINY_HP: dict[str, Any] = {
    "max_steps": 6,
    "batch_size": 4,
    "eval_every_steps": 3,
    "save_every_steps": 3,
    "rank": 4,
    "alpha": 8,
    "max_seq_len": 128,
}


def make_version(
    project: Any, rows: list[dict[str, Any]], *, dataset: str = "Product copy", split: str = ""
) -> Any:
    """A dataset version with these rows (dicts of Example fields), numbered after the dataset's last one."""
    from evalhub.datasets.models import Dataset, DatasetVersion, Example

    ds, _ = Dataset.objects.get_or_create(project=project, name=dataset)
    number = (ds.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    version = DatasetVersion.objects.create(
        dataset=ds,
        number=number,
        source="upload",
        split_name=split,
        content_hash=digest,
        row_count=len(rows),
        has_reference=any(r.get("reference") for r in rows),
    )
    Example.objects.bulk_create(
        Example(
            version=version,
            index=i,
            prompt=r.get("prompt", ""),
            messages=r.get("messages"),
            reference=r.get("reference", ""),
        )
        for i, r in enumerate(rows)
    )
    return version


def product_rows(start: int = 0, count: int = 12) -> list[dict[str, str]]:
    picked = [PRODUCTS[(start + i) % len(PRODUCTS)] for i in range(count)]
    return [{"prompt": f"Describe the {name}.", "reference": reply} for name, reply in picked]


@pytest.fixture
def versions(world: Any) -> tuple[Any, Any]:
    train = make_version(world.project, product_rows(0, 12), split="train")
    val = make_version(world.project, product_rows(8, 4), split="validation")
    return train, val
