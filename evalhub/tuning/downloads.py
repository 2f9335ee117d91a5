"""Streaming a folder (an adapter, a merged model) as a zip without building it in memory or on disk."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


class _Sink:
    """A write-only file object: zipfile writes into it and the generator below hands the bytes out.

    It can tell() but not seek(), so zipfile writes sizes in data descriptors after each member (its mode for
    unseekable streams) instead of seeking back into the header.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def zip_folder(folder: Path, *, arcroot: str) -> Iterator[bytes]:
    """Yield a zip of every file under `folder`, paths prefixed by `arcroot/`. Memory stays at about one chunk."""
    sink = _Sink()
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            name = f"{arcroot}/{path.relative_to(folder).as_posix()}"
            info = zipfile.ZipInfo.from_file(path, name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, archive.open(info, mode="w", force_zip64=True) as dst:
                while block := src.read(CHUNK):
                    dst.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
