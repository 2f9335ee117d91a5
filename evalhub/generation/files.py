"""Checks that a model version's files are present and readable, before a job is queued and again in the worker.

Cheap on purpose (file headers, no weights loaded): it runs in the web request that launches a generation run, so
that "the adapter folder was deleted" or "the weights file is truncated" is a form error, not a failed job an hour
later on a busy GPU queue.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

from evalhub.core.storage import artifact_from_key
from evalhub.tuning.models import BaseModel, ModelVersion
from evalhub.tuning.services import base_model_source

GGUF_MAGIC = b"GGUF"
ADAPTER_WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def adapter_dir(version: ModelVersion) -> Path | None:
    return artifact_from_key(version.adapter_key) if version.adapter_key else None


def _check_safetensors(path: Path) -> str | None:
    """Reads only the header and checks every tensor's byte range lies inside the file (a truncated copy fails)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            if not list(handle.keys()):
                return f"{path.name} holds no tensors"
    except Exception as exc:  # noqa: BLE001 - safetensors raises several unrelated types for corrupt files
        return f"{path.name} is not a readable safetensors file ({exc})"
    return None


def base_model_problems(base: BaseModel) -> list[str]:
    source = base_model_source(base)
    if source.kind == "hub":
        if not settings.ALLOW_MODEL_DOWNLOADS:
            return [f"Base model “{base.name}” is a hub id and downloads are not allowed on this installation."]
        return []
    if source.kind == "gguf":
        path = source.gguf_path()
        if not path.is_file():
            return [f"The GGUF file of base model “{base.name}” is missing: {path}"]
        with path.open("rb") as fh:
            if fh.read(4) != GGUF_MAGIC:
                return [f"The GGUF file of base model “{base.name}” is corrupt (no GGUF header): {path}"]
        return []
    if source.kind == "folder":
        folder = Path(source.path_or_id)
        config = folder / "config.json"
        if not config.is_file():
            return [f"The folder of base model “{base.name}” is missing or has no config.json: {folder}"]
        try:
            json.loads(config.read_text())
        except (OSError, ValueError) as exc:
            return [f"config.json of base model “{base.name}” is not valid JSON ({exc})"]
        weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
        if not weights:
            return [f"The folder of base model “{base.name}” has no weight files: {folder}"]
        problems = [p for w in weights if w.suffix == ".safetensors" and (p := _check_safetensors(w))]
        return [f"Base model “{base.name}”: {p}" for p in problems]
    return [f"Base model “{base.name}” has an unknown source kind {source.kind!r}."]


def adapter_problems(version: ModelVersion) -> list[str]:
    folder = adapter_dir(version)
    if folder is None:
        return []
    label = f"The adapter of model version {version}"
    if not folder.is_dir():
        return [f"{label} is missing (no folder at {version.adapter_key})."]
    config = folder / "adapter_config.json"
    if not config.is_file():
        return [f"{label} has no adapter_config.json: it is not a PEFT adapter folder."]
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        return [f"{label} has a corrupt adapter_config.json ({exc})."]
    if not isinstance(data, dict) or "peft_type" not in data:
        return [f"{label} has an adapter_config.json without a peft_type."]
    weights = [folder / name for name in ADAPTER_WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        return [f"{label} has no weights file ({' or '.join(ADAPTER_WEIGHT_FILES)})."]
    if weights[0].suffix == ".safetensors" and (problem := _check_safetensors(weights[0])):
        return [f"{label}: {problem}."]
    return []


def model_version_problems(version: ModelVersion) -> list[str]:
    """Human-readable reasons this version cannot be loaded; empty when its files look usable."""
    return base_model_problems(version.base_model) + adapter_problems(version)
