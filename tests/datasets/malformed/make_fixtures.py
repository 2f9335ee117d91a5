"""Writes the malformed-upload fixtures next to this script: `python
tests/datasets/malformed/make_fixtures.py`.

Deterministic, so re-running it reproduces the committed files byte for byte. Cases that need a library to
build (Parquet with wrong column types, Hugging Face folders) are built by the tests in tmp_path instead.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = "id,prompt,reference,category\n"
ROW2 = 'p1,"Facts: oak desk, 120 cm","A solid oak desk with room for two screens.",furniture\n'
ROW3 = 'p2,"Facts: wool scarf, grey","A soft grey scarf in pure merino wool.",clothing\n'
ROW4 = 'p3,"Facts: steel bottle, 750 ml","Keeps water cold for a whole day.",kitchen\n'
GOOD_CSV = HEADER + ROW2 + ROW3 + ROW4


def jl(*objs: object) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def rec(i: int, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": f"p{i}",
        "prompt": f"Facts: product {i}, blue, cotton",
        "reference": f"A blue cotton product number {i} for everyday use.",
        "category": "clothing",
    }
    base.update(kw)
    return base


def chat(*turns: tuple[str, str]) -> dict[str, object]:
    return {"messages": [{"role": r, "content": c} for r, c in turns]}


def main() -> None:
    files: dict[str, bytes | str] = {
        # encodings and bytes
        "latin1.csv": (
            HEADER + ROW2 + 'p2,"Facts: café table","A small café table.",furniture\n' + ROW4
        ).encode("latin-1"),
        "utf16.jsonl": jl(rec(1), rec(2)).encode("utf-16"),
        "nul_bytes.csv": HEADER + ROW2 + 'p2,"Facts: lamp\x00","A lamp.",home\n' + ROW4,
        "garbage.jsonl": bytes(random.Random(7).randrange(256) for _ in range(3000)),
        "random.parquet": bytes(random.Random(8).randrange(256) for _ in range(2000)),
        "empty.csv": "",
        "blank_lines.jsonl": "\n  \n\n",
        # JSON Lines structure
        "truncated.jsonl": jl(rec(1), rec(2)) + '{"id": "p3", "prompt": "Facts: mug, red", "refer',
        "list_line.jsonl": jl(rec(1), ["p2", "Facts: mug"], rec(3)),
        "json_array.json": json.dumps([rec(1), rec(2)], indent=1),
        "duplicate_key.jsonl": jl(rec(1)) + '{"id": "p2", "prompt": "a b c", "prompt": "d e f", '
        '"reference": "x", "category": "home"}\n',
        # mapping / columns
        "missing_column.csv": "id,prompt,description,category\n" + ROW2 + ROW3,
        "missing_column.jsonl": jl(
            *({k: v for k, v in rec(i).items() if k != "reference"} for i in (1, 2, 3))
        ),
        "extra_column.csv": "id,prompt,reference,category,notes\n"
        'p1,"Facts: oak desk","A solid desk.",furniture,internal\np2,"Facts: mug","A mug.",kitchen,\n',
        "duplicate_header.csv": "id,prompt,reference,prompt\np1,a,b,c\n",
        "header_only.csv": HEADER,
        # types
        "wrong_type_number.jsonl": jl(rec(1), rec(2), rec(3), rec(4, reference=42), rec(5)),
        "wrong_type_list.jsonl": jl(rec(1), rec(2, prompt=["Facts:", "mug"])),
        "nested_attribute.jsonl": jl(rec(1), rec(2), rec(3, category={"main": "home", "sub": "lamps"})),
        "whitespace_prompt.csv": HEADER + ROW2 + ROW3 + 'p3,"   ",A lamp.,home\n',
        "empty_id.jsonl": jl(rec(1), rec(2, id="")),
        "duplicate_ids.jsonl": jl(rec(1), rec(2), rec(3), rec(4, id="p2")),
        "escaped_nul.jsonl": jl(rec(1), rec(2, reference="A lamp\u0000 for the desk.")),
        # CSV structure
        "ragged_too_many.csv": HEADER + ROW2 + 'p2,"Facts: mug",A mug.,kitchen,extra\n' + ROW4,
        "ragged_too_few.csv": HEADER + ROW2 + ROW3 + "p3,Facts: lamp\n",
        "unterminated_quote.csv": HEADER + ROW2 + 'p2,"Facts: mug, red,A mug.,kitchen\n' + ROW4,
        "unterminated_quote_eof.csv": HEADER + ROW2 + 'p2,"Facts: mug, red\nA mug.,kitchen\n',
        "stray_quote.csv": HEADER + ROW2 + 'p2,"Facts: mug" red,A mug.,kitchen\n',
        "multiline_then_bad.csv": HEADER + 'p1,"Facts:\n- oak\n- 120 cm","A desk.",furniture\n'
        'p2,"Facts: mug",42,kitchen,oops\n',
        # chat format
        "messages_not_list.jsonl": jl(
            chat(("user", "hi there"), ("assistant", "hello")), {"messages": "hello"}
        ),
        "message_no_role.jsonl": jl(
            chat(("user", "a b c"), ("assistant", "d e f")),
            chat(("user", "q r s"), ("assistant", "t u")),
            {"messages": [{"role": "user", "content": "x y z"}, {"content": "answer"}]},
        ),
        "last_turn_not_assistant.jsonl": jl(
            chat(("user", "a b c"), ("assistant", "d e f")), chat(("system", "be brief"), ("user", "a b c"))
        ),
        "invalid_role.jsonl": jl(chat(("user", "a b c"), ("bot", "d e f"))),
        "bad_messages_json.csv": 'messages\n"[{""role"": ""user"", ""content"": ""hi""}, '
        '{""role"": ""assistant"", ""content"": ""yo""}]"\n"[{role: user}]"\n',
        # limits (the tests pass small limits)
        "oversized.jsonl": jl(*(rec(i) for i in range(1, 30))),
        "too_many_rows.csv": HEADER
        + "".join(f'p{i},"Facts: item {i}",Text {i}.,home\n' for i in range(1, 8)),
        "long_field.jsonl": jl(rec(1), rec(2, reference="word " * 60)),
    }
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
