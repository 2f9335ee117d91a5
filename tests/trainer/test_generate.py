"""trainer.generate: batched generation equals a per-prompt generate loop; adapters share one base; seeds repeat."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model

from trainer.errors import ConfigError, ModelLoadError
from trainer.generate import DecodeSettings, Generation, GenerationError, Generator
from trainer.models import ModelSource, load_base

PROMPTS = [
    [{"role": "user", "content": "Describe the mug."}],
    [{"role": "system", "content": "You write short product copy."},
     {"role": "user", "content": "Write a description of a stainless steel water bottle that keeps drinks cold."}],
    [{"role": "user", "content": "Shoes?"}],
    [{"role": "user", "content": "A ceramic mug with a speckled glaze, dishwasher safe, perfect for coffee."}],
    [{"role": "user", "content": "Lightweight running shoes in two sentences, please."}],
    [{"role": "user", "content": "Hello"}],
    [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. 0123456789"}],
]


def _load_tiny(source: ModelSource, cache: Path) -> tuple[torch.nn.Module, object]:
    model, tokenizer = load_base(source, cache)
    # A freshly initialised tiny model (std 0.02) emits the same token everywhere; larger random weights make
    # greedy outputs differ between prompts, so "equal to the loop" compares texts that could differ.
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return model, tokenizer


@pytest.fixture
def generator(tiny_source: ModelSource, tmp_path: Path) -> Generator:
    model, tokenizer = _load_tiny(tiny_source, tmp_path / "cache")
    return Generator(model=model, tokenizer=tokenizer)


def _make_adapter(source: ModelSource, dest: Path, seed: int) -> Path:
    model, _ = _load_tiny(source, dest.parent / "cache")
    torch.manual_seed(seed)
    # init_lora_weights=False draws B at random too, so the adapter changes outputs from the first step.
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(dest)
    return dest


def _loop(generator: Generator, model: torch.nn.Module, settings: DecodeSettings) -> list[str]:
    """The baseline: one plain `model.generate` call per prompt, no padding."""
    config = generator.generation_config(settings)
    texts = []
    for messages in PROMPTS:
        ids = torch.tensor([generator.encode_prompt(messages)])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        new = out[0, ids.shape[1]:].tolist()
        stops = [k for k, t in enumerate(new) if t in generator.stop_token_ids]
        texts.append(generator.tokenizer.decode(new[: stops[0]] if stops else new, skip_special_tokens=True))
    return texts


def test_greedy_batches_equal_a_per_prompt_loop_in_input_order(generator: Generator) -> None:
    settings = DecodeSettings(max_new_tokens=12, batch_size=3)
    seen: list[tuple[int, int]] = []
    outs = generator.generate(PROMPTS, settings=settings, progress=lambda done, total: seen.append((done, total)))
    expected = _loop(generator, generator.model, settings)
    assert [o.text for o in outs] == expected
    assert len(set(expected)) > 3  # the prompts really produce different texts
    assert seen[0] == (0, 7) and seen[-1] == (7, 7) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    for o, messages in zip(outs, PROMPTS):
        assert o.prompt_tokens == len(generator.encode_prompt(messages))
        assert o.finish_reason == "length" and o.output_tokens == 12 and o.latency_s > 0


def test_batch_size_does_not_change_greedy_outputs(generator: Generator) -> None:
    one = generator.generate(PROMPTS, settings=DecodeSettings(max_new_tokens=10, batch_size=1))
    many = generator.generate(PROMPTS, settings=DecodeSettings(max_new_tokens=10, batch_size=16))
    assert [o.text for o in one] == [o.text for o in many]


def test_stops_at_an_end_of_turn_token(generator: Generator) -> None:
    settings = DecodeSettings(max_new_tokens=12)
    first = generator.generate(PROMPTS[:1], settings=settings)[0]
    ids = torch.tensor([generator.encode_prompt(PROMPTS[0])])
    with torch.inference_mode():
        out = generator.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=generator.generation_config(settings)
        )
    new = out[0, ids.shape[1]:].tolist()
    # Declare a token the model emits mid-output (first occurrence at k) an end-of-turn token: it must stop there.
    k = next(k for k in range(2, len(new)) if new[k] not in new[:k])
    generator.stop_token_ids = [new[k]]
    stopped = generator.generate(PROMPTS[:1], settings=settings)[0]
    assert stopped.finish_reason == "stop"
    assert stopped.output_tokens == k + 1
    assert stopped.text == generator.tokenizer.decode(new[:k], skip_special_tokens=True)
    assert first.text.startswith(stopped.text) and len(stopped.text) < len(first.text)


def test_sampling_repeats_with_the_same_seed(generator: Generator) -> None:
    settings = DecodeSettings(do_sample=True, temperature=0.8, top_p=0.9, max_new_tokens=8, seed=7, num_samples=3)
    a = generator.generate(PROMPTS[:4], settings=settings)
    b = generator.generate(PROMPTS[:4], settings=settings)
    other = generator.generate(PROMPTS[:4], settings=DecodeSettings(**{**settings.to_dict(), "seed": 8}))
    assert len(a) == 12 and [o.text for o in a] == [o.text for o in b]
    assert [o.text for o in a] != [o.text for o in other]
    assert len({o.text for o in a[:3]}) > 1  # three samples of one prompt differ
    assert all(o.prompt_tokens == a[0].prompt_tokens for o in a[:3])  # prompt-major order
    # Sampling leaves the caller's global random state alone.
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    generator.generate(PROMPTS[:1], settings=settings)
    assert torch.equal(torch.rand(1), before)


def test_adapters_share_one_base(generator: Generator, tiny_source: ModelSource, tmp_path: Path) -> None:
    settings = DecodeSettings(max_new_tokens=10, batch_size=4)
    base_before = [o.text for o in generator.generate(PROMPTS, settings=settings)]
    path_a = _make_adapter(tiny_source, tmp_path / "a", seed=1)
    path_b = _make_adapter(tiny_source, tmp_path / "b", seed=2)
    generator.add_adapter("a", path_a)
    generator.add_adapter("b", path_b)
    assert set(generator.adapters) == {"a", "b"}

    out_a = [o.text for o in generator.generate(PROMPTS, adapter="a", settings=settings)]
    out_b = [o.text for o in generator.generate(PROMPTS, adapter="b", settings=settings)]
    base_after = [o.text for o in generator.generate(PROMPTS, adapter=None, settings=settings)]
    assert base_after == base_before
    assert out_a != base_before and out_b != base_before and out_a != out_b
    # Switching back gives the same outputs, and they equal adapter "a" served alone on a fresh base.
    assert [o.text for o in generator.generate(PROMPTS, adapter="a", settings=settings)] == out_a
    fresh, _ = _load_tiny(tiny_source, tmp_path / "cache")
    alone = PeftModel.from_pretrained(fresh, str(path_a)).eval()
    assert _loop(generator, alone, settings) == out_a
    # Both adapters wrap the same base weights: one copy of each base parameter.
    base_params = {p.data_ptr() for n, p in generator.model.named_parameters() if "lora_" not in n}
    assert len(base_params) == sum(1 for n, _ in generator.model.named_parameters() if "lora_" not in n)

    generator.remove_adapter("b")
    assert list(generator.adapters) == ["a"]
    with pytest.raises(GenerationError, match="no adapter named 'b'"):
        generator.generate(PROMPTS[:1], adapter="b", settings=settings)


def _make_mismatched_adapter(dest: Path) -> Path:
    """A LoRA adapter for a Llama of another width: its weights cannot fit the tiny base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(other, config).save_pretrained(dest)
    return dest


def test_bad_adapter_folders_are_refused(generator: Generator, tiny_source: ModelSource, tmp_path: Path) -> None:
    settings = DecodeSettings(max_new_tokens=6)
    base = [o.text for o in generator.generate(PROMPTS, settings=settings)]
    with pytest.raises(ModelLoadError, match="adapter_config.json"):
        generator.add_adapter("missing", tmp_path / "nowhere")
    corrupt = _make_adapter(tiny_source, tmp_path / "corrupt", seed=3)
    (corrupt / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    mismatched = _make_mismatched_adapter(tmp_path / "mismatched")
    for bad in (corrupt, mismatched):
        with pytest.raises(ModelLoadError, match="cannot load adapter"):
            generator.add_adapter("bad", bad)
        assert generator.adapters == {}
        # The failed load left no half-initialised layers behind: the base generates exactly as before.
        assert [o.text for o in generator.generate(PROMPTS, settings=settings)] == base

    generator.add_adapter("good", _make_adapter(tiny_source, tmp_path / "good", seed=4))
    good = [o.text for o in generator.generate(PROMPTS, adapter="good", settings=settings)]
    for bad in (corrupt, mismatched):
        with pytest.raises(ModelLoadError):
            generator.add_adapter("bad", bad)
    assert list(generator.adapters) == ["good"]
    assert [o.text for o in generator.generate(PROMPTS, adapter="good", settings=settings)] == good
    assert [o.text for o in generator.generate(PROMPTS, settings=settings)] == base


def test_bad_prompts_and_settings() -> None:
    with pytest.raises(ConfigError) as err:
        DecodeSettings.from_dict({"temperature": 0})
    assert err.value.field == "temperature"
    with pytest.raises(ConfigError) as err:
        DecodeSettings.from_dict({"max_new_tokens": 2.5})
    assert err.value.field == "max_new_tokens"
    with pytest.raises(ConfigError) as err:
        DecodeSettings.from_dict({"num_samples": 3})
    assert err.value.field == "num_samples"
    with pytest.raises(ConfigError) as err:
        DecodeSettings.from_dict({"beam_width": 3})
    assert err.value.field == "beam_width"
    with pytest.raises(ConfigError):
        DecodeSettings.from_dict({"do_sample": "yes"})
    settings = DecodeSettings.from_dict({"do_sample": True, "top_p": 0.5, "max_new_tokens": 64.0, "seed": 3})
    assert DecodeSettings.from_dict(settings.to_dict()) == settings and settings.max_new_tokens == 64


def test_bad_prompts_are_named(generator: Generator) -> None:
    assert generator.generate([]) == []
    with pytest.raises(GenerationError, match="prompt 1"):
        generator.generate([PROMPTS[0], [{"role": "user"}]])
    with pytest.raises(GenerationError, match="prompt 0"):
        generator.generate(["just a string"])  # type: ignore[list-item]


@pytest.mark.slow
def test_real_model_batched_greedy_equals_loop(demo_folder_source: ModelSource, model_cache_dir: Path) -> None:
    generator = Generator(demo_folder_source, cache_dir=model_cache_dir)
    settings = DecodeSettings(max_new_tokens=24, batch_size=4)
    outs = generator.generate(PROMPTS[:5], settings=settings)
    config = generator.generation_config(settings)
    for out, messages in zip(outs, PROMPTS[:5]):
        ids = torch.tensor([generator.encode_prompt(messages)])
        with torch.inference_mode():
            single = generator.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        new = single[0, ids.shape[1]:].tolist()
        stops = [k for k, t in enumerate(new) if t in generator.stop_token_ids]
        assert out.text == generator.tokenizer.decode(new[: stops[0]] if stops else new, skip_special_tokens=True)
        assert isinstance(out, Generation) and out.text.strip()
