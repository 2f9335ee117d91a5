"""Reading uploads: every malformed kind is refused with an error naming file, line and field; good files in
any format give the same examples and the same content hash."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evalhub.datasets.ingest import (
    MAX_ERRORS,
    ColumnMapping,
    DatasetImportError,
    Example,
    Limits,
    RowError,
    content_hash,
    detect_format,
    preview,
    read_examples,
)

MALFORMED = Path(__file__).parent / "malformed"
PRODUCTS = ColumnMapping(prompt="prompt", reference="reference", attributes=["category"], id="id")
CHAT = ColumnMapping(messages="messages")

# fixture, mapping, limits, expected line, expected field, words the message must contain
CASES: list[tuple[str, ColumnMapping, Limits, int | None, str | None, str]] = [
    ("latin1.csv", PRODUCTS, Limits(), 3, None, "not valid UTF-8"),
    ("utf16.jsonl", PRODUCTS, Limits(), None, None, "UTF-16"),
    ("nul_bytes.csv", PRODUCTS, Limits(), 3, None, "NUL byte"),
    ("garbage.jsonl", PRODUCTS, Limits(), None, None, "binary data"),
    ("random.parquet", PRODUCTS, Limits(), None, None, "not a valid Parquet file"),
    ("empty.csv", PRODUCTS, Limits(), None, None, "empty"),
    ("blank_lines.jsonl", PRODUCTS, Limits(), None, None, "empty"),
    ("truncated.jsonl", PRODUCTS, Limits(), 3, None, "cut off"),
    ("list_line.jsonl", PRODUCTS, Limits(), 2, None, "expected a JSON object"),
    ("json_array.json", PRODUCTS, Limits(), None, None, "JSON array"),
    ("duplicate_key.jsonl", PRODUCTS, Limits(), 2, "prompt", "appears twice"),
    ("missing_column.csv", PRODUCTS, Limits(), 1, "reference", "not in the file"),
    ("missing_column.jsonl", PRODUCTS, Limits(), None, "reference", "in no record"),
    ("duplicate_header.csv", PRODUCTS, Limits(), 1, "prompt", "2 times"),
    ("header_only.csv", PRODUCTS, Limits(), None, None, "header but no rows"),
    ("wrong_type_number.jsonl", PRODUCTS, Limits(), 4, "reference", "expected text, got a number"),
    ("wrong_type_list.jsonl", PRODUCTS, Limits(), 2, "prompt", "expected text, got a list"),
    ("nested_attribute.jsonl", PRODUCTS, Limits(), 3, "category", "expected a single value, got an object"),
    ("whitespace_prompt.csv", PRODUCTS, Limits(), 4, "prompt", "blank"),
    ("empty_id.jsonl", PRODUCTS, Limits(), 2, "id", "id is empty"),
    ("duplicate_ids.jsonl", PRODUCTS, Limits(), 4, "id", 'duplicate id "p2" (first used on line 2)'),
    ("escaped_nul.jsonl", PRODUCTS, Limits(), 2, "reference", "NUL character"),
    ("ragged_too_many.csv", PRODUCTS, Limits(), 3, None, "has 5 fields but the header has 4"),
    ("ragged_too_few.csv", PRODUCTS, Limits(), 4, None, "has 2 fields but the header has 4"),
    ("unterminated_quote.csv", PRODUCTS, Limits(), 3, None, "closing quote"),
    ("unterminated_quote_eof.csv", PRODUCTS, Limits(), 3, None, "never closed"),
    ("stray_quote.csv", PRODUCTS, Limits(), 3, None, "must be doubled"),
    # the first record spans lines 2-4, so the bad one is on physical line 5
    ("multiline_then_bad.csv", PRODUCTS, Limits(), 5, None, "has 5 fields"),
    ("messages_not_list.jsonl", CHAT, Limits(), 2, "messages", "expected a list of messages"),
    ("message_no_role.jsonl", CHAT, Limits(), 3, "messages", 'message 2 has no "role"'),
    ("last_turn_not_assistant.jsonl", CHAT, Limits(), 2, "messages", 'must be from "assistant"'),
    ("invalid_role.jsonl", CHAT, Limits(), 1, "messages", 'role "bot"'),
    ("bad_messages_json.csv", CHAT, Limits(), 3, "messages", "not valid JSON"),
    ("oversized.jsonl", PRODUCTS, Limits(max_bytes=1000), None, None, "the limit is 1,000 bytes"),
    ("too_many_rows.csv", PRODUCTS, Limits(max_rows=5), 7, None, "more than 5 rows"),
    ("long_field.jsonl", PRODUCTS, Limits(max_field_chars=200), 2, "reference", "300 characters long"),
]
GOOD_FIXTURES = {"extra_column.csv"}


@pytest.mark.parametrize(
    ("name", "mapping", "limits", "line", "field", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_file_is_refused_naming_line_and_field(
    name: str, mapping: ColumnMapping, limits: Limits, line: int | None, field: str | None, words: str
) -> None:
    with pytest.raises(DatasetImportError) as caught:
        read_examples(MALFORMED / name, fmt=None, mapping=mapping, limits=limits, display_name=name)
    first = caught.value.errors[0]
    assert (first.file, first.line, first.field) == (name, line, field), str(first)
    assert words in first.message
    assert str(first).startswith(name)


def test_every_fixture_has_an_expectation() -> None:
    on_disk = {p.name for p in MALFORMED.iterdir() if p.suffix != ".py" and not p.name.startswith(("_", "."))}
    assert on_disk == {c[0] for c in CASES} | GOOD_FIXTURES


def test_fixture_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    script = tmp_path / "make_fixtures.py"
    shutil.copy(MALFORMED / "make_fixtures.py", script)
    import runpy

    runpy.run_path(str(script), run_name="__main__")
    for made in tmp_path.iterdir():
        if made.suffix != ".py":
            assert made.read_bytes() == (MALFORMED / made.name).read_bytes(), made.name


def test_extra_unmapped_column_is_fine() -> None:
    parsed = read_examples(
        MALFORMED / "extra_column.csv",
        fmt=None,
        mapping=PRODUCTS,
        limits=Limits(),
        display_name="extra_column.csv",
    )
    assert parsed.n_rows == 2
    assert "notes" in parsed.columns
    assert parsed.examples[1].attributes == {"category": "kitchen"}


def test_row_error_reads_like_a_sentence() -> None:
    err = RowError("products.csv", 14, "reference", "expected text, got a number")
    assert str(err) == 'products.csv, line 14, field "reference": expected text, got a number'
    assert str(RowError("data.parquet", 7, "prompt", "is empty", unit="row")) == (
        'data.parquet, row 7, field "prompt": is empty'
    )
    assert str(RowError("x.csv", None, None, "the file is empty")) == "x.csv: the file is empty"


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "prompt": "p one", "reference": "r"},
        {"id": "b", "prompt": 5, "reference": "r"},
        {"id": "c", "prompt": "p three", "reference": ["r"]},
        {"id": "a", "prompt": "p four", "reference": "r"},
    ]
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mapping = ColumnMapping(prompt="prompt", reference="reference", id="id")
    with pytest.raises(DatasetImportError) as caught:
        read_examples(path, fmt="jsonl", mapping=mapping, limits=Limits(), display_name="many.jsonl")
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, "prompt"), (3, "reference"), (4, "id")]
    assert not caught.value.truncated


def test_error_list_stops_at_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps({"prompt": i}) + "\n" for i in range(200)))
    with pytest.raises(DatasetImportError) as caught:
        read_examples(
            path, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="b"
        )
    assert len(caught.value.errors) == MAX_ERRORS
    assert caught.value.truncated
    assert caught.value.errors[-1].line == MAX_ERRORS


def test_mapping_must_name_exactly_one_of_prompt_or_messages(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "a", "messages": []}\n')
    for mapping in (ColumnMapping(), ColumnMapping(prompt="prompt", messages="messages")):
        with pytest.raises(DatasetImportError, match="exactly one of a prompt column or a messages column"):
            read_examples(path, fmt=None, mapping=mapping, limits=Limits(), display_name="x.jsonl")


# ---- Parquet / Hugging Face specific failures (built with the libraries, so made here) ---------------------


def test_parquet_text_column_holding_numbers_is_refused_by_column(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"prompt": [1, 2], "reference": ["a", "b"]}), path)
    with pytest.raises(DatasetImportError) as caught:
        read_examples(
            path,
            fmt=None,
            mapping=ColumnMapping(prompt="prompt", reference="reference"),
            limits=Limits(),
            display_name="t.parquet",
        )
    err = caught.value.errors[0]
    assert (err.line, err.field) == (None, "prompt")
    assert "int64" in err.message


def test_parquet_row_errors_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"prompt": ["fine prompt", None, "  "], "reference": ["a", "b", "c"]}), path)
    with pytest.raises(DatasetImportError) as caught:
        read_examples(
            path, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="t"
        )
    assert [str(e) for e in caught.value.errors] == [
        't, row 2, field "prompt": is empty',
        't, row 3, field "prompt": is blank (only whitespace)',
    ]


def test_parquet_missing_mapped_column_suggests_a_close_name(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"Prompt": ["a"], "reference": ["b"]}), path)
    with pytest.raises(DatasetImportError, match='did you mean "Prompt"'):
        read_examples(
            path, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="t"
        )


def _save_hf(rows: list[dict[str, Any]], folder: Path) -> Path:
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    return folder


@pytest.mark.parametrize("remove", ["state.json", "dataset_info.json", "data"])
def test_hf_folder_missing_files_is_refused(tmp_path: Path, remove: str) -> None:
    folder = _save_hf([{"prompt": "a b c", "reference": "d"}], tmp_path / "hf")
    if remove == "data":
        for arrow in folder.glob("*.arrow"):
            arrow.unlink()
        words = "data file"
    else:
        (folder / remove).unlink()
        words = f"{remove} is missing" if remove != "state.json" else "state.json"
    with pytest.raises(DatasetImportError) as caught:
        read_examples(
            folder, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="hf"
        )
    assert words in caught.value.errors[0].message


def test_hf_folder_row_error_names_the_row(tmp_path: Path) -> None:
    folder = _save_hf([{"prompt": "a b c"}, {"prompt": "d e f"}, {"prompt": ""}], tmp_path / "hf")
    with pytest.raises(DatasetImportError) as caught:
        read_examples(
            folder, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="hf"
        )
    assert str(caught.value.errors[0]) == 'hf, row 3, field "prompt": is empty'


def test_hf_dataset_dict_with_several_splits_is_refused(tmp_path: Path) -> None:
    import datasets

    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list([{"prompt": "a"}]),
            "test": datasets.Dataset.from_list([{"prompt": "b"}]),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DatasetImportError, match="2 splits"):
        read_examples(
            tmp_path / "dd",
            fmt=None,
            mapping=ColumnMapping(prompt="prompt"),
            limits=Limits(),
            display_name="dd",
        )


def test_zip_with_an_escaping_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DatasetImportError, match="unsafe path"):
        read_examples(
            path, fmt=None, mapping=ColumnMapping(prompt="prompt"), limits=Limits(), display_name="e"
        )
    assert not (tmp_path.parent / "outside.txt").exists()


# ---- Good files --------------------------------------------------------------------------------------------

ROWS: list[dict[str, Any]] = [
    {
        "sku": "d-1",
        "facts": "Oak desk, 120 x 60 cm, two drawers",
        "copy": "A solid oak desk, with room to spread out.",
        "tone": "warm",
        "category": "furniture",
        "audience": "home office",
    },
    {
        "sku": "s-2",
        "facts": "Merino scarf, grey, 180 cm\nhand wash",
        "copy": 'Soft, warm and "itch-free", all winter.',
        "tone": "playful",
        "category": "clothing",
        "audience": "adults",
    },
    {
        "sku": "b-3",
        "facts": "Steel bottle, 750 ml, keeps cold 24 h",
        "copy": "",
        "tone": "plain",
        "category": "kitchen",
        "audience": "commuters, hikers",
    },
]
MAPPING = ColumnMapping(
    prompt="facts", reference="copy", label="tone", attributes=["category", "audience"], id="sku"
)


def _write_all_formats(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    out["jsonl"] = tmp_path / "p.jsonl"
    out["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    out["csv"] = tmp_path / "p.csv"
    with open(
        out["csv"], "w", newline="", encoding="utf-8-sig"
    ) as f:  # with BOM and CRLF, as Excel writes it
        w = csv.DictWriter(f, fieldnames=list(ROWS[0]))
        w.writeheader()
        w.writerows(ROWS)
    out["parquet"] = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), out["parquet"])
    out["hf_folder"] = _save_hf(ROWS, tmp_path / "hf")
    out["zip"] = tmp_path / "hf.zip"
    with zipfile.ZipFile(out["zip"], "w") as zf:
        for p in out["hf_folder"].iterdir():
            zf.write(p, f"hf/{p.name}")
    return out


def test_same_content_in_every_format_gives_same_examples_and_hash(tmp_path: Path) -> None:
    parsed = {
        k: read_examples(p, fmt=None, mapping=MAPPING, limits=Limits(), display_name=p.name)
        for k, p in _write_all_formats(tmp_path).items()
    }
    assert {p.fmt for p in parsed.values()} == {"jsonl", "csv", "parquet", "hf_folder"}
    hashes = {p.content_hash for p in parsed.values()}
    assert len(hashes) == 1
    canon = [[e.canonical() for e in p.examples] for p in parsed.values()]
    assert all(c == canon[0] for c in canon)
    first = parsed["jsonl"].examples
    assert first[1].prompt == "Merino scarf, grey, 180 cm\nhand wash"
    assert first[2].reference is None  # empty optional text is absent, the same in every format
    assert first[0].attributes == {"category": "furniture", "audience": "home office"}
    assert [e.external_id for e in first] == ["d-1", "s-2", "b-3"]
    assert [e.source_line for e in parsed["csv"].examples] == [2, 3, 5]  # the scarf's facts span two lines
    assert [e.source_line for e in parsed["parquet"].examples] == [1, 2, 3]


def test_hash_follows_content_and_order() -> None:
    a = Example("p", None, "r", None, {}, 1, None)
    b = Example("q", None, "r", None, {}, 2, None)
    moved = Example("p", None, "r", None, {}, 9, None)
    assert content_hash([a, b]) == content_hash([moved, b])
    assert content_hash([a, b]) != content_hash([b, a])
    assert content_hash([a]) != content_hash([Example("p", None, "r2", None, {}, 1, None)])


def test_number_labels_match_text_labels(tmp_path: Path) -> None:
    j = tmp_path / "l.jsonl"
    j.write_text('{"p": "a b c", "l": 1, "ok": true}\n{"p": "d e f", "l": 2.5, "ok": false}\n')
    c = tmp_path / "l.csv"
    c.write_text("p,l,ok\na b c,1,true\nd e f,2.5,false\n")
    m = ColumnMapping(prompt="p", label="l", attributes=["ok"])
    pj = read_examples(j, fmt=None, mapping=m, limits=Limits(), display_name="j")
    pc = read_examples(c, fmt=None, mapping=m, limits=Limits(), display_name="c")
    assert [e.label for e in pj.examples] == ["1", "2.5"]
    assert pj.content_hash == pc.content_hash


def test_chat_messages_give_prompt_turns_and_reference(tmp_path: Path) -> None:
    conv = [
        {"role": "system", "content": "You write product copy."},
        {"role": "user", "content": "Oak desk"},
        {"role": "assistant", "content": "A solid desk.", "name": "writer"},
    ]
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"messages": conv, "category": "furniture"}) + "\n")
    c = tmp_path / "c.csv"
    with open(c, "w", newline="") as f:
        csv.writer(f).writerows([["messages", "category"], [json.dumps(conv), "furniture"]])
    m = ColumnMapping(messages="messages", attributes=["category"])
    pj = read_examples(j, fmt=None, mapping=m, limits=Limits(), display_name="c.jsonl")
    ex = pj.examples[0]
    assert ex.prompt is None
    assert ex.messages == conv[:2]
    assert ex.reference == "A solid desk."
    assert ex.prompt_text() == "You write product copy.\nOak desk"
    pc = read_examples(c, fmt=None, mapping=m, limits=Limits(), display_name="c.csv")
    assert pc.content_hash == pj.content_hash


def test_chat_without_reference_keeps_all_turns(tmp_path: Path) -> None:
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"messages": [{"role": "user", "content": "Oak desk"}]}) + "\n")
    m = ColumnMapping(messages="messages", reference_from_messages=False)
    ex = read_examples(j, fmt=None, mapping=m, limits=Limits(), display_name="c").examples[0]
    assert (ex.messages, ex.reference) == ([{"role": "user", "content": "Oak desk"}], None)


def test_parquet_chat_column_of_structs(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    conv = [{"role": "user", "content": "Oak desk"}, {"role": "assistant", "content": "A desk."}]
    pq.write_table(pa.Table.from_pylist([{"messages": conv}]), path)
    ex = read_examples(path, fmt=None, mapping=CHAT, limits=Limits(), display_name="c").examples[0]
    assert (ex.messages, ex.reference) == (conv[:1], "A desk.")


def test_example_round_trips_through_dict() -> None:
    ex = Example(None, [{"role": "user", "content": "x"}], "y", "good", {"a": "b"}, 4, "id-1")
    assert Example.from_dict(json.loads(json.dumps(ex.to_dict()))) == ex


# ---- Detection and preview ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "fmt"),
    [
        ("a.jsonl", b'{"x": 1}\n', "jsonl"),
        ("a.csv", b"x,y\n", "csv"),
        ("a.tsv", b"x\ty\n", "csv"),
        ("a.parquet", b"PAR1....", "parquet"),
        ("a.jsonl", b"PAR1....", "parquet"),  # the bytes win over a wrong name
        ("a.zip", b"PK\x03\x04...", "hf_folder"),
        ("upload", b'\xef\xbb\xbf{"x": 1}', "jsonl"),
        ("upload", b"prompt,reference\n", "csv"),
    ],
)
def test_detect_format(name: str, head: bytes, fmt: str) -> None:
    assert detect_format(name, head) == fmt


@pytest.mark.parametrize(
    ("name", "head", "words"),
    [
        ("a.xlsx", b"PK\x03\x04", "Excel"),
        ("a.jsonl.gz", b"\x1f\x8b\x08", "gzip"),
        ("a.json", b'[{"x": 1}]', "JSON array"),
        ("notes", b"just some words", "cannot tell"),
    ],
)
def test_detect_format_refuses(name: str, head: bytes, words: str) -> None:
    with pytest.raises(DatasetImportError, match=words):
        detect_format(name, head)


def test_preview_shows_columns_first_rows_and_a_mapping_guess(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": i, "prompt": "x" * 5000, "output": "y", "category": "c"}) + "\n"
            for i in range(10)
        )
    )
    pv = preview(path, n=3)
    assert pv.columns == ["id", "prompt", "output", "category"]
    assert len(pv.rows) == 3
    assert len(pv.rows[0]["prompt"]) < 1100
    assert (pv.suggested.prompt, pv.suggested.reference, pv.suggested.id) == ("prompt", "output", "id")
    assert pv.suggested.attributes == ["category"]


def test_preview_refuses_unreadable_file() -> None:
    with pytest.raises(DatasetImportError, match="UTF-8"):
        preview(MALFORMED / "utf16.jsonl")
