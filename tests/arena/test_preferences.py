"""Reading preference files: the three record shapes, the recovered prompt, and errors that name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalhub.arena.preferences import (
    Limits,
    PreferenceImportError,
    parse_preferences,
    split_transcript,
    transcript_turns,
)

HH_CHOSEN = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: Six, of course."
HH_REJECTED = "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant: Six? I think 7."


def write(tmp_path: Path, lines: list[object | str], name: str = "prefs.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def errors_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(PreferenceImportError) as info:
        parse_preferences(path, **kw)  # type: ignore[arg-type]
    return [str(e) for e in info.value.errors]


def test_prompt_is_cut_at_the_last_assistant_turn_not_at_the_first_differing_character() -> None:
    prompt, chosen, rejected = split_transcript(HH_CHOSEN, HH_REJECTED)
    assert prompt == "\n\nHuman: What is 2+2?\n\nAssistant: 4.\n\nHuman: And 3+3?\n\nAssistant:"
    # Both replies start with "Six": a character-level prefix would have eaten it.
    assert (chosen, rejected) == ("Six, of course.", "Six? I think 7.")
    assert prompt + " " + chosen == HH_CHOSEN and prompt + " " + rejected == HH_REJECTED
    assert transcript_turns(prompt) == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3?"},
    ]


def test_agrees_with_trl_extract_prompt_when_replies_differ_from_their_first_character() -> None:
    from trl.data_utils import extract_prompt

    chosen = "\n\nHuman: Name a colour.\n\nAssistant: Blue."
    rejected = "\n\nHuman: Name a colour.\n\nAssistant: No."
    ref = extract_prompt({"chosen": chosen, "rejected": rejected})
    prompt, c, r = split_transcript(chosen, rejected)
    assert prompt == ref["prompt"]
    assert (c, r) == (ref["chosen"].lstrip(" "), ref["rejected"].lstrip(" "))


def test_three_record_shapes_and_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, [
        {"prompt": "Describe the oak shelf.", "chosen": "Solid oak, oiled.", "rejected": "A shelf.", "category": "home"},
        {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
         "rejected": [{"role": "assistant", "content": "What."}]},
        "",
        {"chosen": HH_CHOSEN, "rejected": HH_REJECTED, "source": "hh", "id": 17},
    ])
    explicit, conversational, transcript = parse_preferences(path)
    assert (explicit.format, explicit.prompt, explicit.chosen, explicit.rejected) == (
        "explicit", "Describe the oak shelf.", "Solid oak, oiled.", "A shelf.")
    assert explicit.attributes == {"category": "home"}
    assert conversational.format == "conversational"
    assert conversational.messages == [{"role": "user", "content": "Hi"}]
    assert (conversational.chosen, conversational.rejected) == ("Hello!", "What.")
    assert transcript.format == "transcript" and transcript.line == 4  # the blank line 3 is skipped, lines still count
    assert transcript.chosen == "Six, of course." and transcript.attributes == {"source": "hh", "id": "17"}


@pytest.mark.parametrize(("lines", "expected"), [
    ([{"prompt": "p", "chosen": "a"}], 'prefs.jsonl, line 1, field "rejected": is missing'),
    ([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "rejected": "b"}],
     'prefs.jsonl, line 2, field "chosen": is missing'),
    ([{"prompt": "p", "chosen": "same", "rejected": "same"}],
     'prefs.jsonl, line 1, field "rejected": is identical to "chosen"'),
    ([{"chosen": HH_CHOSEN, "rejected": HH_CHOSEN}], 'prefs.jsonl, line 1, field "rejected": is identical to "chosen"'),
    ([{"prompt": "p", "chosen": " ", "rejected": "b"}], 'prefs.jsonl, line 1, field "chosen": is blank'),
    ([{"prompt": "p", "chosen": 3, "rejected": "b"}], 'prefs.jsonl, line 1, field "chosen": must be text'),
    (['{"prompt": "p", "chosen": "a", "rejected": "b"'], "prefs.jsonl, line 1: is not valid JSON"),
    (["[1, 2]"], "prefs.jsonl, line 1: expected a JSON object"),
    ([{"prompt": "p", "chosen": "a\u0000", "rejected": "b"}], 'prefs.jsonl, line 1, field "chosen": contains a NUL'),
    ([{"chosen": "I like tea.", "rejected": "I like coffee."}],
     'prefs.jsonl, line 1, field "chosen": the two transcripts share no "Assistant:" turn'),
    ([{"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello", "rejected": [{"role": "assistant", "content": "x"}]}],
     "prefs.jsonl, line 1: mixes text and message lists"),
    ([{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "user", "content": "a"}],
       "rejected": [{"role": "assistant", "content": "b"}]}],
     'prefs.jsonl, line 1, field "chosen": must contain only assistant messages'),
    ([{"prompt": [{"role": "wizard", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "a"}],
       "rejected": [{"role": "assistant", "content": "b"}]}],
     'prefs.jsonl, line 1, field "prompt": message 1 has role "wizard"'),
    ([], "prefs.jsonl: the file holds no records"),
])
def test_bad_records_are_named_by_file_line_and_field(tmp_path: Path, lines: list[object], expected: str) -> None:
    errors = errors_of(write(tmp_path, lines))
    assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_is_listed_and_good_lines_do_not_hide_them(tmp_path: Path) -> None:
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    path = write(tmp_path, [good, {"prompt": "p", "chosen": "a"}, good, {"chosen": "x", "rejected": "x"}, good])
    errors = errors_of(path, display_name="upload.jsonl")
    assert [e.split(":")[0] for e in errors] == ['upload.jsonl, line 2, field "rejected"',
                                                 'upload.jsonl, line 4, field "rejected"']


def test_not_utf8_and_nul_bytes_and_too_many_records(tmp_path: Path) -> None:
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    assert errors_of(latin)[0].startswith("latin.jsonl, line 1: is not valid UTF-8")
    nul = tmp_path / "nul.jsonl"
    nul.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p\x00"}\n')
    assert errors_of(nul)[0].startswith("nul.jsonl, line 2: contains a NUL byte")
    many = write(tmp_path, [{"prompt": "p", "chosen": "a", "rejected": f"b{i}"} for i in range(4)], "many.jsonl")
    assert "more than 3 records" in errors_of(many, limits=Limits(max_records=3))[0]
    long = write(tmp_path, [{"prompt": "p", "chosen": "a" * 50, "rejected": "b"}], "long.jsonl")
    assert "50 characters long; the limit is 10" in errors_of(long, limits=Limits(max_field_chars=10))[0]
