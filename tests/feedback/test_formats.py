"""Exports load with `datasets.load_dataset("json")` and train a step with TRL's SFT and DPO trainers as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalhub.feedback.formats import (
    jsonl_to_hf_folder,
    jsonl_to_parquet,
    preference_record,
    sft_record,
    write_jsonl,
)

PROMPTS = [
    "Write a product description.\nProduct: Tallis mixing bowls\nMaterial: stainless steel",
    "Write a product description.\nProduct: Wren T-shirt\nMaterial: organic cotton",
    "Write a product description.\nProduct: Pebblebox speaker\nMaterial: recycled aluminium",
    "Write a product description.\nProduct: Fjell flask\nMaterial: borosilicate glass",
]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from trainer.models import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def test_preference_record_refuses_identical_texts() -> None:
    with pytest.raises(ValueError, match="different chosen and rejected"):
        preference_record(_user("p"), "same", "same")


def test_parquet_and_hf_folder_hold_the_same_rows(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from datasets import load_from_disk

    path = tmp_path / "sft.jsonl"
    n = write_jsonl((sft_record(_user(p), f"Made of {p.split(': ')[-1]}.", source="correction") for p in PROMPTS), path)
    assert n == 4
    assert jsonl_to_parquet(path, tmp_path / "sft.parquet", batch_rows=3) == 4
    table = pq.read_table(tmp_path / "sft.parquet").to_pylist()
    assert [r["messages"][-1]["content"] for r in table] == [f"Made of {p.split(': ')[-1]}." for p in PROMPTS]
    assert jsonl_to_hf_folder(path, tmp_path / "hf") == 4
    assert load_from_disk(str(tmp_path / "hf"))[0]["messages"][0]["role"] == "user"


@pytest.mark.slow
def test_sft_export_trains_a_step_with_trl_sft_trainer(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    path = tmp_path / "sft.jsonl"
    write_jsonl((sft_record(_user(p), "A sturdy, honest product.") for p in PROMPTS), path)
    dataset = load_dataset("json", data_files=str(path), split="train")
    model = AutoModelForCausalLM.from_pretrained(tiny.path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(tiny.path_or_id)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    assert result.training_loss > 0


@pytest.mark.slow
def test_preference_export_trains_a_step_with_trl_dpo_trainer(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    path = tmp_path / "dpo.jsonl"
    write_jsonl(
        (preference_record(_user(p), f"Crafted from {p.split(': ')[-1]}.", "A product.", source="arena") for p in PROMPTS),
        path,
    )
    dataset = load_dataset("json", data_files=str(path), split="train")
    model = AutoModelForCausalLM.from_pretrained(tiny.path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(tiny.path_or_id)
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    result = trainer.train()
    assert result.global_step == 1


# --- the same, on what the export builders write from real annotations ---------------------------------------------


def _built_export(world, kind: str, sources: tuple[str, ...]):  # type: ignore[no-untyped-def]
    from evalhub.core.storage import artifact_from_key
    from evalhub.feedback.builders import ExportOptions
    from evalhub.feedback.services import export_create
    from tests.feedback import factories

    s = factories.scenario(world)
    factories.review(s, corrections=True)
    factories.arena(s)
    e = export_create(project=s.project, user=s.lead, options=ExportOptions(kind=kind, sources=sources, min_score=0.75))
    return artifact_from_key(e.files["jsonl"]), e


@pytest.mark.slow
@pytest.mark.django_db
def test_built_sft_export_trains_a_step_with_trl_sft_trainer(world, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    path, e = _built_export(world, "sft", ("rated", "corrections"))
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert len(dataset) == e.records and set(e.counts["kept"]) == {"rated", "corrections"}
    model = AutoModelForCausalLM.from_pretrained(tiny.path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(tiny.path_or_id)
    args = SFTConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1)
    result = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer).train()
    assert result.global_step == 1 and result.training_loss > 0


@pytest.mark.slow
@pytest.mark.django_db
def test_built_preference_export_trains_a_step_with_trl_dpo_trainer(world, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    path, e = _built_export(world, "dpo", ("arena", "rubric_pairs"))
    dataset = load_dataset("json", data_files=str(path), split="train")
    assert len(dataset) == e.records == e.counts["kept"]["arena"]
    # The rubric gives the same pairs the votes did: kept once.
    assert e.counts["dropped"]["rubric_pairs"]["duplicate"] == e.records
    model = AutoModelForCausalLM.from_pretrained(tiny.path_or_id)
    tokenizer = AutoTokenizer.from_pretrained(tiny.path_or_id)
    args = DPOConfig(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    assert trainer.train().global_step == 1
