"""One storage abstraction for artifacts: uploads, adapters, checkpoints, exports.

Trainers and exporters work on directories, so the store hands out local paths under ARTIFACT_ROOT. In production
ARTIFACT_ROOT is a volume shared by web and workers (NFS, EFS, a bucket mounted with a FUSE driver); keys stay the
same, so moving storage is a configuration change.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from django.conf import settings

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def _root() -> Path:
    root = Path(settings.ARTIFACT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_path(*parts: str | int) -> Path:
    """Path for a key like ("adapters", 12). Parts are checked so a key can never escape the root."""
    clean: list[str] = []
    for part in parts:
        text = str(part)
        if not _SAFE.match(text) or text in {".", ".."}:
            raise ValueError(f"unsafe artifact key part: {text!r}")
        clean.append(text)
    return _root().joinpath(*clean)


def artifact_dir(*parts: str | int) -> Path:
    path = artifact_path(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def artifact_delete(*parts: str | int) -> None:
    path = artifact_path(*parts)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def artifact_key(path: Path) -> str:
    """The key stored in the database for a path under the root (relative, portable between machines)."""
    return str(Path(path).resolve().relative_to(_root().resolve()))


def artifact_from_key(key: str) -> Path:
    return artifact_path(*Path(key).parts)
