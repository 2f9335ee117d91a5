"""SFT data: JSONL chat rows -> token ids + labels, and length-grouped, dynamically padded batches.

Rows are TRL's conversational format `{"messages": [{"role": ..., "content": ...}, ...]}`, or prompt/completion
rows `{"prompt": ..., "completion": ...}` where each side is a string or a list of messages.

Labels: the text is rendered with the model's OWN chat template, then every token is masked (-100) except the
assistant replies, each including its end-of-turn token (EOS for ChatML), so the model learns to stop. Locating
the replies works on characters, not tokens: the template is rendered for the conversation up to each reply
(prefix, with the generation prompt) and up to the reply's end, and tokens whose character offsets fall between
the two are labelled. That is exact even when a tokenizer would merge tokens differently at the boundary.

Batching: no padding to a global maximum. Each batch is padded to its own longest row, and rows of similar length
are grouped together (transformers' length-grouped sampling), which is where most of the speed over the plain
`padding="max_length"` recipe comes from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.trainer_pt_utils import get_length_grouped_indices

from trainer.errors import DataError

IGNORE_INDEX = -100
Message = dict[str, str]


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class DataStats:
    """What happened to the rows of one file; `truncated` and `dropped` are shown to the user, never hidden."""

    rows: int = 0
    examples: int = 0  # rows kept
    truncated: int = 0  # kept rows cut to max_seq_len
    dropped: int = 0  # rows with no assistant token left after truncation (nothing to learn from)
    tokens: int = 0
    label_tokens: int = 0
    max_len: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class SFTData:
    examples: list[TokenizedExample]
    stats: DataStats = field(default_factory=DataStats)

    @property
    def lengths(self) -> list[int]:
        return [len(e) for e in self.examples]


def row_to_messages(row: Any, *, line: int | None = None) -> list[Message]:
    """Normalise one JSON row to a list of chat messages."""
    if not isinstance(row, dict):
        raise DataError("each line must be a JSON object", line=line)
    if "messages" in row:
        messages = row["messages"]
    elif "prompt" in row and "completion" in row:
        prompt, completion = row["prompt"], row["completion"]
        prompt_msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        completion_msgs = (
            [{"role": "assistant", "content": completion}] if isinstance(completion, str) else completion
        )
        if not isinstance(prompt_msgs, list) or not isinstance(completion_msgs, list):
            raise DataError("prompt and completion must be strings or lists of messages", line=line)
        messages = prompt_msgs + completion_msgs
    else:
        raise DataError('a row needs "messages", or "prompt" and "completion"', line=line)
    if not isinstance(messages, list) or not messages:
        raise DataError('"messages" must be a non-empty list', line=line)
    for m in messages:
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise DataError('each message needs string "role" and "content"', line=line)
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError("the conversation has no assistant message to learn from", line=line)
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_jsonl(path: Path) -> list[list[Message]]:
    conversations: list[list[Message]] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg})", line=number) from exc
            conversations.append(row_to_messages(row, line=number))
    if not conversations:
        raise DataError(f"{path} has no rows")
    return conversations


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[Message], *, generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert isinstance(text, str)
    return text


def assistant_char_spans(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant replies (end-of-turn markup included)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError("the base model's tokenizer has no chat template; chat SFT needs one")
    full = _render(tokenizer, messages, generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _render(tokenizer, messages[:i], generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1], generation_prompt=False)
        if not (full.startswith(through) and through.startswith(before)):
            # Templates that rewrite earlier turns (e.g. drop past reasoning) are not prefix-stable; then only the
            # final reply can be located reliably, and only if it is the last message.
            if i != len(messages) - 1:
                continue
            before = _render(tokenizer, messages[:i], generation_prompt=True)
            if not full.startswith(before):
                raise DataError("the chat template does not render the conversation prefix-stably")
            through = full
        spans.append((len(before), len(through)))
    return full, spans


def tokenize_conversation(
    tokenizer: PreTrainedTokenizerBase, messages: list[Message], max_seq_len: int
) -> tuple[TokenizedExample, bool]:
    """Token ids and labels for one conversation; the bool says whether it was truncated."""
    text, spans = assistant_char_spans(tokenizer, messages)
    # add_special_tokens=False: the template already wrote every special token (BOS included, if the model uses one).
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(enc["input_ids"])
    offsets: list[tuple[int, int]] = list(enc["offset_mapping"])
    eos_id = tokenizer.eos_token_id
    labels = [IGNORE_INDEX] * len(ids)
    for start, end in spans:
        positions = [k for k, (s, _) in enumerate(offsets) if start <= s < end]
        # Stop labelling at the reply's end-of-turn token: what follows it (ChatML's "\n") is template glue the
        # model never has to produce, since generation stops at EOS.
        eos_positions = [k for k in positions if ids[k] == eos_id]
        if eos_positions:
            positions = [k for k in positions if k <= eos_positions[-1]]
        for k in positions:
            labels[k] = ids[k]
    if (
        eos_id is not None
        and spans
        and not any(ids[k] == eos_id and labels[k] != IGNORE_INDEX for k in range(len(ids)))
    ):
        # A template that does not close replies with EOS: append one so the model still learns to stop.
        ids.append(eos_id)
        labels.append(eos_id)
    truncated = len(ids) > max_seq_len
    if truncated:
        ids, labels = ids[:max_seq_len], labels[:max_seq_len]
    return TokenizedExample(input_ids=ids, labels=labels), truncated


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerBase, conversations: list[list[Message]], max_seq_len: int
) -> SFTData:
    stats = DataStats(rows=len(conversations))
    examples: list[TokenizedExample] = []
    for messages in conversations:
        example, truncated = tokenize_conversation(tokenizer, messages, max_seq_len)
        n_labels = sum(1 for t in example.labels if t != IGNORE_INDEX)
        if n_labels == 0:
            stats.dropped += 1
            continue
        stats.truncated += int(truncated)
        stats.tokens += len(example)
        stats.label_tokens += n_labels
        stats.max_len = max(stats.max_len, len(example))
        examples.append(example)
    stats.examples = len(examples)
    return SFTData(examples=examples, stats=stats)


def load_sft_file(path: Path, tokenizer: PreTrainedTokenizerBase, max_seq_len: int) -> SFTData:
    data = tokenize_conversations(tokenizer, read_jsonl(path), max_seq_len)
    if not data.examples:
        raise DataError(
            f"{Path(path).name}: no usable rows (all {data.stats.rows} lost their assistant reply to truncation at "
            f"max_seq_len={max_seq_len})"
        )
    return data


def epoch_batches(
    lengths: list[int], batch_size: int, *, seed: int, epoch: int, group_by_length: bool = True
) -> list[list[int]]:
    """The batches (lists of example indices) of one epoch, a pure function of (seed, epoch) so a resumed run
    replays exactly the same order."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if group_by_length and len(lengths) > batch_size:
        order = get_length_grouped_indices(lengths, batch_size, generator=generator)
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        # get_length_grouped_indices keeps mega-batches in sequence; shuffling the batches themselves stops the
        # model from seeing long-then-short runs in a fixed pattern. The biggest batch stays first so an
        # out-of-memory error shows up at step 1, not hours in.
        rest = batches[1:]
        perm = torch.randperm(len(rest), generator=generator).tolist()
        return [batches[0]] + [rest[p] for p in perm]
    order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def steps_per_epoch(num_examples: int, batch_size: int, grad_accum: int) -> int:
    return max(1, math.ceil(math.ceil(num_examples / batch_size) / grad_accum))


def collate(
    examples: list[TokenizedExample], pad_token_id: int, *, pad_to: int | None = None
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest row in the batch (or to `pad_to`, which only the baseline benchmark uses)."""
    width = max(len(e) for e in examples) if pad_to is None else pad_to
    n = len(examples)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example)
        input_ids[row, :length] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, :length] = torch.tensor(example.labels, dtype=torch.long)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
