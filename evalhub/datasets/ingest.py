"""Read an uploaded dataset file into validated, normalised examples.

Django-free on purpose: the datasets app calls `read_examples` from a service or a job and stores what it
returns. Every problem found raises `DatasetImportError` carrying all errors seen (up to `MAX_ERRORS`), each
naming file, line (or row) and field; nothing is returned on any error, so the caller imports nothing and the
import is all-or-nothing.

Formats: JSON Lines, CSV (or TSV by extension), Parquet, and a folder written by Hugging Face
`datasets.Dataset.save_to_disk` (also as a .zip of that folder).
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import difflib
import hashlib
import json
import math
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

Format = Literal["jsonl", "csv", "parquet", "hf_folder"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet", "hf_folder")
ROLES: tuple[str, ...] = ("system", "user", "assistant")
MiB = 1024 * 1024
# Enough for a user to fix many problems in one go, few enough that a hopeless file fails fast.
MAX_ERRORS = 50
# Bumping this changes every content hash; do it only when the canonical form of an example changes.
_HASH_VERSION = b"evalhub-examples-v1\n"
_HEAD_BYTES = 8192


# ------------------------------------------------------------------------------------------------------------
# Public data types


@dataclass
class ColumnMapping:
    """Which source column plays which role. Exactly one of `prompt` / `messages` is required.

    `messages` names a column holding a chat conversation: a list of {"role", "content"} objects (in CSV, that
    list as JSON text). When `messages` is used and `reference` is not, the reference is taken from the
    conversation's last turn, which must then be from the assistant; set `reference_from_messages=False` for
    prompt-only chat data.
    """

    prompt: str | None = None
    messages: str | None = None
    reference: str | None = None
    label: str | None = None
    attributes: list[str] = field(default_factory=list)
    id: str | None = None
    reference_from_messages: bool = True

    def problems(self) -> list[str]:
        """What is wrong with the mapping itself (before any file is read); empty when it is usable."""
        out: list[str] = []
        if bool(self.prompt) == bool(self.messages):
            out.append("map exactly one of a prompt column or a messages column")
        roles = {"prompt": self.prompt, "messages": self.messages, "reference": self.reference, "id": self.id}
        used: dict[str, str] = {}
        for role, col in roles.items():
            if not col:
                continue
            if col in used:
                out.append(f'column "{col}" is mapped both as {used[col]} and as {role}')
            used[col] = role
        seen: set[str] = set()
        for col in self.attributes:
            if not col:
                out.append("an attribute column name is empty")
            elif col in seen:
                out.append(f'attribute column "{col}" is listed twice')
            seen.add(col)
        return out

    def source_columns(self) -> list[str]:
        cols = [self.prompt, self.messages, self.reference, self.label, self.id, *self.attributes]
        return list(dict.fromkeys(c for c in cols if c))


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * MiB
    max_rows: int = 1_000_000
    max_field_chars: int = 100_000


@dataclass(frozen=True)
class RowError:
    """One problem. `line` is a physical line (JSONL, CSV) or a 1-based row number (Parquet, HF:
    `unit="row"`)."""

    file: str
    line: int | None
    field: str | None
    message: str
    unit: Literal["line", "row"] = "line"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", {self.unit} {self.line}"
        if self.field is not None:
            where += f', field "{self.field}"'
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "unit": self.unit,
            "text": str(self),
        }


class DatasetImportError(Exception):
    """The file cannot be imported. `errors` lists every problem found, up to MAX_ERRORS (then
    `truncated`)."""

    def __init__(self, errors: list[RowError], *, truncated: bool = False) -> None:
        self.errors = list(errors)
        self.truncated = truncated
        shown = "; ".join(str(e) for e in self.errors[:3])
        more = len(self.errors) - 3
        tail = f" (and {more} more{'+' if truncated else ''})" if more > 0 else ""
        super().__init__(f"{len(self.errors)} problem(s): {shown}{tail}")


@dataclass(frozen=True, slots=True)
class Example:
    """One normalised example. `messages` (chat) excludes the reference turn; `source_line` is not content."""

    prompt: str | None
    messages: list[dict[str, str]] | None
    reference: str | None
    label: str | None
    attributes: dict[str, str]
    source_line: int
    external_id: str | None

    def canonical(self) -> dict[str, Any]:
        """The content that identifies the example (what the content hash covers)."""
        return {
            "prompt": self.prompt,
            "messages": self.messages,
            "reference": self.reference,
            "label": self.label,
            "attributes": self.attributes,
            "external_id": self.external_id,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.canonical(), "source_line": self.source_line}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        return cls(
            prompt=d.get("prompt"),
            messages=d.get("messages"),
            reference=d.get("reference"),
            label=d.get("label"),
            attributes=dict(d.get("attributes") or {}),
            source_line=int(d.get("source_line") or 0),
            external_id=d.get("external_id"),
        )

    def prompt_text(self) -> str:
        """The prompt as plain text: the prompt itself, or the chat turns joined (for dedup and
        statistics)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(m["content"] for m in self.messages or ())


@dataclass
class Preview:
    columns: list[str]
    rows: list[dict[str, Any]]
    fmt: str = ""
    suggested: ColumnMapping = field(default_factory=ColumnMapping)


@dataclass
class ParsedDataset:
    examples: list[Example]
    columns: list[str]
    content_hash: str
    n_rows: int
    fmt: str


def content_hash(examples: Iterable[Example]) -> str:
    """sha256 over the canonical JSON of the examples, in order; independent of the source format and line
    numbers."""
    h = hashlib.sha256(_HASH_VERSION)
    for ex in examples:
        h.update(
            json.dumps(ex.canonical(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        )
        h.update(b"\n")
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------------------
# Errors plumbing


class _Stop(Exception):
    """Raised inside readers to end reading: a fatal file-level error, or too many errors collected."""


class _Collector:
    def __init__(self, file: str, unit: Literal["line", "row"] = "line") -> None:
        self.file = file
        self.unit: Literal["line", "row"] = unit
        self.errors: list[RowError] = []
        self.truncated = False

    def add(self, line: int | None, field: str | None, message: str) -> None:
        if len(self.errors) >= MAX_ERRORS:
            self.truncated = True
            raise _Stop
        self.errors.append(RowError(self.file, line, field, message, self.unit))

    def fatal(self, line: int | None, field: str | None, message: str) -> NoReturn:
        self.errors.append(RowError(self.file, line, field, message, self.unit))
        raise _Stop

    def raise_if_any(self) -> None:
        if self.errors:
            raise DatasetImportError(self.errors, truncated=self.truncated)


def _fail(
    file: str, message: str, *, line: int | None = None, field: str | None = None
) -> DatasetImportError:
    return DatasetImportError([RowError(file, line, field, message)])


def _type_name(v: Any) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float, decimal.Decimal)):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (bytes, bytearray)):
        return "binary data"
    return f"a value of type {type(v).__name__}"


def _fmt_size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n:,} bytes"


# ------------------------------------------------------------------------------------------------------------
# Format detection


_EXT: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".zip": "hf_folder",
}
_UNSUPPORTED: dict[str, str] = {
    ".xlsx": "Excel workbooks",
    ".xls": "Excel workbooks",
    ".gz": "gzip archives",
    ".arrow": "bare Arrow files",
    ".txt": "plain text files",
}


def detect_format(filename: str, head_bytes: bytes) -> str:
    """Guess the format from the file's first bytes and name. Raises DatasetImportError when it can't.

    Magic numbers win over the extension (a Parquet file named .jsonl is read as Parquet); a zip is taken to
    be a zipped `save_to_disk` folder. A directory should be passed through `detect_path_format`.
    """
    name = Path(filename).name
    suffix = Path(filename).suffix.lower()
    if head_bytes.startswith(b"PAR1"):
        return "parquet"
    if head_bytes.startswith(b"\x1f\x8b"):
        raise _fail(name, "this is a gzip-compressed file; upload it uncompressed")
    if head_bytes.startswith(b"PK\x03\x04") and suffix not in _UNSUPPORTED:
        return "hf_folder"
    if suffix in _UNSUPPORTED:
        raise _fail(
            name,
            f"{_UNSUPPORTED[suffix]} are not supported; upload JSON Lines, CSV, Parquet or a "
            "Hugging Face dataset folder",
        )
    if suffix in _EXT:
        fmt = _EXT[suffix]
        if fmt == "jsonl" and head_bytes.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            raise _fail(name, "the file holds one JSON array; JSON Lines (one object per line) is expected")
        return fmt
    text = head_bytes.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{"):
        return "jsonl"
    first_line = text.split(b"\n", 1)[0]
    if b"," in first_line or b"\t" in first_line:
        return "csv"
    raise _fail(
        name, "cannot tell the file's format; use .jsonl, .csv, .parquet or a Hugging Face dataset folder"
    )


def detect_path_format(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        return "hf_folder"
    with open(path, "rb") as f:
        return detect_format(path.name, f.read(_HEAD_BYTES))


def suggest_mapping(columns: list[str]) -> ColumnMapping:
    """A first guess for the mapping form from common column names; the user confirms or changes it."""
    lower = {c.lower(): c for c in columns}

    def pick(*names: str) -> str | None:
        return next((lower[n] for n in names if n in lower), None)

    messages = pick("messages", "conversation", "conversations", "chat")
    prompt = (
        None if messages else pick("prompt", "instruction", "input", "question", "query", "source", "text")
    )
    reference = pick(
        "reference", "output", "response", "answer", "completion", "target", "description", "chosen"
    )
    label = pick("label", "labels", "class", "rating")
    ident = pick("id", "uid", "uuid", "example_id", "sku")
    taken = {prompt, messages, reference, label, ident}
    attrs = [
        c
        for c in columns
        if c not in taken
        and c.lower()
        in {
            "category",
            "audience",
            "language",
            "lang",
            "locale",
            "topic",
            "domain",
            "source",
            "split",
            "tone",
        }
    ]
    return ColumnMapping(
        prompt=prompt, messages=messages, reference=reference, label=label, attributes=attrs, id=ident
    )


# ------------------------------------------------------------------------------------------------------------
# Text files: encoding checks before parsing


def _scan_text_file(path: Path, col: _Collector, declared_fmt: str) -> None:
    """Reject files that are not UTF-8 text, naming the first bad line; one error per kind of problem."""
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        col.fatal(None, None, "the file is empty")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head):
        col.fatal(None, None, "the file is UTF-16 encoded; save it as UTF-8")
    for magic, what in (
        (b"PAR1", "a Parquet file"),
        (b"PK\x03\x04", "a zip archive"),
        (b"\x1f\x8b", "gzip data"),
    ):
        if head.startswith(magic):
            col.fatal(None, None, f"this is {what}, not {declared_fmt.upper()} text")
    if _looks_binary(head):
        col.fatal(None, None, f"this is binary data, not {declared_fmt.upper()} text (is it the right file?)")
    bad_utf8: list[tuple[int, str]] = []
    nul_lines: list[int] = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if b"\x00" in raw:
                nul_lines.append(line_no)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.start + 1].hex()
                bad_utf8.append(
                    (line_no, f"byte 0x{bad} at position {len(raw[: e.start].decode('utf-8')) + 1}")
                )
    if bad_utf8:
        line_no, what = bad_utf8[0]
        more = f"; {len(bad_utf8) - 1} more line(s) are affected" if len(bad_utf8) > 1 else ""
        col.add(
            line_no,
            None,
            f"not valid UTF-8 ({what}; the file looks like Latin-1 or Windows-1252). Save it as UTF-8{more}",
        )
    if nul_lines:
        more = f"; {len(nul_lines) - 1} more line(s) contain one too" if len(nul_lines) > 1 else ""
        col.add(nul_lines[0], None, f"contains a NUL byte (\\x00){more}")
    if col.errors:
        raise _Stop


def _looks_utf16(head: bytes) -> bool:
    sample = head[:1024]
    if len(sample) < 8:
        return False
    even, odd = sample[0::2], sample[1::2]
    # ASCII text in UTF-16 has a zero in every other byte.
    return even.count(0) > 0.4 * len(even) or odd.count(0) > 0.4 * len(odd)


def _looks_binary(head: bytes) -> bool:
    sample = head[:4096]
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if control > 0.05 * len(sample):
        return True
    # Random bytes are almost never valid UTF-8; a text file with a few stray Latin-1 letters mostly is.
    invalid = len(sample) - len(sample.decode("utf-8", errors="ignore").encode())
    return invalid > 0.3 * len(sample)


# ------------------------------------------------------------------------------------------------------------
# Record sources: each yields (line or row number, {column: python value})


class _JsonlSource:
    unit: Literal["line", "row"] = "line"
    strict_columns = False

    def __init__(self, path: Path, col: _Collector) -> None:
        self.path, self.col = path, col
        self.columns: list[str] = []
        self._seen: set[str] = set()

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        with open(self.path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.col.fatal(line_no, None, "not valid UTF-8; save the file as UTF-8")
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
                except _DuplicateKey as e:
                    self.col.add(line_no, e.key, f'the key "{e.key}" appears twice in this object')
                    continue
                except json.JSONDecodeError as e:
                    hint = "; the line looks cut off" if not text.rstrip().endswith("}") else ""
                    self.col.add(line_no, None, f"not valid JSON ({e.msg}, column {e.colno}){hint}")
                    continue
                if not isinstance(obj, dict):
                    self.col.add(line_no, None, f"expected a JSON object ({{...}}), got {_type_name(obj)}")
                    continue
                for k in obj:
                    if k not in self._seen:
                        self._seen.add(k)
                        self.columns.append(k)
                yield line_no, obj


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    return d


class _CsvSource:
    unit: Literal["line", "row"] = "line"
    strict_columns = True

    def __init__(self, path: Path, col: _Collector, limits: Limits) -> None:
        self.path, self.col = path, col
        self.delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        # The csv module's own cap (131,072 chars by default) is process-wide; only ever raise it.
        if csv.field_size_limit() < limits.max_field_chars + 1:
            csv.field_size_limit(limits.max_field_chars + 1)
        # Kept open across the records() generator, which closes it.
        self._file = open(path, encoding="utf-8-sig", errors="strict", newline="")  # noqa: SIM115
        self._reader = csv.reader(self._file, delimiter=self.delimiter, strict=True)
        self.columns = self._read_header()

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader, None)
        except (csv.Error, UnicodeDecodeError) as e:
            self.close()
            self.col.fatal(1, None, f"the header cannot be read: {e}")
        while header == []:  # blank lines before the header
            header = next(self._reader, None)
        if header is None:
            self.close()
            self.col.fatal(None, None, "the file is empty")
        positions: dict[str, list[int]] = {}
        for i, name in enumerate(header, 1):
            positions.setdefault(name, []).append(i)
        for name, where in positions.items():
            if len(where) > 1:
                self.col.add(
                    self._reader.line_num,
                    name or None,
                    f'the header names column "{name}" {len(where)} times (columns '
                    f"{', '.join(map(str, where))}); column names must be unique",
                )
        if self.col.errors:
            self.close()
            raise _Stop
        self.header_line = self._reader.line_num
        return header

    def records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        n = len(self.columns)
        try:
            while True:
                start = self._reader.line_num + 1
                try:
                    row = next(self._reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    msg = str(e)
                    if "field larger than field limit" in msg:
                        self.col.fatal(
                            start,
                            None,
                            "a field in this record is longer than the limit of "
                            f"{csv.field_size_limit() - 1:,} characters",
                        )
                    if "unexpected end of data" in msg:
                        self.col.fatal(
                            start,
                            None,
                            'a quoted field starting in this record is never closed (unterminated ")',
                        )
                    if self._reader.line_num > start:
                        self.col.fatal(
                            start,
                            None,
                            "a quoted field that starts in this record runs on to line "
                            f'{self._reader.line_num}; is a closing quote (") missing?',
                        )
                    self.col.fatal(
                        start,
                        None,
                        f'malformed CSV ({msg}): a quote (") inside a field must be doubled '
                        '("") and the whole field quoted',
                    )
                if not row:
                    continue
                if len(row) != n:
                    self.col.add(
                        start,
                        None,
                        f"has {len(row)} fields but the header has {n}"
                        + (" (a stray comma or an unquoted field?)" if len(row) > n else ""),
                    )
                    continue
                yield start, dict(zip(self.columns, row))
        finally:
            self.close()

    def close(self) -> None:
        self._file.close()


_TEXT_TYPES = ("string", "large_string", "string_view", "null")


class _ArrowSource:
    """Parquet files and `save_to_disk` folders: typed columns, so types are checked once per column."""

    unit: Literal["line", "row"] = "row"
    strict_columns = True

    def __init__(self, columns: list[str], types: dict[str, str], batches: Any) -> None:
        self.columns = columns
        self.types = types
        self._batches = batches  # callable(columns) -> iterator of lists of row dicts

    def records(self, wanted: list[str] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        row = 0
        for rows in self._batches(wanted if wanted is not None else self.columns):
            for r in rows:
                row += 1
                yield row, r


def _parquet_source(path: Path, col: _Collector) -> _ArrowSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as e:
        col.fatal(None, None, f"not a valid Parquet file ({e})")
    names = list(schema.names)
    _check_unique(names, col)
    if pf.metadata.num_rows == 0:
        col.fatal(None, None, "the file has columns but no rows")

    def batches(cols: list[str]) -> Iterator[list[dict[str, Any]]]:
        try:
            for batch in pf.iter_batches(batch_size=4096, columns=cols):
                yield batch.to_pylist()
        except (pa.ArrowException, OSError) as e:
            col.fatal(None, None, f"the Parquet data cannot be read ({e})")

    return _ArrowSource(names, {f.name: str(f.type) for f in schema}, batches)


def _check_unique(names: list[str], col: _Collector) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    for n in dup:
        col.add(None, n, f'column "{n}" appears {names.count(n)} times; column names must be unique')
    if dup:
        raise _Stop


def _find_hf_root(folder: Path) -> Path | None:
    for cand in (folder, *sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("__"))):
        if (cand / "state.json").is_file() or (cand / "dataset_dict.json").is_file():
            return cand
    return None


def _check_hf_files(root: Path, col: _Collector) -> None:
    """Name the missing piece ourselves: `load_from_disk`'s own errors are about internals."""
    if (root / "dataset_dict.json").is_file():
        try:
            splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
        except (ValueError, KeyError, TypeError):
            col.fatal(None, None, "dataset_dict.json is unreadable")
        for s in splits:
            if not (root / s).is_dir():
                col.fatal(None, None, f'the folder lists split "{s}" but has no "{s}" folder')
            _check_hf_files(root / s, col)
        return
    for required in ("state.json", "dataset_info.json"):
        if not (root / required).is_file():
            col.fatal(
                None,
                None,
                f"this is not a complete Hugging Face dataset folder: {required} is missing "
                "(save it with Dataset.save_to_disk and upload the whole folder)",
            )
    try:
        state = json.loads((root / "state.json").read_text())
        files = [d["filename"] for d in state["_data_files"]]
    except (ValueError, KeyError, TypeError):
        col.fatal(None, None, "state.json is unreadable")
    for fname in files:
        if not (root / fname).is_file():
            col.fatal(
                None, None, f"this Hugging Face dataset folder is incomplete: data file {fname} is missing"
            )


def _hf_source(folder: Path, col: _Collector) -> _ArrowSource:
    root = _find_hf_root(folder)
    if root is None:
        col.fatal(
            None,
            None,
            "this is not a Hugging Face dataset folder: state.json (or dataset_dict.json) is "
            "missing; save it with Dataset.save_to_disk and upload the whole folder",
        )
    _check_hf_files(root, col)
    import datasets  # heavy; only for this format

    try:
        ds = datasets.load_from_disk(str(root))
    except Exception as e:  # noqa: BLE001 - the library raises many kinds; all mean the folder is unusable
        col.fatal(None, None, f"the Hugging Face dataset folder cannot be loaded ({type(e).__name__}: {e})")
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            col.fatal(None, None, f"the folder holds {len(ds)} splits ({', '.join(ds)}); upload one split")
        ds = next(iter(ds.values()))
    ds = ds.with_format(None)
    if len(ds) == 0:
        col.fatal(None, None, "the dataset has columns but no rows")
    names = list(ds.column_names)
    types = {f.name: str(f.type) for f in ds.data.schema}

    def batches(cols: list[str]) -> Iterator[list[dict[str, Any]]]:
        sub = ds.select_columns(cols)
        for batch in sub.iter(batch_size=4096):
            n = len(next(iter(batch.values()))) if batch else 0
            yield [{c: batch[c][i] for c in cols} for i in range(n)]

    return _ArrowSource(names, types, batches)


def _unzip(path: Path, dest: Path, limits: Limits, col: _Collector) -> Path:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        col.fatal(None, None, f"not a valid zip archive ({e})")
    with zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > limits.max_bytes:
            col.fatal(
                None,
                None,
                f"the archive unpacks to {_fmt_size(total)}; the limit is {_fmt_size(limits.max_bytes)}",
            )
        for info in infos:
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                col.fatal(None, None, f'the archive contains an unsafe path "{info.filename}"')
        try:
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError) as e:
            col.fatal(None, None, f"the zip archive cannot be unpacked ({e})")
    return dest


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# ------------------------------------------------------------------------------------------------------------
# Row validation


class _RowConverter:
    def __init__(
        self, mapping: ColumnMapping, limits: Limits, col: _Collector, *, json_text_messages: bool
    ) -> None:
        self.m = mapping
        self.limits = limits
        self.col = col
        self.json_text_messages = json_text_messages
        self.ids: dict[str, int] = {}

    def _text(self, line: int, name: str, value: Any, *, required: bool) -> tuple[bool, str | None]:
        """(ok, normalised text). Optional text that is empty or blank becomes None."""
        if isinstance(value, float) and math.isnan(value):
            value = None
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.col.add(line, name, "is empty" if not value else "is blank (only whitespace)")
                return False, None
            return True, None
        if not isinstance(value, str):
            self.col.add(line, name, f"expected text, got {_type_name(value)}")
            return False, None
        return self._check_chars(line, name, value), value

    def _check_chars(self, line: int, name: str, value: str, what: str = "") -> bool:
        if len(value) > self.limits.max_field_chars:
            self.col.add(
                line,
                name,
                f"{what}is {len(value):,} characters long; the limit is {self.limits.max_field_chars:,}",
            )
            return False
        if "\x00" in value:
            self.col.add(line, name, f"{what}contains a NUL character (\\u0000)")
            return False
        return True

    def _scalar(self, line: int, name: str, value: Any) -> tuple[bool, str | None]:
        """Labels, attributes and ids: a single value, stored as text (so 3 and "3" are the same label)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True, None
        if isinstance(value, bool):
            return True, "true" if value else "false"
        if isinstance(value, (int, float, decimal.Decimal)):
            return True, str(value)
        if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
            return True, value.isoformat()
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return True, None
            return self._check_chars(line, name, value), value
        self.col.add(line, name, f"expected a single value, got {_type_name(value)}")
        return False, None

    def _messages(
        self, line: int, name: str, value: Any
    ) -> tuple[bool, list[dict[str, str]] | None, str | None]:
        """(ok, prompt turns, reference taken from the last turn)."""
        if self.json_text_messages and isinstance(value, str) and value.strip():
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                self.col.add(
                    line,
                    name,
                    f"expected a JSON list of messages, got text that is not valid JSON "
                    f"({e.msg} at position {e.pos + 1})",
                )
                return False, None, None
        if value is None or value == "" or value == []:
            self.col.add(line, name, "has no messages")
            return False, None, None
        if not isinstance(value, list):
            self.col.add(
                line, name, f'expected a list of messages ({{"role", "content"}}), got {_type_name(value)}'
            )
            return False, None, None
        turns: list[dict[str, str]] = []
        for i, msg in enumerate(value, 1):
            if not isinstance(msg, dict):
                self.col.add(
                    line,
                    name,
                    f'message {i} is {_type_name(msg)}; expected an object with "role" and "content"',
                )
                return False, None, None
            role, content = msg.get("role"), msg.get("content")
            if role is None:
                self.col.add(line, name, f'message {i} has no "role"')
                return False, None, None
            if role not in ROLES:
                shown = f'"{role}"' if isinstance(role, str) else _type_name(role)
                self.col.add(line, name, f"message {i} has role {shown}; expected one of {', '.join(ROLES)}")
                return False, None, None
            if content is None or (isinstance(content, str) and not content.strip()):
                self.col.add(
                    line,
                    name,
                    f'message {i} ({role}) has no "content"'
                    if content is None
                    else f"message {i} ({role}) is empty",
                )
                return False, None, None
            if not isinstance(content, str):
                self.col.add(
                    line, name, f"message {i} ({role}): expected text content, got {_type_name(content)}"
                )
                return False, None, None
            if not self._check_chars(line, name, content, f"message {i} "):
                return False, None, None
            turns.append({"role": role, "content": content})
        reference = None
        if self.m.reference is None and self.m.reference_from_messages:
            if turns[-1]["role"] != "assistant":
                self.col.add(
                    line,
                    name,
                    f'the last message is from "{turns[-1]["role"]}", but the reference is '
                    'taken from the last message, which must be from "assistant"',
                )
                return False, None, None
            reference = turns.pop()["content"]
        if not any(t["role"] == "user" for t in turns):
            self.col.add(line, name, "the conversation has no user message to answer")
            return False, None, None
        if turns[-1]["role"] != "user":
            self.col.add(
                line,
                name,
                f'the prompt turns end with a message from "{turns[-1]["role"]}"; they must '
                "end with the user message the model answers",
            )
            return False, None, None
        return True, turns, reference

    def convert(self, line: int, rec: dict[str, Any]) -> Example | None:
        m = self.m
        ok = True
        # JSON Lines records may leave out optional keys (read as null); the prompt and the id must be there.
        for c in (m.prompt, m.messages, m.id):
            if c and c not in rec:
                self.col.add(line, c, f'the mapped column "{c}" is missing from this record')
                ok = False
        if not ok:
            return None
        prompt = messages = reference = None
        if m.prompt:
            good, prompt = self._text(line, m.prompt, rec[m.prompt], required=True)
            ok &= good
        else:
            assert m.messages
            good, messages, reference = self._messages(line, m.messages, rec[m.messages])
            ok &= good
        if m.reference:
            good, reference = self._text(line, m.reference, rec.get(m.reference), required=False)
            ok &= good
        label = None
        if m.label:
            good, label = self._scalar(line, m.label, rec.get(m.label))
            ok &= good
        attributes: dict[str, str] = {}
        for a in m.attributes:
            good, value = self._scalar(line, a, rec.get(a))
            ok &= good
            attributes[a] = value or ""
        external_id = None
        if m.id:
            good, external_id = self._scalar(line, m.id, rec[m.id])
            ok &= good
            if good and external_id is None:
                self.col.add(line, m.id, "the id is empty")
                ok = False
            elif good and external_id is not None:
                first = self.ids.get(external_id)
                if first is not None:
                    self.col.add(
                        line, m.id, f'duplicate id "{external_id}" (first used on {self.col.unit} {first})'
                    )
                    ok = False
                else:
                    self.ids[external_id] = line
        if not ok:
            return None
        return Example(
            prompt=prompt,
            messages=messages,
            reference=reference,
            label=label,
            attributes=attributes,
            source_line=line,
            external_id=external_id,
        )


def _check_arrow_types(src: _ArrowSource, mapping: ColumnMapping, col: _Collector) -> None:
    for c in (mapping.prompt, mapping.reference):
        if c and c in src.types and src.types[c] not in _TEXT_TYPES:
            col.add(None, c, f"expected a text column, but it holds {src.types[c]} values")
    if mapping.messages and mapping.messages in src.types:
        t = src.types[mapping.messages]
        if not (t.startswith(("list<", "large_list<")) or t in _TEXT_TYPES):
            col.add(None, mapping.messages, f"expected a column of message lists, but it holds {t} values")
    for c in (mapping.label, mapping.id, *mapping.attributes):
        if c and c in src.types and src.types[c].startswith(("struct<", "list<", "large_list<", "map<")):
            col.add(None, c, f"expected single values, but it holds nested {src.types[c]} values")


def _check_columns_present(
    columns: list[str], mapping: ColumnMapping, col: _Collector, line: int | None
) -> None:
    for c in mapping.source_columns():
        if c not in columns:
            close = difflib.get_close_matches(c, columns, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            shown = ", ".join(f'"{x}"' for x in columns[:30])
            col.add(line, c, f'the mapped column "{c}" is not in the file (columns: {shown}){hint}')


# ------------------------------------------------------------------------------------------------------------
# Entry points


def read_examples(
    path: Path,
    *,
    fmt: str | None = None,
    mapping: ColumnMapping,
    limits: Limits = Limits(),
    display_name: str | None = None,
) -> ParsedDataset:
    """Read and validate the whole file. Raises DatasetImportError listing every problem; returns only if
    none."""
    path = Path(path)
    name = display_name or path.name
    problems = mapping.problems()
    if problems:
        raise DatasetImportError([RowError(name, None, None, f"column mapping: {p}") for p in problems])
    if not path.exists():
        raise _fail(name, "the file does not exist")
    size = _size_of(path)
    if size > limits.max_bytes:
        raise _fail(name, f"the file is {_fmt_size(size)}; the limit is {_fmt_size(limits.max_bytes)}")
    fmt = fmt or detect_path_format(path)
    if fmt not in FORMATS:
        raise _fail(name, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="evalhub-import-") as tmp:
        col = _Collector(name, "row" if fmt in ("parquet", "hf_folder") else "line")
        try:
            return _read(path, fmt, mapping, limits, col, Path(tmp))
        except _Stop:
            pass
        col.raise_if_any()
        raise AssertionError("reading stopped without an error")  # pragma: no cover


def _open_source(
    path: Path, fmt: str, limits: Limits, col: _Collector, tmp: Path
) -> _JsonlSource | _CsvSource | _ArrowSource:
    if fmt in ("jsonl", "csv") and path.is_dir():
        col.fatal(None, None, f"expected a {fmt.upper()} file, got a folder")
    if fmt == "jsonl":
        return _JsonlSource(path, col)
    if fmt == "csv":
        return _CsvSource(path, col, limits)
    if fmt == "parquet":
        return _parquet_source(path, col)
    folder = path if path.is_dir() else _unzip(path, tmp / "unzipped", limits, col)
    return _hf_source(folder, col)


def _read(
    path: Path, fmt: str, mapping: ColumnMapping, limits: Limits, col: _Collector, tmp: Path
) -> ParsedDataset:
    if fmt in ("jsonl", "csv"):
        _scan_text_file(path, col, fmt)
    src = _open_source(path, fmt, limits, col, tmp)
    if isinstance(src, (_CsvSource, _ArrowSource)):
        _check_columns_present(src.columns, mapping, col, getattr(src, "header_line", None))
        if isinstance(src, _ArrowSource):
            _check_arrow_types(src, mapping, col)
        if col.errors:
            if isinstance(src, _CsvSource):
                src.close()
            raise _Stop
    conv = _RowConverter(
        mapping,
        limits,
        col,
        json_text_messages=fmt == "csv"
        or (isinstance(src, _ArrowSource) and src.types.get(mapping.messages or "", "") in _TEXT_TYPES),
    )
    records = src.records(mapping.source_columns()) if isinstance(src, _ArrowSource) else src.records()
    examples: list[Example] = []
    n_records = 0
    stopped = False
    try:
        for line, rec in records:
            n_records += 1
            if n_records > limits.max_rows:
                col.fatal(line, None, f"the file has more than {limits.max_rows:,} rows (the limit)")
            ex = conv.convert(line, rec)
            if ex is not None:
                examples.append(ex)
    except _Stop:
        stopped = True
    if isinstance(src, _JsonlSource) and n_records:
        _replace_never_seen_columns(src.columns, mapping, col, partial=stopped)
    if stopped:
        raise _Stop
    if n_records == 0 and not col.errors:
        col.fatal(
            None,
            None,
            "the file has a header but no rows" if isinstance(src, _CsvSource) else "the file has no records",
        )
    col.raise_if_any()
    return ParsedDataset(
        examples=examples,
        columns=list(src.columns),
        content_hash=content_hash(examples),
        n_rows=len(examples),
        fmt=fmt,
    )


def _replace_never_seen_columns(
    columns: list[str], mapping: ColumnMapping, col: _Collector, *, partial: bool
) -> None:
    """A JSON Lines key that no record has is a mapping mistake: say so once instead of once per line."""
    absent = [c for c in mapping.source_columns() if c not in columns]
    if not absent:
        return
    col.errors = [e for e in col.errors if e.field not in absent]
    col.truncated = col.truncated and len(col.errors) >= MAX_ERRORS
    for c in absent:
        close = difflib.get_close_matches(c, columns, n=1, cutoff=0.6)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        shown = ", ".join(f'"{x}"' for x in columns[:30])
        where = "none of the records read" if partial else "no record"
        col.errors.insert(
            0, RowError(col.file, None, c, f'the mapped column "{c}" is in {where} (keys: {shown}){hint}')
        )


def preview(path: Path, fmt: str | None = None, n: int = 5, *, max_chars: int = 1000) -> Preview:
    """The columns and first `n` records, for the column-mapping form. Long text is cut to `max_chars`.

    Raises DatasetImportError for problems that make the file unreadable (encoding, not the format named);
    row-level problems are left to `read_examples`.
    """
    path = Path(path)
    name = path.name
    fmt = fmt or detect_path_format(path)
    col = _Collector(name, "row" if fmt in ("parquet", "hf_folder") else "line")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="evalhub-preview-") as tmp:
        try:
            if fmt in ("jsonl", "csv"):
                with open(path, "rb") as f:
                    head = f.read(_HEAD_BYTES)
                if not head.strip(b" \t\r\n\xef\xbb\xbf"):
                    col.fatal(None, None, "the file is empty")
                if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_utf16(head) or _looks_binary(head):
                    col.fatal(None, None, f"this is not UTF-8 {fmt.upper()} text")
            src = _open_source(path, fmt, Limits(max_bytes=2**62), col, Path(tmp))
            for i, (_, rec) in enumerate(src.records()):
                if i >= n:
                    break
                rows.append({k: _cut(v, max_chars) for k, v in rec.items()})
            if isinstance(src, _CsvSource):
                src.close()
        except UnicodeDecodeError:
            col.errors.append(RowError(name, None, None, "not valid UTF-8; save the file as UTF-8"))
        except _Stop:
            pass
    if col.errors and not rows:
        col.raise_if_any()
    return Preview(
        columns=list(src.columns), rows=rows, fmt=fmt, suggested=suggest_mapping(list(src.columns))
    )


def _cut(v: Any, max_chars: int) -> Any:
    if isinstance(v, str) and len(v) > max_chars:
        return v[:max_chars] + "…"
    if isinstance(v, list):
        return [_cut(x, max_chars) for x in v]
    if isinstance(v, dict):
        return {k: _cut(x, max_chars) for k, x in v.items()}
    return v


__all__ = [
    "FORMATS",
    "MAX_ERRORS",
    "ColumnMapping",
    "DatasetImportError",
    "Example",
    "Limits",
    "ParsedDataset",
    "Preview",
    "RowError",
    "content_hash",
    "detect_format",
    "detect_path_format",
    "preview",
    "read_examples",
    "suggest_mapping",
]
