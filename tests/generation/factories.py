"""Builders shared by the generation and metrics tests: eval sets, base models, model versions with adapters, and
runs with given outputs (so metric tests need no model at all)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

PRODUCTS = [
    ("water bottle", "home", "Keeps drinks cold for 24 hours and hot for 12."),
    ("coffee mug", "home", "A speckled glaze and a comfortable handle."),
    ("running shoes", "sport", "Breathable mesh and a cushioned sole."),
    ("yoga mat", "sport", "A grippy surface that stays put."),
    ("desk lamp", "office", "Warm, dimmable light for late-night reading."),
    ("notebook", "office", "Thick, ink-friendly paper in a lay-flat cover."),
]


def make_eval_version(project: Any, *, references: bool = True, rows: list[dict[str, Any]] | None = None,
                      name: str = "Eval set", repeat: int = 1) -> Any:
    """An eval split of the six products (`repeat` times: example i is product i % 6; audience alternates)."""
    from evalhub.datasets.models import Dataset, DatasetVersion, Example

    if rows is None:
        rows = []
        for i in range(len(PRODUCTS) * repeat):
            item, cat, ref = PRODUCTS[i % len(PRODUCTS)]
            suffix = f" (take {i // len(PRODUCTS) + 1})" if repeat > 1 else ""
            rows.append({"prompt": f"Describe the {item} in one sentence.{suffix}", "reference": ref if references else "",
                         "attributes": {"category": cat, "audience": "adults" if i % 2 else "kids"}})
    dataset, _ = Dataset.objects.get_or_create(project=project, name=name)
    number = (dataset.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = DatasetVersion(
        dataset=dataset, number=number, source="upload", split_name="eval",
        content_hash=hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest(), row_count=len(rows),
        attribute_names=sorted({k for r in rows for k in r.get("attributes", {})}),
        has_reference=any(r.get("reference") for r in rows),
    )
    version.save(force_insert=True)
    Example.objects.bulk_create(
        Example(version=version, index=i, prompt=r.get("prompt", ""), messages=r.get("messages"),
                reference=r.get("reference", ""), attributes=r.get("attributes", {}), external_id=r.get("id", ""))
        for i, r in enumerate(rows)
    )
    return version


def make_base(name: str, folder: Path) -> Any:
    from evalhub.tuning.models import BaseModel

    return BaseModel.objects.create(name=name, source_kind="folder", path_or_id=str(folder))


def make_version(project: Any, base: Any, *, number: int, adapter_key: str = "", name: str = "") -> Any:
    from evalhub.tuning.models import ModelVersion

    return ModelVersion.objects.create(
        project=project, number=number, name=name or f"version {number}", base_model=base, adapter_key=adapter_key
    )


def write_random_lora(base_folder: Path, dest: Path, *, seed: int = 0) -> Path:
    """A LoRA adapter on q/v with random A *and* B (PEFT's init_lora_weights=False), so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_folder), local_files_only=True)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(str(dest))
    return dest


def adapter_key_for(folder: Path) -> str:
    from evalhub.core.storage import artifact_key

    return artifact_key(folder)


def make_run_with_outputs(project: Any, version: Any, eval_version: Any, texts: list[str], **fields: Any) -> Any:
    """A succeeded generation run whose outputs are `texts`, one per example in index order."""
    from evalhub.generation.models import GenerationRun, Output, RunStatus

    run = GenerationRun.objects.create(
        project=project, model_version=version, eval_version=eval_version, status=RunStatus.SUCCEEDED,
        settings={"do_sample": False, "max_new_tokens": 16, "seed": 0, "num_samples": 1},
    )
    examples = list(eval_version.examples.order_by("index"))
    Output.objects.bulk_create(
        Output(run=run, example=e, text=t, output_tokens=len(t.split()), **fields) for e, t in zip(examples, texts)
    )
    return run


def make_metric_run(gen_run: Any, scores: dict[str, list[float | None]], **fields: Any) -> Any:
    """A succeeded metric run with the given per-output values (outputs in example order)."""
    from evalhub.generation.models import RunStatus
    from evalhub.metrics.models import MetricRun, MetricScore

    run = MetricRun.objects.create(
        project=gen_run.project, generation_run=gen_run, metrics=sorted(scores), status=RunStatus.SUCCEEDED, **fields
    )
    outputs = list(gen_run.outputs.order_by("example__index", "sample_index"))
    MetricScore.objects.bulk_create(
        MetricScore(metric_run=run, output=o, metric=name, value=v)
        for name, values in scores.items() for o, v in zip(outputs, values)
    )
    return run
