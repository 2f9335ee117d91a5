"""Checks on the demo project's product-description data (evalhub/demo/data/products.jsonl).

Plain pytest, no database: the file is read as the importer will read it, and every row is held to the
promises its README makes (schema, balance, references that stick to the given facts, the planted
near-duplicates and nothing else that looks like one).
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from functools import cache
from importlib import resources
from pathlib import Path

import pytest

KEYS = {"id", "category", "audience", "material", "tone", "prompt", "reference"}
TONES = {"playful", "premium", "practical"}
# Rows whose reference may leave out the literal material name because naming it reads badly.
# Kept empty on purpose: every reference in the file names its material.
MATERIAL_EXCEPTIONS: frozenset[str] = frozenset()
# The same product listed twice with slightly different wording, planted for the quality report.
NEAR_DUPLICATES = {frozenset({"p014", "p171"}), frozenset({"p032", "p183"}), frozenset({"p130", "p157"})}
CLICHES = (
    "elevate your",
    "look no further",
    "game-changer",
    "game changer",
    "must-have",
    "unleash",
    "next level",
    "state-of-the-art",
    "boasts",
)
# Digits with optional decimal or thousands parts: "1.5", "10,000", "18/8" -> "18", "8".
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]")


def data_dir() -> Path:
    return Path(str(resources.files("evalhub.demo"))) / "data"


@cache
def rows() -> tuple[dict[str, str], ...]:
    text = (data_dir() / "products.jsonl").read_bytes().decode("utf-8")
    return tuple(json.loads(line) for line in text.splitlines())


def prompt_field(prompt: str, label: str) -> str:
    match = re.search(rf"^{label}: (.+)$", prompt, flags=re.MULTILINE)
    assert match, f"prompt has no {label!r} line"
    return match.group(1).strip()


def facts(prompt: str) -> list[str]:
    block = prompt.split("Key facts:\n", 1)[1].split("\nTone:", 1)[0]
    return [line[2:] for line in block.splitlines() if line.startswith("- ")]


def prompt_body(prompt: str) -> str:
    # The first line is the instruction ("60-90 words"); its numbers are no product facts.
    return prompt.split("\n", 1)[1]


def words(text: str) -> int:
    return len(text.split())


def shingles(text: str, size: int = 3) -> set[tuple[str, ...]]:
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def test_every_line_is_a_json_object_with_exactly_the_schema_keys() -> None:
    raw = (data_dir() / "products.jsonl").read_bytes()
    lines = raw.decode("utf-8").splitlines()
    assert raw.endswith(b"\n")
    for number, line in enumerate(lines, 1):
        assert line.strip(), f"line {number} is blank"
        row = json.loads(line)
        assert isinstance(row, dict), f"line {number} is not an object"
        assert set(row) == KEYS, f"line {number}: keys {sorted(row)}"
        assert all(isinstance(v, str) and v.strip() for v in row.values()), f"line {number}: empty field"


def test_there_are_at_least_180_rows_with_unique_sequential_ids() -> None:
    ids = [r["id"] for r in rows()]
    assert len(ids) >= 180
    assert len(set(ids)) == len(ids)
    assert ids == [f"p{i:03d}" for i in range(1, len(ids) + 1)]


def test_tones_are_the_three_brand_voices() -> None:
    assert {r["tone"] for r in rows()} == TONES


def test_at_least_six_categories_have_ten_rows_and_balance_is_uneven() -> None:
    counts = Counter(r["category"] for r in rows())
    assert sum(1 for n in counts.values() if n >= 10) >= 6
    # Real catalogues are uneven; a perfectly balanced file would make per-category slices too tidy.
    assert max(counts.values()) >= 2 * min(counts.values())


def test_columns_agree_with_what_the_prompt_tells_the_model() -> None:
    for r in rows():
        assert prompt_field(r["prompt"], "Category") == r["category"], r["id"]
        assert prompt_field(r["prompt"], "Audience") == r["audience"], r["id"]
        assert prompt_field(r["prompt"], "Tone") == r["tone"], r["id"]
        assert prompt_field(r["prompt"], "Product"), r["id"]


def test_each_prompt_gives_three_to_six_facts_including_the_material() -> None:
    for r in rows():
        given = facts(r["prompt"])
        assert 3 <= len(given) <= 6, (r["id"], len(given))
        assert any(r["material"].lower() in fact.lower() for fact in given), r["id"]


def test_reference_length_is_40_to_110_words_and_within_the_range_the_prompt_asks_for() -> None:
    for r in rows():
        n = words(r["reference"])
        assert 40 <= n <= 110, (r["id"], n)
        low, high = map(int, re.search(r"\((\d+)-(\d+) words\)", r["prompt"]).groups())
        assert low <= n <= high, (r["id"], n, low, high)


def test_each_reference_names_its_material() -> None:
    missing = [
        r["id"]
        for r in rows()
        if r["id"] not in MATERIAL_EXCEPTIONS and r["material"].lower() not in r["reference"].lower()
    ]
    assert missing == []


def test_every_number_in_a_reference_appears_in_its_prompt() -> None:
    invented = {}
    for r in rows():
        given = set(NUMBER.findall(prompt_body(r["prompt"])))
        extra = [n for n in NUMBER.findall(r["reference"]) if n not in given]
        if extra:
            invented[r["id"]] = extra
    assert invented == {}


def test_references_avoid_cliches_emojis_and_exclamation_spam() -> None:
    for r in rows():
        text = r["reference"]
        assert not [c for c in CLICHES if c in text.lower()], r["id"]
        assert not EMOJI.search(text), r["id"]
        assert text.count("!") <= 1, r["id"]


def test_only_the_planted_pairs_are_near_duplicates_and_the_readme_names_them() -> None:
    by_id = {r["id"]: shingles(prompt_body(r["prompt"]) + " " + r["reference"]) for r in rows()}
    found = set()
    for a, b in itertools.combinations(by_id, 2):
        union = by_id[a] | by_id[b]
        if len(by_id[a] & by_id[b]) / len(union) >= 0.2:
            found.add(frozenset({a, b}))
    assert found == NEAR_DUPLICATES
    readme = (data_dir() / "README.md").read_text(encoding="utf-8")
    for pair in NEAR_DUPLICATES:
        for row_id in pair:
            assert row_id in readme


@pytest.mark.parametrize("pair", sorted(sorted(p) for p in NEAR_DUPLICATES))
def test_planted_duplicates_describe_the_same_product(pair: list[str]) -> None:
    first, second = (next(r for r in rows() if r["id"] == i) for i in pair)
    for key in ("category", "audience", "material", "tone"):
        assert first[key] == second[key]
    assert first["prompt"] != second["prompt"]
    assert first["reference"] != second["reference"]
