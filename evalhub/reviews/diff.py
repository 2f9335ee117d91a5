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

    # Raw opcodes first; then equal runs that are only whitespace between two changes are folded into the change,
    # and each run of changes becomes one deletion followed by one insertion. Without this a rewritten sentence
    # reads as alternating single words ("PlanterCast-iron forpan ...") instead of old text, then new text.
    raw: list[tuple[str, str, str]] = []  # (tag, old text, new text)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        raw.append((tag, "".join(a[i1:i2]), "".join(b[j1:j2])))
    for n, (tag, old, new) in enumerate(raw):
        between_changes = 0 < n < len(raw) - 1 and raw[n - 1][0] != "equal" and raw[n + 1][0] != "equal"
        if tag == "equal" and between_changes and not old.strip():
            raw[n] = ("replace", old, new)
    pending_old: list[str] = []
    pending_new: list[str] = []

    def flush() -> None:
        add("delete", "".join(pending_old))
        add("insert", "".join(pending_new))
        pending_old.clear()
        pending_new.clear()

    for tag, old, new in raw:
        if tag == "equal":
            flush()
            add("equal", old)
        else:
            pending_old.append(old)
            pending_new.append(new)
    flush()
    return out


def diff_stats(segments: list[tuple[Op, str]]) -> dict[str, int]:
    """Words removed and added, for a one-line summary next to the diff."""
    words = {"insert": 0, "delete": 0}
    for op, text in segments:
        if op in words:
            words[op] += len(text.split())
    return {"added": words["insert"], "removed": words["delete"]}
