"""Uploaded files waiting to be imported ("staged"), so the mapping form can show a preview before the import.

A staged file lives under ARTIFACT_ROOT/uploads/<project>/<user>/<token>/ and is deleted once imported, once an
import of it failed, or after a day. Tokens are only looked up inside the caller's own project and user folder, so a
token guessed or copied from someone else finds nothing.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Protocol

from evalhub.core.storage import artifact_dir, artifact_path

STAGED_MAX_AGE_S = 24 * 3600
_TOKEN = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class FileLike(Protocol):
    name: str
    size: int

    def chunks(self, chunk_size: int | None = None): ...  # type: ignore[no-untyped-def]


def safe_file_name(name: str) -> str:
    """A file name that keeps the extension (format detection uses it) and nothing that could escape a folder."""
    base = Path(name or "upload").name
    cleaned = _UNSAFE.sub("_", base).strip("._") or "upload"
    return cleaned[-120:]


def _user_dir(project_id: int, user_id: int) -> Path:
    return artifact_dir("uploads", project_id, user_id)


def stage(uploaded: FileLike, *, project_id: int, user_id: int) -> str:
    """Save the upload; returns its token. Also removes this user's staged files older than a day."""
    purge_old(project_id=project_id, user_id=user_id)
    token = uuid.uuid4().hex
    folder = artifact_dir("uploads", project_id, user_id, token)
    target = folder / safe_file_name(uploaded.name)
    with open(target, "wb") as out:
        out.writelines(uploaded.chunks())
    return token


def staged_path(token: str, *, project_id: int, user_id: int) -> Path | None:
    if not _TOKEN.match(token or ""):
        return None
    folder = artifact_path("uploads", project_id, user_id, token)
    if not folder.is_dir():
        return None
    files = [p for p in folder.iterdir() if p.is_file()]
    return files[0] if len(files) == 1 else None


def discard(token: str, *, project_id: int, user_id: int) -> None:
    if _TOKEN.match(token or ""):
        shutil.rmtree(artifact_path("uploads", project_id, user_id, token), ignore_errors=True)


def purge_old(*, project_id: int, user_id: int, max_age_s: float = STAGED_MAX_AGE_S) -> None:
    cutoff = time.time() - max_age_s
    for folder in _user_dir(project_id, user_id).iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
