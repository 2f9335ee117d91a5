"""Helpers for the datasets app's Django tests: synthetic product rows, files in every format, table counts."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# 150 made-up words: random 10-word prompts drawn from them share few words, so only planted rows are duplicates.
WORDS = [a + b for a in ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pu")
         for b in ("ban", "dor", "fel", "gim", "hal", "jun", "kep", "lis", "mor", "nat", "pex", "qui", "rol", "sup",
                   "tav")]
CATEGORIES = ("kitchen", "garden", "office")


def make_rows(n: int, *, seed: int = 0, prefix: str = "p", categories: tuple[str, ...] = CATEGORIES
              ) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({
            "id": f"{prefix}{i:04d}",
            "prompt": "Describe: " + " ".join(rng.sample(WORDS, 10)),
            "reference": "A product that " + " ".join(rng.sample(WORDS, 12)) + ".",
            "category": categories[i % len(categories)],
            "tone": rng.choice(["warm", "plain"]),
        })
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_hf_zip(path: Path, rows: list[dict[str, Any]]) -> Path:
    import datasets

    folder = path.with_suffix("")
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    archive = shutil.make_archive(str(folder), "zip", root_dir=folder)
    return Path(archive)


WRITERS: dict[str, Callable[[Path, list[dict[str, Any]]], Path]] = {
    "jsonl": lambda d, rows: write_jsonl(d / "products.jsonl", rows),
    "csv": lambda d, rows: write_csv(d / "products.csv", rows),
    "parquet": lambda d, rows: write_parquet(d / "products.parquet", rows),
    "hf_folder": lambda d, rows: write_hf_zip(d / "products_hf.zip", rows),
}


def table_counts() -> dict[str, int]:
    """Rows in every table the datasets app writes (and job rows, which a quality report creates)."""
    from evalhub.datasets.models import (
        CurationItem,
        CurationQueue,
        Dataset,
        DatasetVersion,
        Example,
        QualityReport,
    )
    from evalhub.jobs.models import Job

    return {m.__name__: m.objects.count() for m in (Dataset, DatasetVersion, Example, QualityReport, CurationQueue,
                                                    CurationItem, Job)}


@pytest.fixture
def rows_file(tmp_path: Path) -> Callable[..., Path]:
    """rows_file(rows, fmt="jsonl") -> a file (or zipped HF folder) holding the rows."""

    def make(rows: list[dict[str, Any]], fmt: str = "jsonl") -> Path:
        folder = tmp_path / f"{fmt}-{random.random():.12f}"
        folder.mkdir()
        return WRITERS[fmt](folder, rows)

    return make


@pytest.fixture
def import_rows(world: Any, rows_file: Callable[..., Path]) -> Callable[..., Any]:
    """import_rows(rows, name="Products", **mapping) -> a DatasetVersion imported through the service; `mapping`
    overrides the default prompt/reference/id/category mapping."""
    from evalhub.datasets import services
    from evalhub.datasets.ingest import ColumnMapping

    def make(rows: list[dict[str, Any]], name: str = "Products", dataset: Any = None, **mapping: Any) -> Any:
        path = rows_file(rows)
        mapping = {"prompt": "prompt", "reference": "reference", "id": "id", "attributes": ["category"], **mapping}
        return services.dataset_import(
            project=world.project, user=world.lead, path=path, display_name=path.name,
            mapping=ColumnMapping(**mapping), dataset_name=None if dataset else name, dataset=dataset,
        )

    return make
