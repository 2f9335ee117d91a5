"""Supervised fine-tuning with PEFT (or full fine-tuning), resumable at any checkpoint.

An own training loop rather than transformers' Trainer: the loop is short, and owning it makes three things
straightforward that matter here: (1) exact resume — the data order is a pure function of (seed, epoch) and every
optimizer step `s` reads the micro-batches `plan(epoch)[g*accum:(g+1)*accum]`, so a checkpoint needs only the step
number, the trainable weights, optimizer/scheduler state and the RNG states; (2) dynamic, length-grouped padding
(see trainer.data) for throughput; (3) progress through a plain callback, cancellation and NaN detection between
steps.

Output layout (`output_dir`):
  best/                 adapter with the lowest validation loss (PEFT format; the full model for method "full")
  final/                adapter at the end of training
  checkpoints/step-N/   trainable.safetensors, optimizer.pt, scheduler.pt, rng.pt, state.json (written last)
  result.json           the TrainResult
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler, set_seed

from trainer.config import LORA_FAMILY, TrainConfig, linear_module_names, resolve_target_modules, validate
from trainer.data import (
    IGNORE_INDEX,
    SFTData,
    TokenizedExample,
    collate,
    epoch_batches,
    load_sft_file,
    steps_per_epoch,
)
from trainer.errors import ConfigError, TrainerError, TrainingFailed
from trainer.models import ModelSource, load_base

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]

CHECKPOINTS = "checkpoints"
LINEAGE_FILE = "evalhub_training.json"


@dataclass
class TrainResult:
    status: str  # "completed" | "early_stopped" | "cancelled"
    method: str
    steps_done: int
    total_steps: int
    trainable_params: int
    total_params: int
    trainable_share: float
    peak_memory_bytes: int
    peak_memory_kind: str  # "rss" (process peak resident set) or "cuda_max_allocated"
    wall_time_s: float  # summed over resumed sessions
    tokens_seen: int  # real (non-pad) tokens fed to the model
    tokens_per_s: float
    final_train_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    train_examples: int
    val_examples: int
    truncated_examples: int  # train + validation rows cut to max_seq_len
    dropped_examples: int  # rows with nothing left to learn after truncation
    resumed_from_step: int | None
    best_dir: str | None
    final_dir: str | None
    config: dict[str, Any]
    package_versions: dict[str, str]
    loss_history: list[dict[str, float]] = field(default_factory=list)  # {"step", "train_loss", "lr"}
    val_history: list[dict[str, float]] = field(default_factory=list)  # {"step", "val_loss"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


# --- model preparation -----------------------------------------------------------------------------------------


def _peft_config(config: TrainConfig, model: PreTrainedModel) -> Any:
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    if config.method in LORA_FAMILY:
        return LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=resolve_target_modules(config, model),
            use_dora=config.method == "dora",
            bias="none",
            task_type=TaskType.CAUSAL_LM,
        )
    if config.method == "ia3":
        targets = resolve_target_modules(config, model)
        mlp = linear_module_names(model)["mlp"]
        return IA3Config(
            target_modules=targets,
            # IA3 scales the input of feed-forward layers and the output of the others; PEFT needs to know which.
            feedforward_modules=[t for t in targets if t in mlp],
            task_type=TaskType.CAUSAL_LM,
        )
    if config.method == "prefix":
        return PrefixTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type=TaskType.CAUSAL_LM)
    if config.method == "prompt":
        return PromptTuningConfig(num_virtual_tokens=config.num_virtual_tokens, task_type=TaskType.CAUSAL_LM)
    raise ConfigError("method", f"{config.method!r} is not a PEFT method")


def _load_for_training(
    config: TrainConfig, base: ModelSource, cache_dir: Path, allow_downloads: bool, device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model_kwargs: dict[str, Any] = {}
    dtype = torch.float32
    if config.method == "qlora":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if config.bf16 else torch.float16
        model_kwargs = {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True,
            ),
            "device_map": {"": device.index or 0},
        }
        dtype = compute
    model, tokenizer = load_base(
        base, cache_dir, dtype=dtype, allow_downloads=allow_downloads, model_kwargs=model_kwargs
    )
    if config.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Casts norms to fp32 and enables input grads; gradient checkpointing stays off (small models, speed).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model.to(device)
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    if config.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input-embedding grad hook for frozen embeddings (PEFT) and
        # replays dropout with the saved RNG state, so runs stay reproducible.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tokenizer


def _wrap(config: TrainConfig, model: PreTrainedModel) -> torch.nn.Module:
    # The seed is set immediately before the adapter weights are created, so the same seed gives the same
    # initial adapter (and, on CPU, the same loss curve) no matter what ran before in this process.
    set_seed(config.seed)
    if config.method == "full":
        model.requires_grad_(True)
        return model
    from peft import get_peft_model

    return get_peft_model(model, _peft_config(config, model))


def _continue_adapter(config: TrainConfig, model: PreTrainedModel, init_adapter: Path) -> torch.nn.Module:
    """Retraining from feedback: train a parent's adapter further; its own rank and target modules are kept."""
    if config.method == "full":
        raise ConfigError("method", "a full fine-tune cannot continue an adapter")
    from peft import PeftModel

    set_seed(config.seed)  # dropout and data order, as in _wrap
    return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)


def _count_params(model: torch.nn.Module) -> tuple[int, int]:
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
        return int(trainable), int(total)
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def _make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            # Weight decay on biases, norm scales and IA3 scaling vectors pulls them to 0, which hurts; only
            # matrices decay (the usual convention).
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=0.9)
    return torch.optim.AdamW(groups, lr=config.learning_rate)


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> Any:
    warmup = round(config.warmup_ratio * total_steps)
    name = config.scheduler
    if name == "constant" and warmup > 0:
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


# --- artifacts -------------------------------------------------------------------------------------------------


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move a fully written `tmp` into place as `target`; readers see the old or the new one, never a mix."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _tmp_dir(parent: Path, name: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _save_model_dir(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    target: Path,
    lineage: dict[str, Any],
) -> None:
    tmp = _tmp_dir(target.parent, target.name)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True))
    _replace_dir(tmp, target)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad
    }


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (state.json is written last, so its presence marks completeness)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / "state.json").is_file() and p.name[5:].isdigit()]
    return max(done, key=lambda p: int(p.name[5:]), default=None)


def _remove_partial_writes(output_dir: Path) -> None:
    """Drop temp dirs left by a process killed mid-write (they never replaced a complete directory)."""
    for parent in (output_dir, output_dir / CHECKPOINTS):
        if parent.is_dir():
            for leftover in parent.glob(".*"):
                if leftover.is_dir() and (leftover.name.startswith(".tmp-") or ".old-" in leftover.name):
                    shutil.rmtree(leftover, ignore_errors=True)


def _file_fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the loop --------------------------------------------------------------------------------------------------


@dataclass
class _LoopState:
    step: int = 0
    best_val_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    loss_history: list[dict[str, float]] = field(default_factory=list)
    val_history: list[dict[str, float]] = field(default_factory=list)


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def causal_lm_loss(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], *, sparse_logits: bool
) -> torch.Tensor:
    """Mean next-token cross-entropy over labelled positions, the same number `model(**batch).loss` gives.

    With `sparse_logits`, the output head runs only at positions whose next token is labelled (transformers'
    `logits_to_keep` with a boolean mask). In chat SFT most tokens are prompt, and the vocabulary projection plus
    its float32 log-softmax is the largest activation of a small model (SmolLM2: 49,152 x 576), so skipping the
    unlabelled positions saves both time and memory. Not used for prefix/prompt tuning, where PEFT prepends
    virtual tokens and shifts positions.
    """
    if not sparse_logits:
        return model(**batch).loss
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    targets = labels[:, 1:][keep[:, :-1]]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, logits_to_keep=keep).logits
    return torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1)
    )


def sparse_logits_supported(model: torch.nn.Module) -> bool:
    """Whether `causal_lm_loss(..., sparse_logits=True)` applies: the model takes `logits_to_keep` and no
    virtual tokens shift its positions."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return False
    return _accepts_logits_to_keep(model)


def evaluate_loss(
    model: torch.nn.Module,
    data: SFTData,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device | None = None,
    bf16: bool = False,
) -> float:
    """Mean cross-entropy over all labelled (assistant) tokens of `data`: the validation loss."""
    device = device or next(model.parameters()).device
    sparse = sparse_logits_supported(model)
    was_training = model.training
    model.eval()
    # Longest-first, fixed order: deterministic, consumes no randomness (so it cannot shift the training RNG).
    order = sorted(range(len(data.examples)), key=lambda i: -len(data.examples[i]))
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = collate([data.examples[i] for i in order[start : start + batch_size]], pad_id)
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            if n == 0:
                continue
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = causal_lm_loss(
                    model, {k: v.to(device) for k, v in batch.items()}, sparse_logits=sparse
                )
            total_loss += float(loss) * n
            total_tokens += n
    model.train(was_training)
    return total_loss / max(total_tokens, 1)


def _label_count(examples: list[TokenizedExample]) -> int:
    # Causal LMs predict token t+1 from t: the first position's label is never used.
    return sum(sum(1 for t in e.labels[1:] if t != IGNORE_INDEX) for e in examples)


def _emit(progress: Progress | None, event: dict[str, Any]) -> None:
    if progress is not None:
        progress(event)


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak_memory(device: torch.device) -> None:
    """Start this run's peak-memory reading afresh. A worker process trains run after run, so a process-lifetime
    peak would report an earlier, bigger run's memory on a later one."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        _CLEAR_REFS.write_text("5")  # Linux >= 4.0: resets the peak resident set (VmHWM) to the current one
    except OSError:
        pass  # not Linux, or not allowed: _peak_memory falls back to the process-lifetime peak and says so


def _peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):  # kB: the peak resident set since reset_peak_memory
                return int(line.split()[1]) * 1024, "rss"
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, bytes on macOS; either way the process's peak since it started.
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale, "rss_process_lifetime"


def train_sft(
    config: TrainConfig,
    *,
    base: ModelSource,
    train_file: Path,
    val_file: Path | None,
    output_dir: Path,
    cache_dir: Path,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    allow_downloads: bool = False,
    init_adapter: Path | None = None,
) -> TrainResult:
    """Fine-tune `base` on chat JSONL `train_file`; resume from `output_dir`'s last checkpoint if there is one.
    With `init_adapter` (a PEFT adapter folder) training continues that adapter instead of creating a new one.

    Raises ConfigError before loading anything for a config that cannot work, DataError for unusable data,
    TrainingFailed for a run that breaks mid-way (NaN/inf loss, CUDA out of memory; the last good checkpoint is
    kept). Returns with status "cancelled" (after writing a checkpoint) when `should_stop()` turns true.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    cuda = torch.cuda.is_available()
    validate(config, has_cuda=cuda)
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    reset_peak_memory(device)

    model, tokenizer = _load_for_training(config, base, cache_dir, allow_downloads, device)
    validate(config, model, has_cuda=cuda)
    pad_id = int(tokenizer.pad_token_id)

    train = load_sft_file(train_file, tokenizer, config.max_seq_len)
    val = load_sft_file(val_file, tokenizer, config.max_seq_len) if val_file is not None else None
    truncated = train.stats.truncated + (val.stats.truncated if val else 0)
    dropped = train.stats.dropped + (val.stats.dropped if val else 0)
    if truncated or dropped:
        _emit(
            progress,
            {
                "event": "log",
                "message": f"{truncated} example(s) truncated to max_seq_len={config.max_seq_len}; "
                f"{dropped} dropped (no assistant tokens left)",
                "truncated": truncated,
                "dropped": dropped,
            },
        )

    per_epoch = steps_per_epoch(len(train.examples), config.batch_size, config.grad_accum)
    total_steps = config.max_steps or config.epochs * per_epoch

    model = _wrap(config, model) if init_adapter is None else _continue_adapter(config, model, init_adapter)
    model.train()
    optimizer = _make_optimizer(config, model)
    scheduler = _make_scheduler(config, optimizer, total_steps)
    trainable_params, total_params = _count_params(model)

    lineage = {
        "config": config.to_dict(),
        "base": base.to_dict(),
        "train_sha256": _file_fingerprint(train_file),
        "val_sha256": _file_fingerprint(val_file),
        "init_adapter": str(init_adapter) if init_adapter is not None else None,
        "package_versions": package_versions(),
    }
    state = _LoopState()
    resumed_from: int | None = None
    _remove_partial_writes(output_dir)
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        saved = json.loads((checkpoint / "state.json").read_text())
        for key in ("config", "base", "train_sha256", "val_sha256", "init_adapter"):
            if saved["lineage"].get(key) != lineage[key]:
                raise ConfigError(
                    "output_dir",
                    f"{output_dir} holds a checkpoint of a different run ({key} differs); use a new output directory",
                )
        trainable = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in load_file(str(checkpoint / "trainable.safetensors")).items():
                trainable[name].copy_(tensor.to(trainable[name].device))
        optimizer.load_state_dict(
            torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=False)
        )
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=False))
        _set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=False))
        state = _LoopState(**saved["loop"])
        resumed_from = state.step
        _emit(
            progress,
            {"event": "log", "message": f"resumed from checkpoint at step {state.step}", "step": state.step},
        )

    sparse = sparse_logits_supported(model)
    use_autocast = config.bf16 or config.method == "qlora"
    amp_dtype = torch.bfloat16 if config.bf16 else torch.float16

    def autocast() -> Any:
        return torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_autocast)

    def save_checkpoint(step: int) -> Path:
        root = output_dir / CHECKPOINTS
        tmp = _tmp_dir(root, f"step-{step}")
        save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        epoch = step // per_epoch
        loop = asdict(state)
        loop["elapsed_s"] = state.elapsed_s + (time.perf_counter() - session_start)
        (tmp / "state.json").write_text(
            json.dumps(
                {
                    "lineage": lineage,
                    "loop": loop,
                    "total_steps": total_steps,
                    "data_order": {
                        "seed": config.seed,
                        "group_by_length": config.group_by_length,
                        "epoch": epoch,
                        "batches_this_epoch": plan_for(epoch),
                    },
                }
            )
        )
        target = root / f"step-{step}"
        _replace_dir(tmp, target)
        for old in sorted(
            (p for p in root.glob("step-*") if p.name[5:].isdigit()), key=lambda p: int(p.name[5:])
        )[: -config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return target

    plans: dict[int, list[list[int]]] = {}

    def plan_for(epoch: int) -> list[list[int]]:
        if epoch not in plans:
            plans.clear()  # only the current epoch's order is ever needed
            plans[epoch] = epoch_batches(
                train.lengths,
                config.batch_size,
                seed=config.seed,
                epoch=epoch,
                group_by_length=config.group_by_length,
            )
        return plans[epoch]

    session_start = time.perf_counter()
    session_tokens_start = state.tokens_seen
    status = "completed"
    last_checkpoint = str(checkpoint) if checkpoint else None
    # A run that already early-stopped before being resumed must not train on past its stopping point.
    no_improvement_stop = bool(config.early_stopping_patience) and state.bad_evals >= (
        config.early_stopping_patience or 0
    )

    if should_stop is not None and should_stop():
        status = "cancelled"
    while status == "completed" and state.step < total_steps and not no_improvement_stop:
        epoch, group = divmod(state.step, per_epoch)
        batches = plan_for(epoch)[group * config.grad_accum : (group + 1) * config.grad_accum]
        micro = [[train.examples[i] for i in b] for b in batches]
        n_labels = sum(_label_count(m) for m in micro)
        step_loss = 0.0
        try:
            for examples in micro:
                batch = {k: v.to(device) for k, v in collate(examples, pad_id).items()}
                with autocast():
                    loss = causal_lm_loss(model, batch, sparse_logits=sparse)
                if not torch.isfinite(loss):
                    kind = "NaN" if torch.isnan(loss) else "infinite"
                    raise TrainingFailed(
                        f"loss became {kind} at step {state.step + 1}; the last good checkpoint is kept "
                        f"({last_checkpoint or 'none yet'}). Lower the learning rate or check the data.",
                        step=state.step + 1,
                        last_checkpoint=last_checkpoint,
                    )
                share = _label_count(examples) / max(n_labels, 1)
                (loss * share).backward()
                step_loss += float(loss.detach()) * share
                state.tokens_seen += int(batch["attention_mask"].sum())
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingFailed(
                f"out of memory at step {state.step + 1} (batch_size={config.batch_size}, "
                f"max_seq_len={config.max_seq_len}); lower them or raise grad_accum",
                step=state.step + 1,
                last_checkpoint=last_checkpoint,
            ) from exc
        # The norm is computed even without clipping (max_norm=inf) because a finite loss can still give
        # non-finite gradients; stepping on them would poison the weights saved in the next checkpoint.
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in model.parameters() if p.requires_grad],
            config.max_grad_norm if config.max_grad_norm is not None else float("inf"),
        )
        if not torch.isfinite(grad_norm):
            raise TrainingFailed(
                f"gradients became NaN or infinite at step {state.step + 1}; the last good checkpoint is kept "
                f"({last_checkpoint or 'none yet'}). Lower the learning rate or enable max_grad_norm.",
                step=state.step + 1,
                last_checkpoint=last_checkpoint,
            )
        lr = float(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.loss_history.append({"step": state.step, "train_loss": step_loss, "lr": lr})
        elapsed = state.elapsed_s + (time.perf_counter() - session_start)
        _emit(
            progress,
            {
                "event": "step",
                "step": state.step,
                "total_steps": total_steps,
                "epoch": epoch,
                "train_loss": step_loss,
                "lr": lr,
                "tokens": state.tokens_seen,
                "elapsed_s": elapsed,
            },
        )

        if val is not None and (state.step % config.eval_every_steps == 0 or state.step == total_steps):
            val_loss = evaluate_loss(
                model,
                val,
                batch_size=config.batch_size,
                pad_id=pad_id,
                device=device,
                bf16=use_autocast and config.bf16,
            )
            state.val_history.append({"step": state.step, "val_loss": val_loss})
            improved = state.best_val_loss is None or val_loss < state.best_val_loss
            if improved:
                state.best_val_loss, state.best_step, state.bad_evals = val_loss, state.step, 0
                _save_model_dir(
                    model,
                    tokenizer,
                    output_dir / "best",
                    {**lineage, "step": state.step, "val_loss": val_loss},
                )
            else:
                state.bad_evals += 1
            patience = config.early_stopping_patience
            no_improvement_stop = bool(patience) and state.bad_evals >= patience
            _emit(
                progress,
                {
                    "event": "eval",
                    "step": state.step,
                    "total_steps": total_steps,
                    "val_loss": val_loss,
                    "best_val_loss": state.best_val_loss,
                    "best_step": state.best_step,
                    "tokens": state.tokens_seen,
                    "elapsed_s": state.elapsed_s + (time.perf_counter() - session_start),
                },
            )

        cancelled = should_stop is not None and should_stop()
        if (
            state.step % config.save_every_steps == 0
            or cancelled
            or state.step == total_steps
            or no_improvement_stop
        ):
            if not all(torch.isfinite(p).all() for p in model.parameters() if p.requires_grad):
                raise TrainingFailed(
                    f"weights became NaN or infinite at step {state.step}; the last good checkpoint is kept "
                    f"({last_checkpoint or 'none yet'}). Lower the learning rate or enable max_grad_norm.",
                    step=state.step,
                    last_checkpoint=last_checkpoint,
                )
            last_checkpoint = str(save_checkpoint(state.step))
        if cancelled:
            status = "cancelled"
    if no_improvement_stop:
        status = "early_stopped"
        _emit(
            progress,
            {
                "event": "log",
                "message": f"early stopping at step {state.step}: no validation improvement in "
                f"{config.early_stopping_patience} evaluations (best step {state.best_step})",
                "step": state.step,
            },
        )

    final_dir: Path | None = None
    best_dir: Path | None = None
    if status != "cancelled":
        final_dir = output_dir / "final"
        _save_model_dir(model, tokenizer, final_dir, {**lineage, "step": state.step})
        if val is None:
            # Without validation data "best" can only mean "last".
            _save_model_dir(model, tokenizer, output_dir / "best", {**lineage, "step": state.step})
            state.best_step = state.step
        best_dir = output_dir / "best"

    session_s = time.perf_counter() - session_start
    wall = state.elapsed_s + session_s
    peak, peak_kind = _peak_memory(device)
    final_val = state.val_history[-1]["val_loss"] if state.val_history else None
    result = TrainResult(
        status=status,
        method=config.method,
        steps_done=state.step,
        total_steps=total_steps,
        trainable_params=trainable_params,
        total_params=total_params,
        trainable_share=trainable_params / max(total_params, 1),
        peak_memory_bytes=peak,
        peak_memory_kind=peak_kind,
        wall_time_s=wall,
        tokens_seen=state.tokens_seen,
        tokens_per_s=(state.tokens_seen - session_tokens_start) / session_s if session_s > 0 else 0.0,
        final_train_loss=state.loss_history[-1]["train_loss"] if state.loss_history else None,
        final_val_loss=final_val,
        best_val_loss=state.best_val_loss,
        best_step=state.best_step,
        train_examples=len(train.examples),
        val_examples=len(val.examples) if val else 0,
        truncated_examples=truncated,
        dropped_examples=dropped,
        resumed_from_step=resumed_from,
        best_dir=str(best_dir) if best_dir else None,
        final_dir=str(final_dir) if final_dir else None,
        config=config.to_dict(),
        package_versions=package_versions(),
        loss_history=state.loss_history,
        val_history=state.val_history,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    _emit(
        progress,
        {
            "event": "done",
            "status": status,
            "step": state.step,
            "total_steps": total_steps,
            "train_loss": result.final_train_loss,
            "val_loss": final_val,
            "best_val_loss": state.best_val_loss,
            "tokens": state.tokens_seen,
            "elapsed_s": wall,
            "setup_s": session_start - started,
        },
    )
    return result


# --- using the artifacts ---------------------------------------------------------------------------------------


def is_adapter_dir(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_trained(
    base: ModelSource, trained_dir: Path, cache_dir: Path, *, dtype: torch.dtype = torch.float32
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Load a `best/` or `final/` directory: a PEFT adapter on top of `base`, or a full fine-tuned model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trained_dir = Path(trained_dir)
    if is_adapter_dir(trained_dir):
        from peft import PeftModel

        model, tokenizer = load_base(base, cache_dir, dtype=dtype)
        return PeftModel.from_pretrained(model, str(trained_dir)).eval(), tokenizer
    if not (trained_dir / "config.json").is_file():
        raise TrainerError(f"{trained_dir} is neither a PEFT adapter nor a model folder")
    tokenizer = AutoTokenizer.from_pretrained(str(trained_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(trained_dir), dtype=dtype, local_files_only=True)
    return model.eval(), tokenizer


def merge_adapter(base: ModelSource, adapter_dir: Path, out_dir: Path, cache_dir: Path) -> Path:
    """Write `base` with the LoRA-family/IA3 adapter in `adapter_dir` merged in, as a plain HF model folder."""
    from peft import PeftConfig, PeftModel

    peft_type = str(PeftConfig.from_pretrained(str(adapter_dir)).peft_type)
    if not any(kind in peft_type.upper() for kind in ("LORA", "IA3")):
        raise TrainerError(
            f"{peft_type} adapters add virtual tokens instead of changing weights, so they cannot be merged; "
            "serve them as adapters"
        )
    model, tokenizer = load_base(base, cache_dir)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out_dir = Path(out_dir)
    tmp = _tmp_dir(out_dir.parent, out_dir.name)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    _replace_dir(tmp, out_dir)
    return out_dir
