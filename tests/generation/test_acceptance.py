"""Acceptance: the real demo model (SmolLM2-135M-Instruct), base and a LoRA trained for a few steps with the trainer
library, on a 6-example eval split, end to end: generation jobs -> outputs -> every metric -> the comparison page
shows per-metric deltas with intervals and p-values.

The adapter is trained on the eval prompts themselves, so that a difference is certain to show: this checks the
pipeline, it makes no claim about the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils.html import escape

from evalhub.core.storage import artifact_dir, artifact_key
from evalhub.generation import services as generation_services
from evalhub.generation.models import RunStatus
from evalhub.jobs.tasks import execute_job
from evalhub.metrics import services as metric_services
from tests.generation import factories

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def _train_lora(dest: Path, cache_dir: Path) -> Path:
    from trainer.config import TrainConfig
    from trainer.models import demo_model_source
    from trainer.train import train_sft

    rows = [
        {"messages": [{"role": "user", "content": f"Describe the {item} in one sentence."},
                      {"role": "assistant", "content": ref}]}
        for item, _, ref in factories.PRODUCTS
    ]
    train_file = dest.parent / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = TrainConfig.defaults_for(
        "lora", placement=["q_proj", "v_proj"], rank=8, alpha=16.0, learning_rate=2e-3, max_steps=12, batch_size=3,
        warmup_ratio=0.0, eval_every_steps=1000, save_every_steps=1000, max_seq_len=128, seed=0,
    )
    train_sft(config, base=demo_model_source(), train_file=train_file, val_file=None, output_dir=dest, cache_dir=cache_dir)
    return dest / "final"


def test_demo_model_base_vs_trained_adapter_end_to_end(world: Any, client_for: Any, settings: Any) -> None:
    from evalhub.tuning.models import BaseModel
    from trainer.models import demo_model_source

    source = demo_model_source()
    base = BaseModel.objects.create(name="SmolLM2-135M-Instruct", source_kind="gguf", path_or_id=source.path_or_id,
                                    gguf_file=source.gguf_file or "")
    adapter = _train_lora(artifact_dir("runs", "acceptance"), Path(settings.MODEL_CACHE_DIR))
    base_version = factories.make_version(world.project, base, number=1, name="base")
    lora_version = factories.make_version(world.project, base, number=2, name="lora", adapter_key=artifact_key(adapter))
    eval_version = factories.make_eval_version(world.project)

    metric_runs = []
    for version in (base_version, lora_version):
        run = generation_services.generation_run_create(
            project=world.project, model_version=version, eval_version=eval_version,
            settings={"do_sample": False, "max_new_tokens": 24, "seed": 0, "num_samples": 1, "batch_size": 6},
            created_by=world.lead,
        )
        execute_job(run.job_id)
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.outputs.count() == 6 and run.summary["tokens_per_second"] > 0

        metric_run = metric_services.metric_run_create(
            generation_run=run, metrics=metric_services.available_metrics(), created_by=world.lead
        )
        execute_job(metric_run.job_id)
        metric_run.refresh_from_db()
        assert metric_run.status == RunStatus.SUCCEEDED, metric_run.error
        assert metric_run.refused == {}
        metric_runs.append(metric_run)

    base_texts = set(metric_runs[0].generation_run.outputs.values_list("text", flat=True))
    lora_texts = set(metric_runs[1].generation_run.outputs.values_list("text", flat=True))
    assert base_texts != lora_texts

    response = client_for(world.lead).get(
        reverse("metrics:compare", kwargs={"project_id": world.project.pk}),
        {"a": metric_runs[0].pk, "b": metric_runs[1].pk, "slice": "category"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    sections = response.context["sections"]
    scored = {s.metric for s in metric_runs[0].scores.all()}
    assert {s["metric"] for s in sections} == scored
    assert scored == set(metric_services.available_metrics())  # ROUGE-1/2/L/Lsum, BLEU, chrF, BERTScore P/R/F1, EM, F1, length
    for section in sections:
        c = section["overall"]["row"].comparison
        assert c.n == 6
        assert c.low <= c.delta <= c.high  # an interval around every delta
        assert 0 < c.p_value <= 1
        assert {r["row"].slice_value for r in section["slices"]} == {"home", "sport", "office"}
        assert escape(section["overall"]["row"].verdict) in html  # six pairs: "too few pairs to tell (6 < 10)"
    assert "Δ (B − A)" in html and "95 % interval" in html
