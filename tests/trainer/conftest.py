"""Shared fixtures for trainer tests.

The real demo model is converted from its GGUF once per cache directory (~15-25 s) and reused by every later load
(~1 s). The cache lives in `$EVALHUB_MODEL_CACHE` (default ~/.cache/evalhub/models), so repeated test runs on the
same machine pay the conversion once, not once per session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.models import ModelSource, default_cache_dir, demo_model_source, make_tiny_model, resolve_local_dir


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    path = default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    """A tiny random Llama + ChatML tokenizer folder (built in ~0.2 s, no GGUF involved)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="session")
def demo_source() -> ModelSource:
    return demo_model_source()


@pytest.fixture(scope="session")
def demo_folder_source(demo_source: ModelSource, model_cache_dir: Path) -> ModelSource:
    """The demo model as an already-converted HF folder (converts the GGUF on first use)."""
    return ModelSource(kind="folder", path_or_id=str(resolve_local_dir(demo_source, model_cache_dir)))
