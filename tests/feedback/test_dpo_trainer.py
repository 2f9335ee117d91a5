"""trainer.dpo on a tiny random Llama: learning, parent adapters, cancel and exact resume, refusals, and the implicit
reward checked against TRL's own log-probabilities."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from trainer.config import TrainConfig
from trainer.dpo import (
    PreferencePair,
    implicit_reward_accuracy,
    read_preference_jsonl,
    sequence_logps,
    train_dpo,
)
from trainer.errors import ConfigError, DataError
from trainer.models import ModelSource, load_base, make_tiny_model

PRODUCTS = ["bottle", "mug", "shoes", "scarf", "lamp", "backpack", "pan", "mat"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    return make_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def write_pairs(path: Path, n: int = 8) -> Path:
    with path.open("w") as fh:
        for i in range(n):
            name = PRODUCTS[i % len(PRODUCTS)]
            fh.write(
                json.dumps(
                    {
                        "prompt": [{"role": "user", "content": f"Describe the {name}."}],
                        "chosen": [{"role": "assistant", "content": f"Made of steel, the {name} lasts."}],
                        "rejected": [{"role": "assistant", "content": f"A {name}."}],
                        "source": "arena",
                    }
                )
                + "\n"
            )
    return path


def config(**overrides: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "placement": "attention",
        "rank": 4,
        "alpha": 8,
        "max_steps": 6,
        "batch_size": 4,
        "learning_rate": 5e-3,
        "eval_every_steps": 3,
        "save_every_steps": 3,
        "max_seq_len": 128,
        "warmup_ratio": 0.0,
    }
    values.update(overrides)
    return TrainConfig.defaults_for("lora", **values)


def run(tiny: ModelSource, tmp: Path, out: str, **kwargs: Any) -> Any:
    data = kwargs.pop("train_file", None) or write_pairs(tmp / "pairs.jsonl")
    return train_dpo(
        kwargs.pop("config", None) or config(),
        base=tiny,
        parent_adapter=kwargs.pop("parent_adapter", None),
        train_file=data,
        val_file=kwargs.pop("val_file", None),
        output_dir=tmp / out,
        cache_dir=tmp / "cache",
        **kwargs,
    )


def adapter_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_a_fresh_lora_learns_the_preferred_replies(tiny: ModelSource, tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    pairs_file = write_pairs(tmp_path / "pairs.jsonl")
    result = run(tiny, tmp_path, "out", train_file=pairs_file, val_file=pairs_file, progress=events.append)
    assert result.status == "completed"
    assert result.steps_done == 6 and result.total_steps == 6
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [e["step"] for e in events if e["event"] == "eval"] == [3, 6]
    assert events[-1]["event"] == "done"
    out = tmp_path / "out"
    for folder in ("best", "final"):
        assert (out / folder / "adapter_config.json").is_file()
        assert not (out / folder / "ref").exists(), "TRL's frozen reference copy is not part of the result"
    assert json.loads((out / "result.json").read_text())["config"]["objective"] == "dpo"

    from peft import PeftModel

    model, tokenizer = load_base(tiny, tmp_path / "cache")
    pairs = read_preference_jsonl(pairs_file)
    assert implicit_reward_accuracy(model, tokenizer, pairs) == 0.5  # no adapter: every reward is 0, a tie
    trained = PeftModel.from_pretrained(model, str(out / "final"))
    assert implicit_reward_accuracy(trained, tokenizer, pairs) >= 0.9


def test_continuing_a_parent_adapter_keeps_its_shape_and_changes_its_weights(
    tiny: ModelSource, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(tiny, tmp_path / "cache")
    torch.manual_seed(1)
    parent = get_peft_model(
        model,
        LoraConfig(
            r=2,
            lora_alpha=4,
            target_modules=["q_proj", "k_proj", "v_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        ),
    )
    parent.save_pretrained(tmp_path / "parent")
    events: list[dict[str, Any]] = []
    result = run(tiny, tmp_path, "out", parent_adapter=tmp_path / "parent", progress=events.append)
    assert result.status == "completed"
    new_config = json.loads((tmp_path / "out" / "final" / "adapter_config.json").read_text())
    assert new_config["r"] == 2 and sorted(new_config["target_modules"]) == ["k_proj", "q_proj", "v_proj"]
    before, after = adapter_weights(tmp_path / "parent"), adapter_weights(tmp_path / "out" / "final")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert any("continuing the parent adapter" in e.get("message", "") for e in events)


def test_cancelled_run_resumes_from_its_checkpoint_to_the_same_weights(
    tiny: ModelSource, tmp_path: Path
) -> None:
    run(tiny, tmp_path, "straight")
    seen: list[dict[str, Any]] = []
    cancelled = run(
        tiny,
        tmp_path,
        "cut",
        progress=seen.append,
        should_stop=lambda: sum(e["event"] == "step" for e in seen) >= 2,
    )
    assert cancelled.status == "cancelled" and cancelled.steps_done == 2
    assert not (tmp_path / "cut" / "final").exists()
    events: list[dict[str, Any]] = []
    resumed = run(tiny, tmp_path, "cut", progress=events.append)
    assert resumed.status == "completed" and resumed.resumed_from_step == 2
    # The chart is rebuilt from the checkpoint, then training continues where it stopped.
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    assert [e["replayed"] for e in events if e["event"] == "step"] == [True, True, False, False, False, False]
    a, b = adapter_weights(tmp_path / "straight" / "final"), adapter_weights(tmp_path / "cut" / "final")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_checkpoint_of_other_data_is_not_resumed(tiny: ModelSource, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    run(tiny, tmp_path, "out", progress=seen.append, should_stop=lambda: bool(seen))
    other = write_pairs(tmp_path / "other.jsonl", n=6)
    with pytest.raises(ConfigError) as info:
        run(tiny, tmp_path, "out", train_file=other)
    assert info.value.field == "output_dir" and "train_sha256 differs" in info.value.message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"prompt": "p", "chosen": "a"}', 'needs "prompt", "chosen" and "rejected"'),
        ('{"prompt": "p", "chosen": "same", "rejected": "same"}', "the same text"),
        (
            '{"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"}',
            "one assistant message",
        ),
        ('{"prompt": [], "chosen": "a", "rejected": "b"}', "non-empty list"),
        ("not json", "invalid JSON"),
    ],
)
def test_unusable_preference_rows_are_refused_naming_the_line(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "chosen": "a", "rejected": "b"}\n' + line + "\n")
    with pytest.raises(DataError) as info:
        read_preference_jsonl(path)
    assert info.value.line == 2 and words in str(info.value)


@pytest.mark.parametrize(
    ("overrides", "beta", "field"),
    [({"method": "ia3"}, 0.1, "method"), ({}, 0.0, "beta"), ({"rank": 0}, 0.1, "rank")],
)
def test_configs_that_cannot_work_are_refused_before_loading(
    tiny: ModelSource, tmp_path: Path, overrides: dict[str, Any], beta: float, field: str
) -> None:
    cfg = TrainConfig.from_dict({**config().to_dict(), **overrides})
    if overrides.get("method") == "ia3":
        cfg = TrainConfig.defaults_for("ia3", max_steps=2)
    with pytest.raises(ConfigError) as info:
        run(tiny, tmp_path, "out", config=cfg, beta=beta)
    assert info.value.field == field
    assert not (tmp_path / "out").exists()


def test_sequence_log_probabilities_match_trl(tiny: ModelSource, tmp_path: Path) -> None:
    """TRL's evaluation of a fresh (zero-initialised) LoRA reports the base model's summed log-probabilities of the
    chosen and rejected replies; ours must agree on the same pairs."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    pairs = read_preference_jsonl(write_pairs(tmp_path / "pairs.jsonl"))
    rows = [
        {
            "prompt": p.prompt,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
    model, tokenizer = load_base(tiny, tmp_path / "cache")
    ours_chosen = sequence_logps(model, tokenizer, [(p.prompt, p.chosen) for p in pairs])
    ours_rejected = sequence_logps(model, tokenizer, [(p.prompt, p.rejected) for p in pairs])
    args = DPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_eval_batch_size=len(rows),
        report_to=[],
        use_cpu=True,
        gradient_checkpointing=False,
        max_length=128,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], task_type="CAUSAL_LM"),
    )
    metrics = trainer.evaluate()
    assert metrics["eval_logps/chosen"] == pytest.approx(sum(ours_chosen) / len(pairs), rel=1e-4)
    assert metrics["eval_logps/rejected"] == pytest.approx(sum(ours_rejected) / len(pairs), rel=1e-4)


def test_accuracy_counts_ties_as_half_and_needs_pairs(tiny: ModelSource, tmp_path: Path) -> None:
    model, tokenizer = load_base(tiny, tmp_path / "cache")
    pair = PreferencePair(prompt=[{"role": "user", "content": "x"}], chosen="a", rejected="b")
    assert implicit_reward_accuracy(model, tokenizer, [pair]) == 0.5
    with pytest.raises(ValueError):
        implicit_reward_accuracy(model, tokenizer, [])
