"""Word-level diff of an output and its correction, as (op, text) segments that templates render escaped."""

from __future__ import annotations

import difflib
import re
from typing import Literal

Op = Literal["equal", "insert", "delete"]
_TOKEN = re.compile(r"\s+|[^\s]+")


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def diff_segments(original: str, edited: str) -> list[tuple[Op, str]]:
    """Segments that rebuild both texts: equal + delete gives `original`, equal + insert gives `edited`.

    Words and the whitespace between them are the units, so a changed word shows as one deletion and one insertion
    rather than scattered letters. Adjacent segments of the same kind are merged.
    """
    a, b = _tokens(original), _tokens(edited)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    out: list[tuple[Op, str]] = []

    def add(op: Op, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("equal", "".join(a[i1:i2]))
        else:
            add("delete", "".join(a[i1:i2]))
            add("insert", "".join(b[j1:j2]))
    return out


def diff_stats(segments: list[tuple[Op, str]]) -> dict[str, int]:
    """Words removed and added, for a one-line summary next to the diff."""
    words = {"insert": 0, "delete": 0}
    for op, text in segments:
        if op in words:
            words[op] += len(text.split())
    return {"added": words["insert"], "removed": words["delete"]}
