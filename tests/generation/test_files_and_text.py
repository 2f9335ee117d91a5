"""Model files that are missing or corrupt are found before anything is queued; odd output text is stored safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalhub.generation.files import model_version_problems
from evalhub.generation.services import MAX_STORED_CHARS, clean_text
from tests.generation import factories


def test_a_usable_base_and_adapter_have_no_problems(base_version: Any, lora_version: Any) -> None:
    assert model_version_problems(base_version) == []
    assert model_version_problems(lora_version) == []


def test_missing_base_folder_is_named(world: Any, tmp_path: Path) -> None:
    base = factories.make_base("gone", tmp_path / "nowhere")
    version = factories.make_version(world.project, base, number=5)
    [problem] = model_version_problems(version)
    assert "“gone”" in problem and "missing" in problem


def test_truncated_adapter_weights_are_reported_as_corrupt(lora_version: Any) -> None:
    from evalhub.generation.files import adapter_dir

    weights = adapter_dir(lora_version) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    [problem] = model_version_problems(lora_version)
    assert "adapter_model.safetensors is not a readable safetensors file" in problem
    assert str(lora_version) in problem


def test_deleted_adapter_and_broken_config_are_reported(lora_version: Any) -> None:
    import shutil

    from evalhub.generation.files import adapter_dir

    folder = adapter_dir(lora_version)
    (folder / "adapter_config.json").write_text("{not json")
    assert "corrupt adapter_config.json" in model_version_problems(lora_version)[0]
    shutil.rmtree(folder)
    assert "is missing" in model_version_problems(lora_version)[0]


def test_gguf_without_header_is_corrupt(world: Any, tmp_path: Path) -> None:
    from evalhub.tuning.models import BaseModel

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a gguf file at all")
    base = BaseModel.objects.create(name="fake-gguf", source_kind="gguf", path_or_id=str(tmp_path), gguf_file="model.gguf")
    version = factories.make_version(world.project, base, number=6)
    assert "corrupt (no GGUF header)" in model_version_problems(version)[0]


def test_hub_base_is_refused_when_downloads_are_off(world: Any, settings: Any) -> None:
    from evalhub.tuning.models import BaseModel

    settings.ALLOW_MODEL_DOWNLOADS = False
    base = BaseModel.objects.create(name="hub-model", source_kind="hub", path_or_id="org/model")
    version = factories.make_version(world.project, base, number=7)
    assert "downloads are not allowed" in model_version_problems(version)[0]


@pytest.mark.parametrize(
    ("raw", "expected", "flags"),
    [
        ("plain text", "plain text", []),
        ("", "", ["empty"]),
        ("   \n", "   \n", ["empty"]),
        ("half a char \ud83d here", "half a char \ufffd here", ["repaired"]),
        ("nul\x00byte", "nul\ufffdbyte", ["repaired"]),
        (b"caf\xe9 latin-1", "caf\ufffd latin-1", ["repaired"]),
        ("<script>alert(1)</script>", "<script>alert(1)</script>", []),  # kept as text; escaped when shown
    ],
)
def test_clean_text(raw: Any, expected: str, flags: list[str]) -> None:
    text, got = clean_text(raw)
    assert text == expected and got == flags
    text.encode("utf-8")  # always encodable


def test_runaway_output_is_clipped_and_flagged() -> None:
    text, flags = clean_text("x" * (MAX_STORED_CHARS + 10))
    assert len(text) == MAX_STORED_CHARS and flags == ["clipped"]
    text, flags = clean_text("y" * 100_000)
    assert len(text) == 100_000 and flags == []
