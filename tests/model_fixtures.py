"""Fixtures shared by the test packages that train or generate with a tiny random Llama.

A package's conftest imports the ones it needs: an imported fixture counts as defined in that conftest, autouse
included, so it applies to that package only.
"""

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
    """The tiny model registered as a base model, through the tuning service a lead's upload goes through."""
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
