"""Reading external preference data (no Django): JSON Lines, one preference pair per line.

Accepted record shapes (decided per line):
- explicit prompt, TRL's preference format: {"prompt": str, "chosen": str, "rejected": str};
- the same in TRL's conversational form: "prompt" a list of {"role", "content"} messages, "chosen" / "rejected" lists
  of assistant messages (their contents are joined);
- implicit prompt, full transcripts in the "\\n\\nHuman: ... \\n\\nAssistant: ..." style of public human-preference
  datasets: {"chosen": str, "rejected": str}. The prompt is the shared prefix of the two transcripts, cut just after
  the last "Assistant:" turn marker inside it; what follows is each side's reply.
Other top-level fields with a short scalar value (a category, a source id) are kept as attributes, so the
leaderboard can be sliced by them.

Every problem is reported with the file name and line ("prefs.jsonl, line 7, field "rejected": is missing"); a file
with any problem is refused as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evalhub.datasets.ingest import RowError

ASSISTANT_MARK = "\n\nAssistant:"
HUMAN_MARK = "\n\nHuman:"
MAX_ERRORS = 50
RecordFormat = Literal["explicit", "conversational", "transcript"]
_KNOWN = {"prompt", "chosen", "rejected"}
_ROLES = {"system", "user", "assistant", "tool"}


@dataclass(frozen=True)
class Limits:
    max_records: int = 200_000
    max_field_chars: int = 200_000
    max_attribute_chars: int = 200


@dataclass(frozen=True)
class PreferenceRecord:
    """One pair: `prompt` as text (a transcript keeps its markers), `messages` for conversational prompts."""

    line: int
    prompt: str
    chosen: str
    rejected: str
    format: RecordFormat
    messages: list[dict[str, str]] | None = None
    attributes: dict[str, str] = field(default_factory=dict)


class PreferenceImportError(Exception):
    """The file cannot be imported; `errors` lists the problems (at most MAX_ERRORS, then `truncated`)."""

    def __init__(self, errors: list[RowError], *, truncated: bool = False) -> None:
        self.errors = list(errors)
        self.truncated = truncated
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = len(self.errors) - 3
        super().__init__(shown + (f" (and {more} more)" if more > 0 else ""))


class _Errors:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[RowError] = []
        self.truncated = False

    def add(self, line: int | None, field_name: str | None, message: str) -> None:
        if len(self.items) >= MAX_ERRORS:
            self.truncated = True
            return
        self.items.append(RowError(self.file, line, field_name, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise PreferenceImportError(self.items, truncated=self.truncated)


def split_transcript(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen reply, rejected reply) of two full transcripts sharing their conversation so far.

    The prompt is the longest common prefix cut just after the last "\\n\\nAssistant:" marker inside it, so a reply
    that happens to start with the same words as the other stays whole. Replies lose the single space that
    follows the marker. Raises ValueError naming what is wrong.
    """
    if chosen == rejected:
        raise ValueError("chosen and rejected are identical")
    # Binary search on slice equality: the comparisons run in C, which matters for 100,000-record files.
    n, hi = 0, min(len(chosen), len(rejected))
    while n < hi:
        mid = (n + hi + 1) // 2
        if chosen[:mid] == rejected[:mid]:
            n = mid
        else:
            hi = mid - 1
    cut = chosen.rfind(ASSISTANT_MARK, 0, n)
    if cut < 0:
        raise ValueError(
            'the two transcripts share no "Assistant:" turn, so no prompt can be recovered; use '
            '{"prompt", "chosen", "rejected"} records or transcripts in the "\\n\\nHuman: ... \\n\\nAssistant: ..." style'
        )
    end = cut + len(ASSISTANT_MARK)
    prompt = chosen[:end]
    if not prompt[: -len("Assistant:")].strip():
        raise ValueError("the shared conversation before the last Assistant turn is empty")
    return prompt, _reply(chosen[end:]), _reply(rejected[end:])


def _reply(text: str) -> str:
    return text.removeprefix(" ")


def transcript_turns(prompt: str) -> list[dict[str, str]]:
    """A "Human: / Assistant:" transcript as chat turns (the trailing empty Assistant turn dropped)."""
    turns: list[dict[str, str]] = []
    text = prompt if prompt.startswith("\n\n") else "\n\n" + prompt
    i = 0
    marks = ((HUMAN_MARK, "user"), (ASSISTANT_MARK, "assistant"))
    while i < len(text):
        found = [(text.find(m, i), m, role) for m, role in marks]
        found = [f for f in found if f[0] >= 0]
        if not found:
            break
        pos, mark, role = min(found)
        start = pos + len(mark)
        nxt = [text.find(m, start) for m, _ in marks]
        nxt = [p for p in nxt if p >= 0]
        end = min(nxt) if nxt else len(text)
        content = text[start:end].strip()
        turns.append({"role": role, "content": content})
        i = end
    if turns and turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
        turns.pop()
    return turns or [{"role": "user", "content": prompt.strip()}]


def _text_field(obj: dict[str, Any], name: str, line: int, errors: _Errors, limits: Limits) -> str | list[Any] | None:
    if name not in obj or obj[name] is None:
        errors.add(line, name, "is missing")
        return None
    value = obj[name]
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        errors.add(line, name, f"must be text (or a list of messages), got {_type_name(value)}")
        return None
    if not value.strip():
        errors.add(line, name, "is empty" if not value else "is blank (only whitespace)")
        return None
    if "\x00" in value:
        errors.add(line, name, "contains a NUL character (\\u0000)")
        return None
    if len(value) > limits.max_field_chars:
        errors.add(line, name, f"is {len(value):,} characters long; the limit is {limits.max_field_chars:,}")
        return None
    return value


def _messages(value: list[Any], name: str, line: int, errors: _Errors, limits: Limits) -> list[dict[str, str]] | None:
    out: list[dict[str, str]] = []
    for k, m in enumerate(value, 1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            errors.add(line, name, f'message {k} must be {{"role": text, "content": text}}')
            return None
        if m["role"] not in _ROLES:
            errors.add(line, name, f'message {k} has role "{m["role"][:40]}"; use one of {", ".join(sorted(_ROLES))}')
            return None
        if "\x00" in m["content"]:
            errors.add(line, name, f"message {k} contains a NUL character (\\u0000)")
            return None
        out.append({"role": m["role"], "content": m["content"]})
    if not out:
        errors.add(line, name, "is an empty list of messages")
        return None
    if sum(len(m["content"]) for m in out) > limits.max_field_chars:
        errors.add(line, name, f"is longer than {limits.max_field_chars:,} characters")
        return None
    return out


def _reply_text(msgs: list[dict[str, str]], name: str, line: int, errors: _Errors) -> str | None:
    if any(m["role"] != "assistant" for m in msgs):
        errors.add(line, name, "must contain only assistant messages (the reply); put the conversation in \"prompt\"")
        return None
    text = "\n\n".join(m["content"] for m in msgs)
    if not text.strip():
        errors.add(line, name, "is empty")
        return None
    return text


def _attributes(obj: dict[str, Any], line: int, errors: _Errors, limits: Limits) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for key, value in obj.items():
        if key in _KNOWN or value is None or isinstance(value, (dict, list)):
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\x00" in text or "\x00" in key:
            errors.add(line, key, "contains a NUL character (\\u0000)")
            continue
        if len(text) <= limits.max_attribute_chars and len(key) <= 100:
            attrs[key] = text
    return attrs


def _record(obj: dict[str, Any], line: int, errors: _Errors, limits: Limits) -> PreferenceRecord | None:
    before = len(errors.items)
    chosen = _text_field(obj, "chosen", line, errors, limits)
    rejected = _text_field(obj, "rejected", line, errors, limits)
    has_prompt = "prompt" in obj
    prompt = _text_field(obj, "prompt", line, errors, limits) if has_prompt else None
    attrs = _attributes(obj, line, errors, limits)
    if len(errors.items) > before or chosen is None or rejected is None or (has_prompt and prompt is None):
        return None
    if not has_prompt:
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            errors.add(line, "prompt", "is missing: conversational chosen/rejected lists need a \"prompt\" list")
            return None
        if chosen == rejected:
            errors.add(line, "rejected", 'is identical to "chosen": a pair needs two different responses')
            return None
        try:
            p, c, r = split_transcript(chosen, rejected)
        except ValueError as exc:
            errors.add(line, "chosen", str(exc))
            return None
        if not c.strip() or not r.strip():
            errors.add(line, "chosen" if not c.strip() else "rejected", "the reply after the shared prompt is empty")
            return None
        if c.strip() == r.strip():
            errors.add(line, "rejected", 'has the same reply as "chosen" (they differ only in whitespace)')
            return None
        return PreferenceRecord(line, p, c, r, "transcript", transcript_turns(p), attrs)
    if isinstance(prompt, list) or isinstance(chosen, list) or isinstance(rejected, list):
        if not (isinstance(prompt, list) and isinstance(chosen, list) and isinstance(rejected, list)):
            errors.add(line, None, "mixes text and message lists; use text for all three fields or lists for all three")
            return None
        pm = _messages(prompt, "prompt", line, errors, limits)
        cm = _messages(chosen, "chosen", line, errors, limits)
        rm = _messages(rejected, "rejected", line, errors, limits)
        if pm is None or cm is None or rm is None:
            return None
        c_text, r_text = _reply_text(cm, "chosen", line, errors), _reply_text(rm, "rejected", line, errors)
        if c_text is None or r_text is None:
            return None
        if c_text.strip() == r_text.strip():
            errors.add(line, "rejected", 'is identical to "chosen": a pair needs two different responses')
            return None
        text = "\n\n".join(f"{m['role']}: {m['content']}" for m in pm)
        return PreferenceRecord(line, text, c_text, r_text, "conversational", pm, attrs)
    assert isinstance(prompt, str) and isinstance(chosen, str) and isinstance(rejected, str)
    if chosen.strip() == rejected.strip():
        errors.add(line, "rejected", 'is identical to "chosen": a pair needs two different responses')
        return None
    return PreferenceRecord(line, prompt, chosen, rejected, "explicit", None, attrs)


def _lines(path: Path, errors: _Errors) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if b"\x00" in raw:
                errors.add(line_no, None, "contains a NUL byte; is this a text file saved as UTF-8?")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.add(line_no, None, f"is not valid UTF-8 (byte 0x{raw[exc.start:exc.start + 1].hex()}); "
                                          "save the file as UTF-8")
                continue
            if text.strip():
                yield line_no, text


def parse_preferences(path: Path, display_name: str | None = None, *, limits: Limits | None = None) -> list[PreferenceRecord]:
    """Every record of a preference JSONL file, or PreferenceImportError listing what is wrong (nothing partial)."""
    limits = limits or Limits()
    errors = _Errors(display_name or path.name)
    records: list[PreferenceRecord] = []
    n_lines = 0
    for line_no, text in _lines(path, errors):
        n_lines += 1
        if n_lines > limits.max_records:
            errors.add(line_no, None, f"the file has more than {limits.max_records:,} records; split it")
            break
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            hint = "; the line looks cut off" if not text.rstrip().endswith("}") else ""
            errors.add(line_no, None, f"is not valid JSON ({exc.msg}, column {exc.colno}){hint}")
            continue
        if not isinstance(obj, dict):
            errors.add(line_no, None, f"expected a JSON object ({{...}}), got {_type_name(obj)}")
            continue
        rec = _record(obj, line_no, errors, limits)
        if rec is not None:
            records.append(rec)
        if errors.truncated:
            break
    if not records and not errors.items:
        errors.add(None, None, "the file holds no records")
    errors.raise_if_any()
    return records


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
