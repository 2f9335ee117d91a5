from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.config import METHODS, TrainConfig, linear_module_names, resolve_target_modules, validate
from trainer.errors import ConfigError
from trainer.models import ModelSource, load_base, meta_model
from trainer.train import train_sft


@pytest.fixture(scope="module")
def tiny_meta(tiny_source: ModelSource, tmp_path_factory: pytest.TempPathFactory) -> torch.nn.Module:
    return meta_model(tiny_source, tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("method", [m for m in METHODS if m != "qlora"])
def test_defaults_for_every_method_validate_against_a_llama(method: str, tiny_meta: torch.nn.Module) -> None:
    config = TrainConfig.defaults_for(method)
    assert config.method == method
    validate(config, tiny_meta, has_cuda=False)


def test_default_learning_rates_follow_how_many_parameters_each_method_trains() -> None:
    lr = {m: TrainConfig.defaults_for(m).learning_rate for m in METHODS}
    assert lr["prompt"] > lr["ia3"] > lr["lora"] > lr["full"]
    assert TrainConfig.defaults_for("lora").scheduler == "cosine"
    assert TrainConfig.defaults_for("lora").warmup_ratio > 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rank": 0}, "rank"),
        ({"learning_rate": -1e-4}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"scheduler": "exponential"}, "scheduler"),
        ({"placement": "everywhere"}, "placement"),
        ({"batch_size": 0}, "batch_size"),
        ({"dropout": 1.5}, "dropout"),
        ({"max_steps": 0}, "max_steps"),
        ({"optimizer": "lion"}, "optimizer"),
        ({"method": "adalora"}, "method"),
    ],
)
def test_invalid_settings_name_their_field(changes: dict, field: str) -> None:
    config = TrainConfig(**{**TrainConfig.defaults_for("lora").to_dict(), **changes})
    with pytest.raises(ConfigError) as info:
        validate(config, has_cuda=False)
    assert info.value.field == field
    assert field in str(info.value)


def test_unknown_target_module_is_refused_with_the_modules_the_model_has(tiny_meta: torch.nn.Module) -> None:
    config = TrainConfig.defaults_for("lora", placement=["q_proj", "query_key_value"])
    with pytest.raises(ConfigError) as info:
        validate(config, tiny_meta, has_cuda=False)
    assert info.value.field == "placement"
    assert "query_key_value" in info.value.message and "q_proj" in info.value.message


def test_ia3_on_a_non_linear_module_is_refused(tiny_meta: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="only adapt linear") as info:
        validate(TrainConfig.defaults_for("ia3", placement=["embed_tokens"]), tiny_meta, has_cuda=False)
    assert info.value.field == "placement"


def test_non_generative_model_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        validate(TrainConfig.defaults_for("lora"), torch.nn.Sequential(torch.nn.Linear(4, 4)), has_cuda=False)
    assert info.value.field == "method"


def test_qlora_without_cuda_is_refused_naming_the_method_field() -> None:
    with pytest.raises(ConfigError) as info:
        validate(TrainConfig.defaults_for("qlora"), has_cuda=False)
    assert info.value.field == "method"
    assert "CUDA GPU" in info.value.message and "bitsandbytes" in info.value.message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_train_sft_refuses_qlora_on_this_cpu_before_loading_anything(tmp_path: Path) -> None:
    missing_model = ModelSource(kind="folder", path_or_id=str(tmp_path / "does-not-exist"))
    with pytest.raises(ConfigError, match="QLoRA needs a CUDA GPU"):
        train_sft(
            TrainConfig.defaults_for("qlora"),
            base=missing_model,
            train_file=tmp_path / "missing.jsonl",
            val_file=None,
            output_dir=tmp_path / "out",
            cache_dir=tmp_path,
        )
    assert not (tmp_path / "out").exists()


def test_placements_map_to_the_llama_projection_names(tiny_source: ModelSource, tmp_path: Path) -> None:
    model, _ = load_base(tiny_source, tmp_path)
    groups = linear_module_names(model)
    assert groups["attention"] == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert groups["mlp"] == {"gate_proj", "up_proj", "down_proj"}
    assert groups["all_linear"] == groups["attention"] | groups["mlp"], "lm_head must not be adapted"
    assert resolve_target_modules(TrainConfig(placement=["q_proj", "v_proj"]), model) == ["q_proj", "v_proj"]


def test_config_json_round_trip_and_unknown_keys() -> None:
    config = TrainConfig.defaults_for("dora", placement=["q_proj", "v_proj"], seed=7, max_steps=12)
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({**config.to_dict(), "lora_rank": 8})
    assert info.value.field == "lora_rank"
