"""Direct preference optimisation (DPO) of a PEFT adapter with TRL's DPOTrainer, resumable at any checkpoint.

Same contract as `trainer.train.train_sft`: a `TrainConfig`, file paths, a progress callback and `should_stop`; the
same output layout (`best/`, `final/`, `result.json`) and the same `TrainResult`, so the job, progress, lineage and
model-version machinery built for SFT takes DPO runs unchanged.

No separate reference model is ever loaded:
- a fresh LoRA (`parent_adapter=None`): TRL gets `peft_config` and computes reference log-probabilities with the
  adapter disabled, i.e. the base model (which is also the policy at step 0, LoRA's B matrices start at zero);
- continuing a parent's adapter: the model is the parent's PeftModel, trainable; TRL adds a frozen copy of that
  adapter ("ref") next to it and uses it as the reference, so the reference is the parent policy, as DPO wants.

Resume: checkpoints are transformers Trainer checkpoints under `output_dir/checkpoints/checkpoint-N` (adapter,
optimizer, scheduler, RNG states, trainer_state.json) plus our lineage file; a new call with the same inputs resumes
from the newest one through TRL's `resume_from_checkpoint`, and refuses a checkpoint written for other inputs.

Input: TRL's conversational preference rows
`{"prompt": [messages...], "chosen": [{"role": "assistant", ...}], "rejected": [{"role": "assistant", ...}]}`
(plain strings are accepted too). Extra keys (provenance) are ignored.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback, set_seed

from trainer.config import LORA_FAMILY, TrainConfig, validate
from trainer.errors import ConfigError, DataError, TrainerError, TrainingFailed
from trainer.models import ModelSource
from trainer.train import (
    LINEAGE_FILE,
    TrainResult,
    _count_params,
    _emit,
    _file_fingerprint,
    _load_for_training,
    _peak_memory,
    _peft_config,
    _replace_dir,
    _tmp_dir,
    package_versions,
    reset_peak_memory,
)

Progress = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]

CHECKPOINTS = "checkpoints"
CHECKPOINT_LINEAGE = "evalhub_dpo.json"
DEFAULT_BETA = 0.1
POLICY_ADAPTER = "default"  # PEFT's name for the adapter being trained; TRL adds "ref" beside it
# Inputs that must match for a checkpoint to be resumed (a changed file or setting is a different run).
_RESUME_KEYS = ("config", "beta", "base", "parent_sha256", "train_sha256", "val_sha256")


@dataclass(frozen=True)
class PreferencePair:
    """One preference: a chat prompt, the preferred reply and the other one (plain assistant texts)."""

    prompt: list[dict[str, str]]
    chosen: str
    rejected: str


# --- data --------------------------------------------------------------------------------------------------------


def _messages(value: Any, name: str, line: int) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "user" if name == "prompt" else "assistant", "content": value}]
    if not isinstance(value, list) or not value:
        raise DataError(f'"{name}" must be a string or a non-empty list of messages', line=line)
    out = []
    for m in value:
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise DataError(f'each message of "{name}" needs string "role" and "content"', line=line)
        out.append({"role": m["role"], "content": m["content"]})
    return out


def read_preference_jsonl(path: Path) -> list[PreferencePair]:
    """Validate a preference JSONL file (errors name the line) and return its pairs."""
    pairs: list[PreferencePair] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg})", line=number) from exc
            if not isinstance(row, dict) or not {"prompt", "chosen", "rejected"} <= set(row):
                raise DataError('a preference row needs "prompt", "chosen" and "rejected"', line=number)
            prompt = _messages(row["prompt"], "prompt", number)
            replies = []
            for name in ("chosen", "rejected"):
                msgs = _messages(row[name], name, number)
                if len(msgs) != 1 or msgs[0]["role"] != "assistant":
                    raise DataError(f'"{name}" must be one assistant message', line=number)
                replies.append(msgs[0]["content"])
            if replies[0] == replies[1]:
                raise DataError(
                    "chosen and rejected are the same text; the pair prefers nothing", line=number
                )
            pairs.append(PreferencePair(prompt=prompt, chosen=replies[0], rejected=replies[1]))
    if not pairs:
        raise DataError(f"{path} has no preference rows")
    return pairs


def _to_dataset(pairs: Sequence[PreferencePair]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(
        [
            {
                "prompt": p.prompt,
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
            }
            for p in pairs
        ]
    )


# --- checkpoints -------------------------------------------------------------------------------------------------


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (transformers writes trainer_state.json last; our lineage file after it)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return None
    done = [
        p
        for p in root.glob("checkpoint-*")
        if p.name[11:].isdigit()
        and (p / "trainer_state.json").is_file()
        and (p / CHECKPOINT_LINEAGE).is_file()
    ]
    return max(done, key=lambda p: int(p.name[11:]), default=None)


def _save_adapter(
    model: Any, tokenizer: PreTrainedTokenizerBase, target: Path, lineage: dict[str, Any]
) -> None:
    """Only the trained adapter: TRL's frozen "ref" copy of a parent adapter is not part of the result."""
    tmp = _tmp_dir(target.parent, target.name)
    model.save_pretrained(tmp, selected_adapters=[POLICY_ADAPTER])
    tokenizer.save_pretrained(tmp)
    (tmp / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True))
    _replace_dir(tmp, target)


# --- the run -----------------------------------------------------------------------------------------------------


def _dpo_args(config: TrainConfig, *, beta: float, checkpoints: Path, has_val: bool, cuda: bool) -> Any:
    from trl import DPOConfig

    scheduler = config.scheduler
    if scheduler == "constant" and config.warmup_ratio > 0:
        scheduler = "constant_with_warmup"
    return DPOConfig(
        output_dir=str(checkpoints),
        beta=beta,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        weight_decay=config.weight_decay,
        optim="sgd" if config.optimizer == "sgd" else "adamw_torch",
        max_grad_norm=config.max_grad_norm if config.max_grad_norm is not None else 0.0,
        lr_scheduler_type=scheduler,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of the total steps
        seed=config.seed,
        data_seed=config.seed,
        max_length=config.max_seq_len,
        bf16=config.bf16,
        use_cpu=not cuda,
        # Small adapters on small models: recomputing activations costs more time than the memory it saves.
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_every_steps,
        save_total_limit=config.keep_checkpoints,
        eval_strategy="steps" if has_val else "no",
        eval_steps=config.eval_every_steps if has_val else None,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


class _Bridge(TrainerCallback):
    """Turns Trainer events into our progress events, saves `best/`, stops early, cancels and catches NaN."""

    def __init__(
        self,
        *,
        config: TrainConfig,
        lineage: dict[str, Any],
        output_dir: Path,
        tokenizer: PreTrainedTokenizerBase,
        progress: Progress | None,
        should_stop: ShouldStop | None,
        previous_elapsed: float,
    ) -> None:
        self.config = config
        self.lineage = lineage
        self.output_dir = output_dir
        self.tokenizer = tokenizer
        self.progress = progress
        self.should_stop = should_stop
        self.previous_elapsed = previous_elapsed
        self.session_start = time.perf_counter()
        self.cancelled = False
        self.early_stopped = False
        self.best_val_loss: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.tokens = 0
        self.loss_history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []
        self.last_checkpoint: str | None = None
        self.model: Any = None

    def elapsed(self) -> float:
        return self.previous_elapsed + (time.perf_counter() - self.session_start)

    def replay(self, log_history: list[dict[str, Any]], total_steps: int) -> None:
        """A resumed run: rebuild the histories (and the caller's loss chart) from the checkpoint's log."""
        for entry in log_history:
            if "loss" in entry:
                self._record_step(entry, total_steps, replayed=True)
            elif "eval_loss" in entry:
                self._record_eval(entry, total_steps, save=False, replayed=True)

    def _record_step(self, logs: dict[str, Any], total_steps: int, *, replayed: bool = False) -> None:
        step = int(logs.get("step", 0))
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            raise TrainingFailed(
                f"loss became {'NaN' if math.isnan(loss) else 'infinite'} at step {step}; the last good checkpoint "
                f"is kept ({self.last_checkpoint or 'none yet'}). Lower the learning rate or check the data.",
                step=step,
                last_checkpoint=self.last_checkpoint,
            )
        self.tokens = int(logs.get("num_tokens", self.tokens) or self.tokens)
        lr = float(logs.get("learning_rate", 0.0))
        self.loss_history.append({"step": step, "train_loss": loss, "lr": lr})
        _emit(
            self.progress,
            {
                "event": "step",
                "step": step,
                "total_steps": total_steps,
                "epoch": logs.get("epoch"),
                "train_loss": loss,
                "lr": lr,
                "tokens": self.tokens,
                "elapsed_s": self.elapsed(),
                "reward_accuracy": logs.get("rewards/accuracies"),
                "reward_margin": logs.get("rewards/margins"),
                "replayed": replayed,
            },
        )

    def _record_eval(
        self, metrics: dict[str, Any], total_steps: int, *, save: bool, replayed: bool = False
    ) -> None:
        step = int(metrics.get("step", 0))
        val_loss = float(metrics["eval_loss"])
        self.val_history.append({"step": step, "val_loss": val_loss})
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss, self.best_step, self.bad_evals = val_loss, step, 0
            if save:
                _save_adapter(
                    self.model,
                    self.tokenizer,
                    self.output_dir / "best",
                    {**self.lineage, "step": step, "val_loss": val_loss},
                )
        else:
            self.bad_evals += 1
        patience = self.config.early_stopping_patience
        self.early_stopped = bool(patience) and self.bad_evals >= (patience or 0)
        _emit(
            self.progress,
            {
                "event": "eval",
                "step": step,
                "total_steps": total_steps,
                "val_loss": val_loss,
                "best_val_loss": self.best_val_loss,
                "best_step": self.best_step,
                "reward_accuracy": metrics.get("eval_rewards/accuracies"),
                "tokens": self.tokens,
                "elapsed_s": self.elapsed(),
                "replayed": replayed,
            },
        )

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if logs and "loss" in logs:
            self._record_step({**logs, "step": state.global_step}, state.max_steps)
            # Asked after the step is reported, as train_sft does; the Trainer saves and stops right after logging.
            if self.should_stop is not None and self.should_stop():
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if metrics and "eval_loss" in metrics:
            self._record_eval({**metrics, "step": state.global_step}, state.max_steps, save=True)
            if self.early_stopped:
                control.should_save = True
                control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if args.eval_strategy != "no" and state.global_step >= state.max_steps:
            control.should_evaluate = True  # like train_sft: the last step is always evaluated

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            (folder / CHECKPOINT_LINEAGE).write_text(
                json.dumps({"lineage": self.lineage, "elapsed_s": self.elapsed(), "tokens": self.tokens})
            )
            self.last_checkpoint = str(folder)


def _check_config(config: TrainConfig, beta: float) -> None:
    if config.method not in LORA_FAMILY:
        raise ConfigError(
            "method",
            f"DPO trains a LoRA-family adapter (lora, dora, qlora) so the base model can serve as the reference "
            f"without a second copy; {config.method!r} is not one",
        )
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        raise ConfigError("beta", f"beta must be a positive number, got {beta!r}")


def train_dpo(
    config: TrainConfig,
    *,
    base: ModelSource,
    parent_adapter: Path | None,
    train_file: Path,
    val_file: Path | None,
    output_dir: Path,
    cache_dir: Path,
    beta: float = DEFAULT_BETA,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    allow_downloads: bool = False,
) -> TrainResult:
    """DPO-train a LoRA adapter on preference JSONL `train_file`: the parent's adapter (continued), or a fresh one.

    Raises ConfigError before loading anything for a config that cannot work, DataError for unusable data,
    TrainingFailed for a run that breaks mid-way (NaN/inf loss; the last good checkpoint is kept). Returns status
    "cancelled" (after writing a checkpoint) when `should_stop()` turns true, "early_stopped" when the validation
    loss stopped improving for `early_stopping_patience` evaluations.
    """
    from peft import PeftModel
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOTrainer

    started = time.perf_counter()
    output_dir = Path(output_dir)
    cuda = torch.cuda.is_available()
    _check_config(config, beta)
    validate(config, has_cuda=cuda)
    if parent_adapter is not None and not (Path(parent_adapter) / "adapter_config.json").is_file():
        raise ConfigError("parent_adapter", f"{parent_adapter} is not a PEFT adapter folder")
    train_pairs = read_preference_jsonl(train_file)
    val_pairs = read_preference_jsonl(val_file) if val_file is not None else None

    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    reset_peak_memory(device)
    model, tokenizer = _load_for_training(config, base, cache_dir, allow_downloads, device)
    validate(config, model, has_cuda=cuda)
    lineage = {
        "objective": "dpo",
        "config": config.to_dict(),
        "beta": float(beta),
        "base": base.to_dict(),
        "parent_sha256": _file_fingerprint(Path(parent_adapter) / "adapter_model.safetensors")
        if parent_adapter is not None and (Path(parent_adapter) / "adapter_model.safetensors").is_file()
        else None,
        "train_sha256": _file_fingerprint(train_file),
        "val_sha256": _file_fingerprint(val_file),
        "package_versions": package_versions(),
    }

    checkpoint = latest_checkpoint(output_dir)
    previous: dict[str, Any] = {}
    if checkpoint is not None:
        previous = json.loads((checkpoint / CHECKPOINT_LINEAGE).read_text())
        for key in _RESUME_KEYS:
            if previous["lineage"].get(key) != lineage[key]:
                raise ConfigError(
                    "output_dir",
                    f"{output_dir} holds a checkpoint of a different run ({key} differs); use a new output directory",
                )

    set_seed(config.seed)  # before the adapter is created: same seed, same initial adapter
    peft_config = None
    if parent_adapter is not None:
        model = PeftModel.from_pretrained(
            model, str(parent_adapter), adapter_name=POLICY_ADAPTER, is_trainable=True
        )
        _emit(
            progress,
            {
                "event": "log",
                "message": f"continuing the parent adapter from {parent_adapter} "
                "(its rank and target modules are kept; it is also the reference)",
            },
        )
    else:
        peft_config = _peft_config(config, model)

    bridge = _Bridge(
        config=config,
        lineage=lineage,
        output_dir=output_dir,
        tokenizer=tokenizer,
        progress=progress,
        should_stop=should_stop,
        previous_elapsed=float(previous.get("elapsed_s", 0.0)),
    )
    args = _dpo_args(
        config, beta=beta, checkpoints=output_dir / CHECKPOINTS, has_val=val_pairs is not None, cuda=cuda
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=_to_dataset(train_pairs),
        eval_dataset=_to_dataset(val_pairs) if val_pairs is not None else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[bridge],
    )
    trainer.remove_callback(PrinterCallback)
    bridge.model = trainer.model
    trainer.model.config.use_cache = False
    train_rows = len(trainer.train_dataset)
    val_rows = len(trainer.eval_dataset) if trainer.eval_dataset is not None else 0
    dropped = (len(train_pairs) - train_rows) + ((len(val_pairs) - val_rows) if val_pairs is not None else 0)
    if dropped:
        _emit(
            progress,
            {
                "event": "log",
                "message": f"{dropped} pair(s) dropped: nothing of the reply was left "
                f"after truncating to max_seq_len={config.max_seq_len}",
            },
        )
    if train_rows == 0:
        raise DataError(f"no preference pair fits in max_seq_len={config.max_seq_len}")
    trainable_params, total_params = _count_params(trainer.model)

    resumed_from: int | None = None
    if checkpoint is not None:
        resumed_from = int(checkpoint.name[11:])
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        bridge.tokens = int(previous.get("tokens", 0))
        bridge.replay(
            [
                {**e, "step": e.get("step", 0)}
                for e in state.get("log_history", [])
                if e.get("step", 0) <= resumed_from
            ],
            int(state.get("max_steps", 0)),
        )
        bridge.last_checkpoint = str(checkpoint)
        _emit(
            progress,
            {
                "event": "log",
                "message": f"resumed from checkpoint at step {resumed_from}",
                "step": resumed_from,
            },
        )

    session_tokens_start = bridge.tokens
    if should_stop is not None and should_stop():
        bridge.cancelled = True
    else:
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
        except torch.cuda.OutOfMemoryError as exc:
            raise TrainingFailed(
                f"out of memory (batch_size={config.batch_size}, max_seq_len={config.max_seq_len}); lower them or "
                "raise grad_accum",
                last_checkpoint=bridge.last_checkpoint,
            ) from exc

    steps_done = max(int(trainer.state.global_step), resumed_from or 0)
    total_steps = int(trainer.state.max_steps or steps_done)
    status = "cancelled" if bridge.cancelled else ("early_stopped" if bridge.early_stopped else "completed")
    best_dir: Path | None = None
    final_dir: Path | None = None
    if status != "cancelled":
        final_dir = output_dir / "final"
        _save_adapter(trainer.model, tokenizer, final_dir, {**lineage, "step": steps_done})
        if val_pairs is None or not (output_dir / "best").is_dir():
            # Without validation data "best" can only mean "last".
            _save_adapter(trainer.model, tokenizer, output_dir / "best", {**lineage, "step": steps_done})
            bridge.best_step = steps_done if val_pairs is None else bridge.best_step
        best_dir = output_dir / "best"

    session_s = time.perf_counter() - bridge.session_start
    wall = bridge.elapsed()
    peak, peak_kind = _peak_memory(device)
    result = TrainResult(
        status=status,
        method=config.method,
        steps_done=steps_done,
        total_steps=total_steps,
        trainable_params=trainable_params,
        total_params=total_params,
        trainable_share=trainable_params / max(total_params, 1),
        peak_memory_bytes=peak,
        peak_memory_kind=peak_kind,
        wall_time_s=wall,
        tokens_seen=bridge.tokens,
        tokens_per_s=(bridge.tokens - session_tokens_start) / session_s if session_s > 0 else 0.0,
        final_train_loss=bridge.loss_history[-1]["train_loss"] if bridge.loss_history else None,
        final_val_loss=bridge.val_history[-1]["val_loss"] if bridge.val_history else None,
        best_val_loss=bridge.best_val_loss,
        best_step=bridge.best_step,
        train_examples=train_rows,
        val_examples=val_rows,
        truncated_examples=0,
        dropped_examples=dropped,
        resumed_from_step=resumed_from,
        best_dir=str(best_dir) if best_dir else None,
        final_dir=str(final_dir) if final_dir else None,
        config={**config.to_dict(), "objective": "dpo", "beta": float(beta)},
        package_versions=package_versions(),
        loss_history=bridge.loss_history,
        val_history=bridge.val_history,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    _emit(
        progress,
        {
            "event": "done",
            "status": status,
            "step": steps_done,
            "total_steps": total_steps,
            "train_loss": result.final_train_loss,
            "val_loss": result.final_val_loss,
            "best_val_loss": bridge.best_val_loss,
            "tokens": bridge.tokens,
            "elapsed_s": wall,
            "setup_s": bridge.session_start - started,
        },
    )
    if status != "cancelled":
        shutil.rmtree(output_dir / CHECKPOINTS / "runs", ignore_errors=True)  # transformers' empty log folder
    return result


# --- evaluation --------------------------------------------------------------------------------------------------


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], *, generation_prompt: bool
) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    assert isinstance(text, str)
    return text


def completion_ids(
    tokenizer: PreTrainedTokenizerBase, prompt: list[dict[str, str]], reply: str
) -> tuple[list[int], list[int]]:
    """(prompt token ids, reply token ids) the way TRL builds them: the prompt rendered with the generation prompt,
    the reply = the rest of the full conversation's rendering (it includes the end-of-turn token)."""
    prefix = _render(tokenizer, prompt, generation_prompt=True)
    full = _render(tokenizer, [*prompt, {"role": "assistant", "content": reply}], generation_prompt=False)
    if not full.startswith(prefix):
        raise TrainerError("the chat template renders the prompt differently inside the full conversation")
    prompt_ids = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full[len(prefix) :], add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(reply_ids)


@torch.no_grad()
def sequence_logps(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[list[dict[str, str]], str]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
) -> list[float]:
    """log p(reply | prompt) summed over the reply's tokens, for each (prompt, reply)."""
    device = next(model.parameters()).device
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    encoded = [completion_ids(tokenizer, p, r) for p, r in items]
    out: list[float] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start : start + batch_size]
            seqs = []
            for prompt_ids, reply_ids in chunk:
                ids = prompt_ids + reply_ids
                if max_length is not None:
                    ids = ids[:max_length]
                seqs.append((ids, len(prompt_ids)))
            width = max(len(ids) for ids, _ in seqs)
            input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            attention = torch.zeros((len(seqs), width), dtype=torch.long)
            reply_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
            for row, (ids, n_prompt) in enumerate(seqs):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                reply_mask[row, n_prompt : len(ids)] = True
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
            # Token t is predicted from position t-1.
            logps = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:].to(device)
            token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            mask = reply_mask[:, 1:].to(device)
            out.extend((token_logps * mask).sum(dim=-1).tolist())
    finally:
        model.train(was_training)
    return out


def implicit_rewards(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    beta: float = DEFAULT_BETA,
    *,
    batch_size: int = 8,
) -> list[tuple[float, float]]:
    """(reward of chosen, reward of rejected) per pair, with DPO's implicit reward
    r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)), where pi is `model` and pi_ref the same model with its adapters
    disabled (the base). A model without adapters has every reward 0."""
    items: list[tuple[list[dict[str, str]], str]] = []
    for p in pairs:
        items += [(p.prompt, p.chosen), (p.prompt, p.rejected)]
    policy = sequence_logps(model, tokenizer, items, batch_size=batch_size)
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            reference = sequence_logps(model, tokenizer, items, batch_size=batch_size)
    else:
        reference = policy
    rewards = [beta * (a - b) for a, b in zip(policy, reference)]
    return [(rewards[2 * i], rewards[2 * i + 1]) for i in range(len(pairs))]


def implicit_reward_accuracy(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    beta: float = DEFAULT_BETA,
    *,
    batch_size: int = 8,
) -> float:
    """Share of pairs whose chosen reply gets the higher implicit reward (see `implicit_rewards`; reference = the
    base model). A tie counts one half, so a model that learned nothing scores 0.5, not 0."""
    if not pairs:
        raise ValueError("no preference pairs to evaluate")
    scores = implicit_rewards(model, tokenizer, pairs, beta, batch_size=batch_size)
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in scores)
    return wins / len(scores)
