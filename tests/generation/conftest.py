"""Fixtures for generation tests: a tiny random Llama registered as a base model, a random-B LoRA on it, an eval set."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.generation import factories


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    # Tiny models on a shared 2-core machine: more threads than cores makes every step much slower.
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.models import make_tiny_model

    path = tmp_path_factory.mktemp("tiny-llama")
    make_tiny_model(path, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return factories.write_random_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora") / "adapter", seed=1)


@pytest.fixture(autouse=True)
def _fresh_generators() -> Iterator[None]:
    """Each test starts without loaded models: the per-process cache would otherwise leak between tests."""
    from evalhub.generation.services import generators_clear

    generators_clear()
    yield
    generators_clear()


@pytest.fixture
def tiny_base(db: Any, tiny_model_dir: Path) -> Any:
    return factories.make_base("tiny-llama", tiny_model_dir)


@pytest.fixture
def adapter_key(tiny_lora_dir: Path) -> str:
    """The LoRA copied into this test's artifact storage (the autouse settings fixture gives each test its own)."""
    import shutil

    from evalhub.core.storage import artifact_dir

    dest = artifact_dir("adapters", "tiny-lora")
    shutil.copytree(tiny_lora_dir, dest, dirs_exist_ok=True)
    return factories.adapter_key_for(dest)


@pytest.fixture
def base_version(world: Any, tiny_base: Any) -> Any:
    return factories.make_version(world.project, tiny_base, number=1, name="base")


@pytest.fixture
def lora_version(world: Any, tiny_base: Any, adapter_key: str) -> Any:
    return factories.make_version(world.project, tiny_base, number=2, name="lora", adapter_key=adapter_key)


@pytest.fixture
def eval_version(world: Any) -> Any:
    return factories.make_eval_version(world.project)
