"""Training-data formats of feedback exports, written as streams (one record in memory at a time).

Records follow TRL's conversational formats, so an export loads with `datasets.load_dataset("json", ...)` and
trains with TRL's SFTTrainer / DPOTrainer without any conversion:
- SFT:        {"messages": [{"role": "system"|"user"|"assistant", "content": ...}, ...]}
- preference: {"prompt": [messages...], "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}
Every record may carry extra provenance keys (e.g. "source"); TRL ignores unknown columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

Message = dict[str, str]


def sft_record(prompt: list[Message], completion: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [*prompt, {"role": "assistant", "content": completion}], **extra}


def preference_record(prompt: list[Message], chosen: str, rejected: str, **extra: Any) -> dict[str, Any]:
    if chosen == rejected:
        raise ValueError("a preference pair needs different chosen and rejected texts")
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
        **extra,
    }


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> int:
    """Stream records to a JSONL file; returns how many were written. Written to a temp name, then renamed."""
    tmp = path.with_suffix(path.suffix + ".part")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False))
            fh.write("\n")
            count += 1
    tmp.replace(path)
    return count


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def jsonl_to_parquet(jsonl: Path, out: Path, *, batch_rows: int = 50_000) -> int:
    """Convert in batches so a million-row export never sits in memory as Python objects at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    total = 0
    batch: list[dict[str, Any]] = []
    tmp = out.with_suffix(out.suffix + ".part")
    try:
        for record in iter_jsonl(jsonl):
            batch.append(record)
            if len(batch) >= batch_rows:
                table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                total += len(batch)
                batch = []
        if batch or writer is None:
            table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            total += len(batch)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(out)
    return total


def jsonl_to_hf_folder(jsonl: Path, out_dir: Path) -> int:
    """A Hugging Face `datasets` folder (`save_to_disk`), loadable with `datasets.load_from_disk`."""
    from datasets import load_dataset

    dataset = load_dataset("json", data_files=str(jsonl), split="train")
    dataset.save_to_disk(str(out_dir))
    return len(dataset)
