"""Fixtures for generation tests: a tiny random Llama registered as a base model, a random-B LoRA on it, an eval set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import model_fixtures
from tests.generation import factories

# Defined once in tests/model_fixtures.py; assigned here so they apply to this package (autouse included).
_one_torch_thread = model_fixtures._one_torch_thread
tiny_model_dir = model_fixtures.tiny_model_dir
_fresh_generators = model_fixtures._fresh_generators


@pytest.fixture(scope="session")
def tiny_lora_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return factories.write_random_lora(tiny_model_dir, tmp_path_factory.mktemp("tiny-lora") / "adapter", seed=1)


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
