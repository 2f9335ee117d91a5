"""Batched generation from one loaded base model and any number of PEFT adapters.

    gen = Generator(demo_model_source(), cache_dir=cache)
    gen.add_adapter("v2", "/artifacts/adapters/v2")
    outs = gen.generate([[{"role": "user", "content": "Describe the mug."}]], adapter="v2",
                        settings=DecodeSettings(max_new_tokens=64))

One base model is loaded once; adapters are attached to it with PEFT's multi-adapter API (`PeftModel.from_pretrained`
for the first, `load_adapter` for the rest, `set_adapter` to switch), so serving five adapters costs five small
LoRA weight sets, not five models. The base alone runs under `disable_adapter()`.

Batching: prompts get the tokenizer's chat template (with the generation prompt), are sorted by token length so each
batch pads little, left-padded (decoder-only models continue from the right edge), and generated together; results
come back in input order. Generation stops at EOS or an end-of-turn token. Greedy decoding gives the same text as a
per-prompt `model.generate` loop (tested); sampling is seeded per batch, so the same prompts, settings and seed give
the same outputs.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from trainer.errors import ConfigError, ModelLoadError, TrainerError
from trainer.models import ModelSource, default_cache_dir, load_base

Messages = list[dict[str, str]]
ProgressCallback = Callable[[int, int], None]

# End-of-turn markers of common chat templates; any that exists in the vocabulary stops generation besides EOS.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")
MAX_BATCH_SIZE = 1024
MAX_NEW_TOKENS = 32768
MAX_SAMPLES = 64


class GenerationError(TrainerError):
    """A generation request that cannot run (bad prompt, unknown adapter)."""


@dataclass
class DecodeSettings:
    """How to decode. Greedy by default; `do_sample=True` uses temperature and top-p (no top-k), seeded by `seed`.
    `num_samples` outputs per prompt need sampling. `batch_size` counts prompts per forward batch."""

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    num_samples: int = 1
    batch_size: int = 16

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field with an unusable value."""
        checks: list[tuple[str, bool, str]] = [
            ("do_sample", isinstance(self.do_sample, bool), "must be true or false"),
            ("temperature", _is_number(self.temperature) and 0 < self.temperature <= 100,
             "must be a number above 0 (and at most 100)"),
            ("top_p", _is_number(self.top_p) and 0 < self.top_p <= 1, "must be above 0 and at most 1"),
            ("max_new_tokens", _is_int(self.max_new_tokens) and 1 <= self.max_new_tokens <= MAX_NEW_TOKENS,
             f"must be a whole number from 1 to {MAX_NEW_TOKENS}"),
            ("seed", _is_int(self.seed) and 0 <= self.seed < 2**63, "must be a whole number >= 0"),
            ("num_samples", _is_int(self.num_samples) and 1 <= self.num_samples <= MAX_SAMPLES,
             f"must be a whole number from 1 to {MAX_SAMPLES}"),
            ("batch_size", _is_int(self.batch_size) and 1 <= self.batch_size <= MAX_BATCH_SIZE,
             f"must be a whole number from 1 to {MAX_BATCH_SIZE}"),
        ]
        for field, ok, message in checks:
            if not ok:
                raise ConfigError(field, f"{message} (got {getattr(self, field)!r})")
        if self.num_samples > 1 and not self.do_sample:
            raise ConfigError(
                "num_samples", "several samples per prompt need sampling (do_sample); greedy decoding repeats itself"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DecodeSettings:
        """Build from JSON-like data; unknown keys and wrong types raise ConfigError naming the field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown decoding setting; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(name, f"must be true or false (got {value!r})")
            elif isinstance(default, int):
                # JSON sends 3.0 for 3 sometimes; accept whole floats, refuse 2.5 and "3".
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                if not _is_int(value):
                    raise ConfigError(name, f"must be a whole number (got {value!r})")
            elif isinstance(default, float):
                if not _is_number(value):
                    raise ConfigError(name, f"must be a number (got {value!r})")
                value = float(value)
            values[name] = value
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Generation:
    """One output. `output_tokens` counts generated tokens including the stop token (the work done);
    `finish_reason` is "stop" (EOS or end of turn) or "length" (hit max_new_tokens). `latency_s` is the wall time
    of the item's batch divided by the number of outputs in that batch: items generated together share the cost."""

    text: str
    prompt_tokens: int
    output_tokens: int
    latency_s: float
    finish_reason: str


class Generator:
    """One loaded base model plus named adapters. Calls are serialised by a lock (one model, one forward at a
    time); share one Generator per base per process."""

    def __init__(
        self,
        source: ModelSource | None = None,
        *,
        cache_dir: Path | str | None = None,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        allow_downloads: bool = False,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        """Load `source` with `trainer.models.load_base`, or wrap an already loaded `model` + `tokenizer`."""
        if model is None or tokenizer is None:
            if source is None:
                raise ModelLoadError("Generator needs a model source or a loaded model and tokenizer")
            model, tokenizer = load_base(
                source, Path(cache_dir) if cache_dir else default_cache_dir(), dtype=dtype,
                allow_downloads=allow_downloads,
            )
        if device is not None:
            model.to(torch.device(device))  # type: ignore[arg-type]  # transformers types .to() oddly
        model.eval()
        self.base_model: PreTrainedModel = model
        self.model: Any = model  # becomes a PeftModel wrapping base_model once an adapter is added
        self.tokenizer = tokenizer
        if tokenizer.pad_token_id is None:
            raise ModelLoadError("the tokenizer has no pad token; load the model through trainer.models.load_base")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ModelLoadError("the tokenizer has no chat template, so chat prompts cannot be formatted")
        self.stop_token_ids = self._stop_ids()
        self._adapters: dict[str, str] = {}
        self._lock = threading.RLock()

    # --- adapters -------------------------------------------------------------------------------------------

    @property
    def adapters(self) -> dict[str, str]:
        """Loaded adapter name -> the folder it came from."""
        return dict(self._adapters)

    def add_adapter(self, name: str, path: str | Path) -> None:
        """Load a PEFT adapter folder under `name` (replacing an adapter of that name). ModelLoadError if the folder
        is missing, is not a PEFT adapter, or does not fit this base model."""
        from peft import PeftModel

        folder = Path(path)
        if not name or not isinstance(name, str):
            raise ModelLoadError("an adapter needs a non-empty name")
        if not (folder / "adapter_config.json").is_file():
            raise ModelLoadError(f"not a PEFT adapter folder (no adapter_config.json): {folder}")
        with self._lock:
            if name in self._adapters:
                self._delete(name)
                del self._adapters[name]
            first = not self._adapters
            try:
                if first:
                    self.model = PeftModel.from_pretrained(self.base_model, str(folder), adapter_name=name)
                else:
                    self.model.load_adapter(str(folder), adapter_name=name)
            except Exception as exc:
                # Corrupt or mismatched files surface as many exception types. PEFT injects the adapter's layers
                # before it reads the weights, so a failed load must not leave half-initialised layers that change
                # what the base or the other adapters generate.
                self._discard_failed(name, first)
                raise ModelLoadError(f"cannot load adapter {name!r} from {folder}: {type(exc).__name__}: {exc}") from exc
            self.model.eval()
            self._adapters[name] = str(folder)

    def _discard_failed(self, name: str, first: bool) -> None:
        from peft.tuners.tuners_utils import BaseTunerLayer

        if first:
            self.model = self.base_model
            for parent in list(self.base_model.modules()):
                for child_name, child in list(parent.named_children()):
                    if isinstance(child, BaseTunerLayer):
                        setattr(parent, child_name, child.get_base_layer())
            return
        if name in getattr(self.model, "peft_config", {}):
            self.model.set_adapter(next(iter(self._adapters)))
            self.model.delete_adapter(name)

    def remove_adapter(self, name: str) -> None:
        with self._lock:
            if name not in self._adapters:
                raise GenerationError(f"no adapter named {name!r} is loaded")
            self._delete(name)
            del self._adapters[name]

    def _delete(self, name: str) -> None:
        others = [n for n in self._adapters if n != name]
        if others:
            # PEFT refuses to delete the active adapter while others exist; activate another one first.
            self.model.set_adapter(others[0])
            self.model.delete_adapter(name)
        else:
            self.model = self.model.unload()
            self.base_model = self.model

    # --- prompts --------------------------------------------------------------------------------------------

    def _stop_ids(self) -> list[int]:
        ids: list[int] = []
        eos = self.tokenizer.eos_token_id
        config_eos = getattr(getattr(self.base_model, "generation_config", None), "eos_token_id", None)
        for value in (eos, config_eos):
            if isinstance(value, int):
                ids.append(value)
            elif isinstance(value, (list, tuple)):
                ids.extend(int(v) for v in value)
        vocab = self.tokenizer.get_vocab()
        ids.extend(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
        pad = self.tokenizer.pad_token_id
        return sorted({i for i in ids if i != pad})

    def encode_prompt(self, messages: Messages) -> list[int]:
        """Token ids of one chat prompt: the chat template with the generation prompt, no extra special tokens
        (the template already writes any it needs)."""
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise GenerationError("a prompt must be a non-empty list of {'role': str, 'content': str} messages")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generation_config(self, settings: DecodeSettings) -> GenerationConfig:
        """The full GenerationConfig used for `settings` (nothing inherited from the model's defaults)."""
        sampling: dict[str, Any] = (
            {"temperature": settings.temperature, "top_p": settings.top_p, "top_k": 0} if settings.do_sample else {}
        )
        return GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            num_return_sequences=settings.num_samples,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.stop_token_ids,
            bos_token_id=self.tokenizer.bos_token_id,
            **sampling,
        )

    # --- generation -----------------------------------------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        adapter: str | None = None,
        settings: DecodeSettings | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[Generation]:
        """Generate for every prompt: `num_samples` outputs each, prompt-major (outputs of prompt i are at
        `i * num_samples ... i * num_samples + num_samples - 1`). `adapter=None` uses the base model alone.
        `progress(done_prompts, total_prompts)` is called after each batch."""
        settings = settings or DecodeSettings()
        settings.validate()
        encoded = []
        for i, messages in enumerate(prompts):
            try:
                encoded.append(self.encode_prompt(messages))
            except GenerationError as exc:
                raise GenerationError(f"prompt {i}: {exc}") from exc
        total = len(encoded)
        results: list[Generation | None] = [None] * (total * settings.num_samples)
        if progress:
            progress(0, total)
        if not encoded:
            return []
        # Longest first: an out-of-memory error shows up on the first batch, not after most of the work.
        order = sorted(range(total), key=lambda i: len(encoded[i]), reverse=True)
        config = self.generation_config(settings)
        done = 0
        with self._lock:
            model = self._select(adapter)
            for start in range(0, total, settings.batch_size):
                batch = order[start : start + settings.batch_size]
                outputs = self._generate_batch(model, adapter, [encoded[i] for i in batch], config, settings)
                for row, item in enumerate(batch):
                    for s in range(settings.num_samples):
                        results[item * settings.num_samples + s] = outputs[row * settings.num_samples + s]
                done += len(batch)
                if progress:
                    progress(done, total)
        return [r for r in results if r is not None]

    def _select(self, adapter: str | None) -> Any:
        if adapter is None:
            return self.model
        if adapter not in self._adapters:
            loaded = ", ".join(self._adapters) or "none"
            raise GenerationError(f"no adapter named {adapter!r} is loaded (loaded: {loaded})")
        self.model.set_adapter(adapter)
        return self.model

    def _generate_batch(
        self,
        model: Any,
        adapter: str | None,
        prompts: list[list[int]],
        config: GenerationConfig,
        settings: DecodeSettings,
    ) -> list[Generation]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        device = self.base_model.device
        input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=device)
        attention_mask = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long, device=device
        )
        began = time.perf_counter()
        with torch.inference_mode(), torch.random.fork_rng(devices=_rng_devices(device)):
            if settings.do_sample:
                # Seed from the settings and the batch's own prompts: reruns repeat exactly, and callers that
                # split a run into chunks do not reuse one random stream for different prompts.
                torch.manual_seed(_batch_seed(settings.seed, prompts))
            if adapter is None and hasattr(model, "disable_adapter"):
                with model.disable_adapter():
                    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
            else:
                out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        elapsed = time.perf_counter() - began
        new_tokens = out[:, width:].tolist()
        latency = elapsed / len(new_tokens)
        stops = set(self.stop_token_ids)
        results: list[Generation] = []
        for row, tokens in enumerate(new_tokens):
            prompt = prompts[row // settings.num_samples]
            cut = next((k for k, t in enumerate(tokens) if t in stops), None)
            kept = tokens if cut is None else tokens[:cut]
            results.append(
                Generation(
                    text=str(self.tokenizer.decode(kept, skip_special_tokens=True)),
                    prompt_tokens=len(prompt),
                    output_tokens=len(tokens) if cut is None else cut + 1,
                    latency_s=latency,
                    finish_reason="length" if cut is None else "stop",
                )
            )
        return results


def _batch_seed(seed: int, prompts: list[list[int]]) -> int:
    digest = zlib.crc32(b"".join(torch.tensor(p, dtype=torch.int64).numpy().tobytes() + b"|" for p in prompts))
    return (seed * 0x9E3779B1 + digest) % (2**63)


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []
