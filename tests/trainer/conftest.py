"""Shared fixtures for trainer tests.

The real demo model is converted from its GGUF once per cache directory (~15-25 s) and reused by every later load
(~1 s). The cache lives in `$EVALHUB_MODEL_CACHE` (default ~/.cache/evalhub/models), so repeated test runs on the
same machine pay the conversion once, not once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.models import (
    ModelSource,
    default_cache_dir,
    demo_model_source,
    make_tiny_model,
    resolve_local_dir,
)


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


_PRODUCTS = [
    ("stainless steel water bottle", "Keeps drinks cold for 24 hours and hot for 12, with a leak-proof lid."),
    ("ceramic coffee mug", "A speckled glaze, a comfortable handle and room for a generous morning pour."),
    ("running shoes", "Breathable mesh and a cushioned sole make every kilometre feel lighter."),
    ("wool scarf", "Soft merino wool that keeps you warm without the itch."),
    ("desk lamp", "Warm, dimmable light and a flexible arm for late-night reading."),
    ("backpack", "Padded straps, a laptop sleeve and water-resistant fabric for daily commutes."),
    ("cast iron pan", "Pre-seasoned and oven safe, it sears steak and bakes cornbread alike."),
    ("yoga mat", "A grippy, cushioned surface that stays put through every pose."),
    ("bluetooth speaker", "Room-filling sound in a splash-proof body with a 12-hour battery."),
    ("linen shirt", "Breathable linen with a relaxed fit, made for warm afternoons."),
    ("notebook", "Thick, ink-friendly paper bound in a lay-flat cover."),
    ("chef knife", "A razor-sharp steel blade balanced for precise, effortless cuts."),
]


def write_chat_jsonl(path: Path, *, repeat: int = 1, long_reply_words: int = 0) -> Path:
    """Product-description chat rows in TRL's conversational format."""
    rows = []
    for _ in range(repeat):
        for name, reply in _PRODUCTS:
            if long_reply_words:
                reply = reply + " more" * long_reply_words
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": "You write short product descriptions."},
                        {"role": "user", "content": f"Describe the {name}."},
                        {"role": "assistant", "content": reply},
                    ]
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def chat_files(tmp_path: Path) -> tuple[Path, Path]:
    train = write_chat_jsonl(tmp_path / "train.jsonl")
    val = tmp_path / "val.jsonl"
    val.write_text("".join(train.read_text().splitlines(keepends=True)[:4]))
    return train, val
