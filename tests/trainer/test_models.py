from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.errors import ModelLoadError
from trainer.models import ModelSource, ensure_distinct_pad, load_base, make_tiny_model


def test_tiny_model_has_chat_template_and_distinct_pad(tiny_source: ModelSource, tmp_path: Path) -> None:
    model, tok = load_base(tiny_source, tmp_path)
    assert model.config.model_type == "llama"
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert model.config.pad_token_id == tok.pad_token_id


def test_tiny_model_is_deterministic_per_seed(tmp_path: Path) -> None:
    a, _ = load_base(make_tiny_model(tmp_path / "a", seed=3), tmp_path)
    b, _ = load_base(make_tiny_model(tmp_path / "b", seed=3), tmp_path)
    c, _ = load_base(make_tiny_model(tmp_path / "c", seed=4), tmp_path)
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_pad_equal_to_eos_is_replaced_by_unused_special_token(tiny_source: ModelSource) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_source.path_or_id)
    tok.pad_token = tok.eos_token  # the situation SmolLM2's GGUF tokenizer ships with
    added = ensure_distinct_pad(tok)
    assert not added, "a spare special token exists, so the vocabulary must not grow"
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id != tok.eos_token_id


def test_hub_id_refused_without_downloads(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not allowed"):
        load_base(ModelSource(kind="hub", path_or_id="HuggingFaceTB/SmolLM2-135M-Instruct"), tmp_path)


def test_missing_folder_and_gguf_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="config.json"):
        load_base(ModelSource(kind="folder", path_or_id=str(tmp_path / "nope")), tmp_path)
    with pytest.raises(ModelLoadError, match="not found"):
        load_base(ModelSource(kind="gguf", path_or_id=str(tmp_path), gguf_file="x.gguf"), tmp_path)


@pytest.mark.slow
def test_demo_gguf_converted_once_and_matches_direct_gguf_load(
    demo_source: ModelSource, demo_folder_source: ModelSource, model_cache_dir: Path
) -> None:
    from transformers import AutoModelForCausalLM

    cached, tok = load_base(demo_source, model_cache_dir)
    assert Path(demo_folder_source.path_or_id).is_relative_to(model_cache_dir)
    assert tok.pad_token_id != tok.eos_token_id
    assert len(tok) == cached.get_input_embeddings().weight.shape[0], (
        "pad reuse must not resize the vocabulary"
    )
    gguf = demo_source.gguf_path()
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Describe a mug."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        assert torch.equal(cached(**ids).logits, direct(**ids).logits)
