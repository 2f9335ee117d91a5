"""The demo step on the REAL demo model (SmolLM2-135M-Instruct from its GGUF): slow, run once."""

from __future__ import annotations

import io
from typing import Any

import pytest

from evalhub.tuning.models import ModelVersion, TrainingRun
from tests.tuning.conftest import make_version, product_rows

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_demo_step_makes_v1_base_and_v2_lora_and_is_idempotent(world: Any, settings: Any) -> None:
    import torch
    from peft import PeftModel

    from evalhub.tuning import services
    from evalhub.tuning.demo import demo_step
    from trainer.models import demo_model_source, load_base

    # Only the heartbeat thread would touch the test database from another thread (its in-memory copy is locked
    # by the test's transaction); with a long lease it has no reason to.
    settings.JOB_LEASE_SECONDS = 10**6
    world.project.task_instructions = "Write a short product description."
    world.project.save()
    make_version(world.project, product_rows(0, 24), split="train")
    make_version(world.project, product_rows(3, 6), split="validation")
    out = io.StringIO()
    # `make demo` trains 24 steps of long rows; 12 steps of short ones keep this test (real 135M model) shorter.
    summary = demo_step(world.project, world.lead, out, max_steps=12)
    assert "v1 base" in summary and "v2 LoRA" in summary, summary + out.getvalue()

    v1, v2 = ModelVersion.objects.filter(project=world.project).order_by("number")
    assert (str(v1), str(v2)) == ("v1 base", "v2 LoRA")
    assert v1.is_base_only and v1.base_model.architecture == "LlamaForCausalLM"
    assert v2.lineage["steps_done"] == 12 and v2.lineage["trainable_params"] > 0
    assert v2.lineage["best_val_loss"] < v2.training_run.loss_history[0]["train_loss"], "the demo run learned"

    # The adapter loads on the real base with PEFT and changes its outputs.
    base, tokenizer = load_base(demo_model_source(), services.model_cache_dir())
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Describe the desk lamp."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        before = base(**inputs).logits
        after = PeftModel.from_pretrained(base, str(services.adapter_dir(v2))).eval()(**inputs).logits
    assert not torch.allclose(before, after)

    again = demo_step(world.project, world.lead, io.StringIO())
    assert again.startswith("found"), again
    assert (
        ModelVersion.objects.filter(project=world.project).count() == 2 and TrainingRun.objects.count() == 1
    )
