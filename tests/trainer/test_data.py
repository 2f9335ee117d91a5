from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from trainer.data import (
    IGNORE_INDEX,
    collate,
    epoch_batches,
    load_sft_file,
    read_jsonl,
    tokenize_conversation,
)
from trainer.errors import DataError
from trainer.models import ModelSource, load_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Describe a mug."},
    {"role": "assistant", "content": "A sturdy mug."},
    {"role": "user", "content": "Shorter."},
    {"role": "assistant", "content": "Mug."},
]


@pytest.fixture(scope="module")
def tiny_tok(tiny_source: ModelSource, tmp_path_factory: pytest.TempPathFactory):
    return load_tokenizer(tiny_source, tmp_path_factory.mktemp("cache"))


def _labelled_text(tok, example) -> str:
    return tok.decode([t for t, l in zip(example.input_ids, example.labels) if l != IGNORE_INDEX])


def _check_assistant_only_labels(tok) -> None:
    example, truncated = tokenize_conversation(tok, CONVERSATION, 512)
    assert not truncated
    # Loss only on the replies, each ending with the end-of-turn token, so the model learns to stop.
    assert _labelled_text(tok, example) == "A sturdy mug.<|im_end|>Mug.<|im_end|>"
    eos_positions = [i for i, t in enumerate(example.input_ids) if t == tok.eos_token_id]
    labelled_eos = [i for i in eos_positions if example.labels[i] == tok.eos_token_id]
    assert len(labelled_eos) == 2 and len(eos_positions) == 5  # system/user turns' EOS stay masked
    assert tok.pad_token_id != tok.eos_token_id
    # The whole sequence is the model's own chat template, token for token.
    assert (
        example.input_ids
        == tok.apply_chat_template(CONVERSATION, tokenize=True, return_dict=True)["input_ids"]
    )


def test_labels_cover_only_assistant_replies_and_their_eos(tiny_tok) -> None:
    _check_assistant_only_labels(tiny_tok)


@pytest.mark.slow
def test_labels_with_the_real_smollm2_template(demo_source: ModelSource, model_cache_dir: Path) -> None:
    tok = load_tokenizer(demo_source, model_cache_dir)
    assert tok.pad_token_id != tok.eos_token_id
    _check_assistant_only_labels(tok)


def test_eos_label_survives_batching_while_padding_is_ignored(tiny_tok) -> None:
    long, _ = tokenize_conversation(tiny_tok, CONVERSATION, 512)
    short, _ = tokenize_conversation(tiny_tok, CONVERSATION[1:3], 512)
    batch = collate([long, short], tiny_tok.pad_token_id)
    row = batch["labels"][1]
    n = len(short)
    assert batch["input_ids"].shape[1] == len(long), "padded to the batch's longest row, not a global maximum"
    assert row[n - 2].item() == tiny_tok.eos_token_id  # reply's <|im_end|> is learned ...
    assert row[n - 1].item() == IGNORE_INDEX  # ... the "\n" glue after it is not
    assert (row[n:] == IGNORE_INDEX).all() and (batch["attention_mask"][1, n:] == 0).all()
    assert (batch["input_ids"][1, n:] == tiny_tok.pad_token_id).all()


def test_prompt_completion_rows_equal_their_messages_form(tmp_path: Path, tiny_tok) -> None:
    path = tmp_path / "pc.jsonl"
    path.write_text(
        json.dumps({"prompt": "Describe a mug.", "completion": "A sturdy mug."})
        + "\n"
        + json.dumps(
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "completion": [{"role": "assistant", "content": "Hello!"}],
            }
        )
        + "\n"
    )
    rows = read_jsonl(path)
    assert rows[0] == [
        {"role": "user", "content": "Describe a mug."},
        {"role": "assistant", "content": "A sturdy mug."},
    ]
    data = load_sft_file(path, tiny_tok, 512)
    assert _labelled_text(tiny_tok, data.examples[1]) == "Hello!<|im_end|>"


def test_truncation_is_counted_and_reply_less_rows_are_dropped(tmp_path: Path, tiny_tok) -> None:
    path = tmp_path / "long.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "word " * 200}]},
        {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "ok"}]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_sft_file(path, tiny_tok, 64)
    assert data.stats.rows == 3
    assert data.stats.truncated == 1  # the long reply, cut but still useful
    assert data.stats.dropped == 1  # the long prompt left no reply tokens
    assert data.stats.examples == 2 and all(len(e) <= 64 for e in data.examples)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "invalid JSON"),
        (json.dumps({"text": "hi"}), '"messages"'),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "no assistant"),
        (json.dumps({"messages": [{"role": "user"}]}), "role"),
    ],
)
def test_bad_rows_are_reported_with_their_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    ok = json.dumps({"prompt": "a", "completion": "b"})
    path.write_text(f"{ok}\n{line}\n")
    with pytest.raises(DataError, match=message) as info:
        read_jsonl(path)
    assert info.value.line == 2


def test_epoch_order_is_deterministic_complete_and_length_grouped() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(10, 400) for _ in range(256)]
    a = epoch_batches(lengths, 8, seed=3, epoch=1)
    assert a == epoch_batches(lengths, 8, seed=3, epoch=1)
    assert a != epoch_batches(lengths, 8, seed=3, epoch=2)
    assert sorted(i for b in a for i in b) == list(range(256))

    def padded_tokens(batches: list[list[int]]) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    shuffled = epoch_batches(lengths, 8, seed=3, epoch=1, group_by_length=False)
    assert sorted(i for b in shuffled for i in b) == list(range(256))
    assert padded_tokens(a) < 0.8 * padded_tokens(shuffled)
