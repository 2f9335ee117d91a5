from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.conftest import write_chat_jsonl
from trainer.config import TrainConfig
from trainer.errors import ConfigError, TrainerError, TrainingFailed
from trainer.models import ModelSource, load_base
from trainer.train import latest_checkpoint, load_trained, merge_adapter, train_sft

PROMPT = [
    {"role": "system", "content": "You write short product descriptions."},
    {"role": "user", "content": "Describe the wool scarf."},
]


def _run(config: TrainConfig, source: ModelSource, files: tuple[Path, Path | None], out: Path, **kw: Any):
    train, val = files
    return train_sft(
        config, base=source, train_file=train, val_file=val, output_dir=out, cache_dir=out.parent, **kw
    )


def _adapter_tensors(directory: Path) -> dict[str, torch.Tensor]:
    name = (
        "adapter_model.safetensors"
        if (directory / "adapter_model.safetensors").exists()
        else "model.safetensors"
    )
    return load_file(str(directory / name))


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "prefix", "prompt", "full"])
def test_every_method_trains_saves_and_generates(
    method: str, tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    events: list[dict] = []
    config = TrainConfig.defaults_for(method, max_steps=2, batch_size=4, eval_every_steps=1)
    result = _run(config, tiny_source, chat_files, tmp_path / "out", progress=events.append)

    assert result.status == "completed" and result.steps_done == 2
    assert 0 < result.trainable_params <= result.total_params
    assert (result.trainable_share == 1.0) == (method == "full")
    assert result.best_val_loss is not None and result.tokens_per_s > 0
    assert [e["event"] for e in events].count("step") == 2 and events[-1]["event"] == "done"
    json.dumps(result.to_dict())  # lineage must be JSON-serialisable

    best = Path(result.best_dir)
    if method == "full":
        assert (best / "config.json").exists()
    else:
        from peft import PeftModel

        base, _ = load_base(tiny_source, tmp_path)
        PeftModel.from_pretrained(base, str(best))  # PEFT's own format
    model, tok = load_trained(tiny_source, best, tmp_path)
    inputs = tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_model_learns_to_stop_with_eos(tiny_source: ModelSource, tmp_path: Path) -> None:
    train = tmp_path / "one.jsonl"
    train.write_text(
        json.dumps({"messages": PROMPT + [{"role": "assistant", "content": "Soft and warm."}]}) + "\n"
    )
    config = TrainConfig.defaults_for(
        "full", max_steps=40, learning_rate=1e-2, batch_size=1, warmup_ratio=0.0
    )
    result = _run(config, tiny_source, (train, None), tmp_path / "out")
    model, tok = load_trained(tiny_source, Path(result.final_dir), tmp_path)
    inputs = tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**inputs, max_new_tokens=30, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    # It says the reply and then stops: the last generated token is EOS, well before the token limit.
    assert tok.decode(out) == "Soft and warm.<|im_end|>"


def test_truncation_is_reported_in_result_and_progress(tiny_source: ModelSource, tmp_path: Path) -> None:
    train = write_chat_jsonl(tmp_path / "long.jsonl", long_reply_words=120)
    events: list[dict] = []
    config = TrainConfig.defaults_for("lora", max_steps=1, max_seq_len=96)
    result = _run(config, tiny_source, (train, None), tmp_path / "out", progress=events.append)
    assert result.truncated_examples == 12
    assert any(e["event"] == "log" and e.get("truncated") == 12 for e in events)


def test_same_seed_same_loss_curve_other_seed_differs(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    # dropout > 0 and random LoRA init: both depend on the seed being set before the adapter is created.
    config = TrainConfig.defaults_for("lora", max_steps=4, batch_size=3, dropout=0.1, learning_rate=5e-3)
    torch.manual_seed(123)  # unrelated RNG use before the run must not matter
    a = _run(config, tiny_source, chat_files, tmp_path / "a")
    torch.rand(10)
    b = _run(config, tiny_source, chat_files, tmp_path / "b")
    c = _run(TrainConfig.from_dict({**config.to_dict(), "seed": 7}), tiny_source, chat_files, tmp_path / "c")
    assert [h["train_loss"] for h in a.loss_history] == [h["train_loss"] for h in b.loss_history]
    assert a.val_history == b.val_history
    assert [h["train_loss"] for h in a.loss_history] != [h["train_loss"] for h in c.loss_history]


def _assert_same_adapter(a: Path, b: Path) -> None:
    ta, tb = _adapter_tensors(a), _adapter_tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        torch.testing.assert_close(ta[key], tb[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_cancel_then_resume_ends_where_an_uninterrupted_run_ends(
    method: str, tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = TrainConfig.defaults_for(
        method, max_steps=6, batch_size=3, grad_accum=2, dropout=0.1, eval_every_steps=2, save_every_steps=4
    )
    straight = _run(config, tiny_source, chat_files, tmp_path / "straight")

    steps_seen: list[int] = []

    def track(event: dict) -> None:
        if event["event"] == "step":
            steps_seen.append(event["step"])

    stopped = _run(
        config,
        tiny_source,
        chat_files,
        tmp_path / "resumed",
        progress=track,
        should_stop=lambda: len(steps_seen) >= 3,
    )
    assert stopped.status == "cancelled" and stopped.steps_done == 3
    assert latest_checkpoint(tmp_path / "resumed").name == "step-3"

    resumed = _run(config, tiny_source, chat_files, tmp_path / "resumed")
    assert resumed.status == "completed" and resumed.resumed_from_step == 3
    assert resumed.loss_history == straight.loss_history
    assert resumed.val_history == straight.val_history
    _assert_same_adapter(Path(straight.final_dir), Path(resumed.final_dir))
    _assert_same_adapter(Path(straight.best_dir), Path(resumed.best_dir))


def test_crash_resumes_from_the_last_periodic_checkpoint(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = TrainConfig.defaults_for(
        "lora", max_steps=7, batch_size=4, dropout=0.1, save_every_steps=2, eval_every_steps=3
    )
    straight = _run(config, tiny_source, chat_files, tmp_path / "straight")

    def crash_at_5(event: dict) -> None:
        if event["event"] == "step" and event["step"] == 5:
            raise RuntimeError("worker died")

    with pytest.raises(RuntimeError, match="worker died"):
        _run(config, tiny_source, chat_files, tmp_path / "crashed", progress=crash_at_5)
    assert latest_checkpoint(tmp_path / "crashed").name == "step-4"
    # A kill in the middle of writing step 6 leaves a partial temp dir; it must be ignored and cleaned up.
    partial = tmp_path / "crashed" / "checkpoints" / ".tmp-step-6-999"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"half a file")
    resumed = _run(config, tiny_source, chat_files, tmp_path / "crashed")
    assert resumed.resumed_from_step == 4 and not partial.exists()
    assert resumed.loss_history == straight.loss_history
    _assert_same_adapter(Path(straight.final_dir), Path(resumed.final_dir))


def test_checkpoint_of_another_config_is_not_resumed(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = TrainConfig.defaults_for("lora", max_steps=2, save_every_steps=1)
    _run(config, tiny_source, chat_files, tmp_path / "out", should_stop=lambda: True)
    _run(config, tiny_source, chat_files, tmp_path / "out", should_stop=iter([False, True]).__next__)
    with pytest.raises(ConfigError) as info:
        _run(
            TrainConfig.from_dict({**config.to_dict(), "rank": 4}), tiny_source, chat_files, tmp_path / "out"
        )
    assert info.value.field == "output_dir"


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    # An absurd learning rate with plain SGD and no clipping blows the weights up within a few steps.
    config = TrainConfig.defaults_for(
        "full",
        max_steps=20,
        learning_rate=1e6,
        optimizer="sgd",
        max_grad_norm=None,
        save_every_steps=1,
        warmup_ratio=0.0,
    )
    with pytest.raises(TrainingFailed, match=r"became (NaN|infinite|NaN or infinite) at step \d+") as info:
        _run(config, tiny_source, chat_files, tmp_path / "out")
    step = info.value.step
    assert step is not None and step > 1 and f"at step {step}" in str(info.value)
    last = latest_checkpoint(tmp_path / "out")
    assert last is not None and int(last.name[5:]) < step and str(last) == info.value.last_checkpoint
    weights = load_file(str(last / "trainable.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_early_stopping_keeps_the_best_adapter(tiny_source: ModelSource, tmp_path: Path) -> None:
    # Train on one reply and validate on a contradicting one: validation loss rises as training memorises.
    train, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    train.write_text(
        json.dumps({"messages": PROMPT + [{"role": "assistant", "content": "Soft and warm."}]}) + "\n"
    )
    val.write_text(
        json.dumps({"messages": PROMPT + [{"role": "assistant", "content": "Itchy, cold wool."}]}) + "\n"
    )
    config = TrainConfig.defaults_for(
        "full",
        max_steps=60,
        learning_rate=1e-2,
        batch_size=1,
        warmup_ratio=0.0,
        eval_every_steps=2,
        early_stopping_patience=2,
    )
    result = _run(config, tiny_source, (train, val), tmp_path / "out")
    assert result.status == "early_stopped" and result.steps_done < 60
    losses = {h["step"]: h["val_loss"] for h in result.val_history}
    assert result.best_val_loss == min(losses.values()) and losses[result.best_step] == result.best_val_loss
    assert max(losses) == result.steps_done and result.steps_done - result.best_step == 2 * 2
    assert (
        json.loads((Path(result.best_dir) / "evalhub_training.json").read_text())["step"] == result.best_step
    )
    # Calling again does not train past the stopping point.
    again = _run(config, tiny_source, (train, val), tmp_path / "out")
    assert again.status == "early_stopped" and again.steps_done == result.steps_done


def test_cancel_before_the_first_step_trains_nothing(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    result = _run(
        TrainConfig.defaults_for("lora", max_steps=3),
        tiny_source,
        chat_files,
        tmp_path / "out",
        should_stop=lambda: True,
    )
    assert result.status == "cancelled" and result.steps_done == 0 and result.final_dir is None


def test_merged_lora_matches_the_adapter_and_prompt_tuning_cannot_merge(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    lora = _run(
        TrainConfig.defaults_for("lora", max_steps=3, learning_rate=1e-2),
        tiny_source,
        chat_files,
        tmp_path / "lora",
    )
    merged_dir = merge_adapter(tiny_source, Path(lora.best_dir), tmp_path / "merged", tmp_path)
    adapted, tok = load_trained(tiny_source, Path(lora.best_dir), tmp_path)
    merged, _ = load_trained(tiny_source, merged_dir, tmp_path)
    base, _ = load_base(tiny_source, tmp_path)
    inputs = tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        a, m, b = adapted(**inputs).logits, merged(**inputs).logits, base(**inputs).logits
    torch.testing.assert_close(m, a, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a, b, atol=1e-5), "the adapter must have changed the model"

    prompt = _run(
        TrainConfig.defaults_for("prompt", max_steps=1), tiny_source, chat_files, tmp_path / "prompt"
    )
    with pytest.raises(TrainerError, match="cannot be merged"):
        merge_adapter(tiny_source, Path(prompt.best_dir), tmp_path / "merged2", tmp_path)


@pytest.mark.slow
def test_real_demo_model_lora_adapter_round_trips_through_peft(
    demo_source: ModelSource, model_cache_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel, get_peft_model
    from safetensors.torch import load_file as load_tensors

    from trainer.train import _peft_config

    train = write_chat_jsonl(tmp_path / "train.jsonl")
    config = TrainConfig.defaults_for(
        "lora", max_steps=3, batch_size=4, learning_rate=1e-3, placement="attention"
    )
    result = train_sft(
        config,
        base=demo_source,
        train_file=train,
        val_file=train,
        output_dir=tmp_path / "out",
        cache_dir=model_cache_dir,
    )
    assert result.status == "completed" and result.final_val_loss is not None
    assert result.final_val_loss < result.val_history[0]["val_loss"] + 1.0

    base, tok = load_base(demo_source, model_cache_dir)
    inputs = tok.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        base_logits = base(**inputs).logits.clone()
    reloaded = PeftModel.from_pretrained(base, result.final_dir).eval()
    with torch.no_grad():
        reloaded_logits = reloaded(**inputs).logits

    # Independent reference: the exact trained weights from the last checkpoint, put into a fresh PEFT model.
    fresh, _ = load_base(demo_source, model_cache_dir)
    reference = get_peft_model(fresh, _peft_config(config, fresh)).eval()
    state = load_tensors(str(latest_checkpoint(tmp_path / "out") / "trainable.safetensors"))
    missing = reference.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys
    with torch.no_grad():
        reference_logits = reference(**inputs).logits
    assert torch.equal(reloaded_logits, reference_logits)
    assert not torch.allclose(reloaded_logits, base_logits, atol=1e-4), "training must have moved the adapter"


@pytest.mark.parametrize("method", ["full", "lora"])
def test_sparse_logits_loss_and_gradients_equal_the_models_own_loss(
    method: str, tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    from peft import get_peft_model

    from trainer.data import collate, load_sft_file
    from trainer.train import _peft_config, causal_lm_loss, sparse_logits_supported

    model, tok = load_base(tiny_source, tmp_path)
    config = TrainConfig.defaults_for(method, dropout=0.0)
    if method == "lora":
        model = get_peft_model(model, _peft_config(config, model))
        torch.manual_seed(0)
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero; give it values so the adapter path carries gradient
                torch.nn.init.normal_(param, std=0.1)
    assert sparse_logits_supported(model)
    data = load_sft_file(chat_files[0], tok, 512)
    batch = collate(data.examples[:5], tok.pad_token_id)  # rows of different lengths: padding in play
    trainable = [p for p in model.parameters() if p.requires_grad]

    reference = model(**batch).loss
    ref_grads = torch.autograd.grad(reference, trainable)
    sparse = causal_lm_loss(model, batch, sparse_logits=True)
    grads = torch.autograd.grad(sparse, trainable)
    torch.testing.assert_close(sparse, reference, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_training_curve(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config = TrainConfig.defaults_for("lora", max_steps=3, batch_size=4, dropout=0.1, learning_rate=5e-3)
    plain = _run(config, tiny_source, chat_files, tmp_path / "plain")
    checkpointed = _run(
        TrainConfig.from_dict({**config.to_dict(), "gradient_checkpointing": True}),
        tiny_source,
        chat_files,
        tmp_path / "gc",
    )
    for a, b in zip(plain.loss_history, checkpointed.loss_history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    _assert_same_adapter(Path(plain.final_dir), Path(checkpointed.final_dir))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="per-run peak reset needs Linux /proc")
def test_peak_memory_is_this_runs_not_an_earlier_runs_in_the_same_worker(
    tiny_source: ModelSource, chat_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """A worker trains run after run in one process: an earlier 1 GiB spike must not show up as a later tiny run's
    peak memory on its model version page."""
    import numpy as np

    spike = np.ones(2**30 // 8)  # 1 GiB, touched
    assert spike.sum() > 0
    del spike
    config = TrainConfig.defaults_for("lora", max_steps=1)
    result = _run(config, tiny_source, chat_files, tmp_path / "out")
    import psutil

    assert result.peak_memory_kind == "rss"
    rss_now = psutil.Process().memory_info().rss
    assert rss_now * 0.5 < result.peak_memory_bytes < rss_now + 2**30 * 0.5
