"""Fixtures for the feedback tests: one torch thread, a tiny random Llama registered as a base model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


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


@pytest.fixture
def tiny_base(db: Any, tiny_model_dir: Path) -> Any:
    from evalhub.tuning import services
    from trainer.models import ModelSource

    return services.base_model_register(
        name="tiny-llama", source=ModelSource(kind="folder", path_or_id=str(tiny_model_dir))
    )


@pytest.fixture(autouse=True)
def _fresh_generators() -> Iterator[None]:
    """Loaded models are cached per process by the generation app; each test starts without them."""
    from evalhub.generation.services import generators_clear

    generators_clear()
    yield
    generators_clear()
