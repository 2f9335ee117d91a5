"""Training configuration: one plain dataclass, per-method defaults, and validation that names the field at fault.

The config is stored as JSON lineage next to every adapter (`to_dict`/`from_dict`), so it only holds plain values.
`validate` is cheap and runs twice: when a run is submitted (no model needed; pass `model=meta_model(...)` to also
check module names against the architecture without loading weights) and again inside `train_sft`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import torch

from trainer.errors import ConfigError

Method = Literal["lora", "qlora", "dora", "ia3", "prefix", "prompt", "full"]
METHODS: tuple[str, ...] = ("lora", "qlora", "dora", "ia3", "prefix", "prompt", "full")
LORA_FAMILY: frozenset[str] = frozenset({"lora", "qlora", "dora"})
MODULE_METHODS: frozenset[str] = LORA_FAMILY | {"ia3"}  # methods that wrap named modules
VIRTUAL_TOKEN_METHODS: frozenset[str] = frozenset({"prefix", "prompt"})
PLACEMENTS: tuple[str, ...] = ("attention", "mlp", "all_linear")
SCHEDULERS: tuple[str, ...] = ("cosine", "linear", "constant")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")

# Parent-module names that identify where a linear layer lives, across the common decoder families
# (Llama/Mistral/Qwen: self_attn/mlp; GPT-2: attn/mlp; Falcon/GPT-NeoX: self_attention/mlp; Phi: mixer/ffn ...).
_ATTENTION_PARENTS = ("attn", "attention", "mixer")
_MLP_PARENTS = ("mlp", "feed_forward", "ffn", "moe")


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run. Start from `TrainConfig.defaults_for(method)`."""

    method: str = "lora"
    # "attention" | "mlp" | "all_linear" | explicit module names such as ["q_proj", "v_proj"]
    placement: str | list[str] = "all_linear"
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    num_virtual_tokens: int = 20
    learning_rate: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    batch_size: int = 4
    grad_accum: int = 1
    epochs: int = 3
    max_steps: int | None = None  # when set, overrides epochs
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    max_grad_norm: float | None = 1.0
    seed: int = 42
    max_seq_len: int = 1024
    eval_every_steps: int = 50
    early_stopping_patience: int | None = 3  # evaluations without improvement; None or 0 disables
    save_every_steps: int = 50
    bf16: bool = False
    # Recompute each layer's activations in the backward pass instead of storing them: ~30 % slower steps, far
    # less activation memory (what lets big batches or long sequences fit).
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    keep_checkpoints: int = 2

    @classmethod
    def defaults_for(cls, method: str, **overrides: Any) -> TrainConfig:
        """Defaults a lead can run unchanged, per method (learning rates follow each method's paper/PEFT docs:
        adapters with few parameters need much larger steps than LoRA, full fine-tuning much smaller ones)."""
        if method not in METHODS:
            raise ConfigError("method", f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        base: dict[str, Any] = {"method": method}
        per_method: dict[str, dict[str, Any]] = {
            # all linear layers: the QLoRA paper found attention-only LoRA clearly worse at equal rank.
            "lora": {"learning_rate": 2e-4, "rank": 16, "alpha": 32.0, "placement": "all_linear"},
            "qlora": {
                "learning_rate": 2e-4,
                "rank": 16,
                "alpha": 32.0,
                "placement": "all_linear",
                "bf16": True,
            },
            # DoRA's magnitude vector makes updates larger per step; half LoRA's rate is the usual recommendation.
            "dora": {"learning_rate": 1e-4, "rank": 16, "alpha": 32.0, "placement": "all_linear"},
            # IA3 scales keys, values and the MLP down projection (the IA3 paper's placement), lr from the paper.
            "ia3": {"learning_rate": 3e-3, "placement": ["k_proj", "v_proj", "down_proj"], "dropout": 0.0},
            "prefix": {"learning_rate": 1e-2, "num_virtual_tokens": 20, "dropout": 0.0},
            "prompt": {"learning_rate": 3e-2, "num_virtual_tokens": 20, "dropout": 0.0},
            "full": {"learning_rate": 2e-5, "weight_decay": 0.01, "dropout": 0.0},
        }
        return replace(cls(**base), **{**per_method[method], **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.placement, (list, tuple)):
            data["placement"] = list(self.placement)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown setting {unknown[0]!r}")
        values = dict(data)
        if isinstance(values.get("placement"), tuple):
            values["placement"] = list(values["placement"])
        return cls(**values)

    @property
    def is_peft(self) -> bool:
        return self.method != "full"


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def _require(condition: bool, field_name: str, message: str) -> None:
    if not condition:
        raise ConfigError(field_name, message)


def linear_module_names(model: torch.nn.Module) -> dict[str, set[str]]:
    """Leaf names of the model's linear layers, grouped as {"attention", "mlp", "all_linear"}.

    Works on a meta-device model too. The output head is excluded: adapting it is full-vocabulary sized and
    PEFT's own "all-linear" excludes it for the same reason.
    """
    linear_types: tuple[type, ...] = (torch.nn.Linear,)
    try:
        from transformers.pytorch_utils import Conv1D

        linear_types += (Conv1D,)  # GPT-2 style projections
    except ImportError:  # pragma: no cover - transformers always has it today
        pass
    output_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    groups: dict[str, set[str]] = {"attention": set(), "mlp": set(), "all_linear": set()}
    for name, module in model.named_modules():
        if not isinstance(module, linear_types) or module is output_head:
            continue
        parts = name.split(".")
        leaf, parents = parts[-1], [p.lower() for p in parts[:-1]]
        groups["all_linear"].add(leaf)
        if any(any(key in p for key in _ATTENTION_PARENTS) for p in parents):
            groups["attention"].add(leaf)
        elif any(any(key in p for key in _MLP_PARENTS) for p in parents):
            groups["mlp"].add(leaf)
    return groups


def all_module_leaf_names(model: torch.nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name}


def resolve_target_modules(config: TrainConfig, model: torch.nn.Module) -> list[str]:
    """Module names the adapter wraps, for methods that wrap modules (LoRA family, IA3)."""
    if isinstance(config.placement, str):
        names = linear_module_names(model)[config.placement]
        if not names:
            raise ConfigError(
                "placement",
                f"{type(model).__name__} has no {config.placement} linear layers this trainer recognises; "
                "give an explicit module list",
            )
        return sorted(names)
    return list(config.placement)


def validate(
    config: TrainConfig, model: torch.nn.Module | None = None, *, has_cuda: bool | None = None
) -> None:
    """Raise ConfigError(field, message) for the first setting that cannot work.

    `model` (optional, may live on the meta device) enables architecture checks: target modules exist and are of a
    type the method can wrap, and the model can take virtual tokens. `has_cuda` defaults to this machine's answer;
    the app passes what the GPU workers have.
    """
    if has_cuda is None:
        has_cuda = torch.cuda.is_available()
    c = config
    _require(
        c.method in METHODS, "method", f"unknown method {c.method!r}; choose one of {', '.join(METHODS)}"
    )
    if c.method == "qlora":
        missing = [
            what
            for what, ok in (("a CUDA GPU", has_cuda), ("bitsandbytes", bitsandbytes_available()))
            if not ok
        ]
        _require(
            not missing,
            "method",
            f"QLoRA needs a CUDA GPU and bitsandbytes (4-bit NF4 weights); this machine lacks {' and '.join(missing)}. "
            "Choose LoRA instead, or run on a GPU worker.",
        )
    if c.method in LORA_FAMILY:
        _require(
            isinstance(c.rank, int) and c.rank > 0, "rank", f"rank must be a positive integer, got {c.rank!r}"
        )
        _require(c.alpha > 0, "alpha", f"alpha must be positive, got {c.alpha!r}")
    if c.method in MODULE_METHODS:
        if isinstance(c.placement, str):
            _require(
                c.placement in PLACEMENTS,
                "placement",
                f"unknown placement {c.placement!r}; choose {', '.join(PLACEMENTS)} or a list of module names",
            )
        else:
            _require(
                isinstance(c.placement, (list, tuple))
                and len(c.placement) > 0
                and all(isinstance(p, str) and p for p in c.placement),
                "placement",
                "an explicit placement must be a non-empty list of module names",
            )
    _require(0 <= c.dropout < 1, "dropout", f"dropout must be in [0, 1), got {c.dropout!r}")
    if c.method in VIRTUAL_TOKEN_METHODS:
        _require(
            isinstance(c.num_virtual_tokens, int) and c.num_virtual_tokens > 0,
            "num_virtual_tokens",
            f"num_virtual_tokens must be a positive integer, got {c.num_virtual_tokens!r}",
        )
    _require(c.learning_rate > 0, "learning_rate", f"learning rate must be positive, got {c.learning_rate!r}")
    _require(
        c.scheduler in SCHEDULERS,
        "scheduler",
        f"unknown scheduler {c.scheduler!r}; choose {', '.join(SCHEDULERS)}",
    )
    _require(
        0 <= c.warmup_ratio < 1, "warmup_ratio", f"warm-up ratio must be in [0, 1), got {c.warmup_ratio!r}"
    )
    _require(c.batch_size >= 1, "batch_size", f"batch size must be at least 1, got {c.batch_size!r}")
    _require(
        c.grad_accum >= 1, "grad_accum", f"gradient accumulation must be at least 1, got {c.grad_accum!r}"
    )
    if c.max_steps is None:
        _require(c.epochs >= 1, "epochs", f"epochs must be at least 1 (or set max_steps), got {c.epochs!r}")
    else:
        _require(c.max_steps >= 1, "max_steps", f"max_steps must be at least 1, got {c.max_steps!r}")
    _require(c.weight_decay >= 0, "weight_decay", f"weight decay cannot be negative, got {c.weight_decay!r}")
    _require(
        c.optimizer in OPTIMIZERS,
        "optimizer",
        f"unknown optimizer {c.optimizer!r}; choose {', '.join(OPTIMIZERS)}",
    )
    _require(
        c.max_grad_norm is None or c.max_grad_norm > 0,
        "max_grad_norm",
        f"max grad norm must be positive (or empty to disable clipping), got {c.max_grad_norm!r}",
    )
    _require(
        c.max_seq_len >= 16, "max_seq_len", f"max sequence length must be at least 16, got {c.max_seq_len!r}"
    )
    _require(c.eval_every_steps >= 1, "eval_every_steps", "evaluate at least every 1 step")
    _require(c.save_every_steps >= 1, "save_every_steps", "save at least every 1 step")
    _require(
        c.early_stopping_patience is None or c.early_stopping_patience >= 0,
        "early_stopping_patience",
        "patience cannot be negative",
    )
    _require(c.keep_checkpoints >= 1, "keep_checkpoints", "keep at least one checkpoint (needed to resume)")
    if model is not None:
        _validate_against_model(c, model)


def _validate_against_model(c: TrainConfig, model: torch.nn.Module) -> None:
    arch = type(model).__name__
    model_config = getattr(model, "config", None)
    _require(
        model_config is not None and hasattr(model, "generate"),
        "method",
        f"{arch} is not a generative (causal LM) model; fine-tuning here needs one",
    )
    if c.method in MODULE_METHODS:
        targets = resolve_target_modules(c, model)
        present = all_module_leaf_names(model)
        linear = linear_module_names(model)["all_linear"]
        for name in targets:
            _require(
                name in present,
                "placement",
                f"{arch} has no module named {name!r}; its linear layers are: {', '.join(sorted(linear))}",
            )
            if c.method in ("ia3", "dora", "qlora"):
                # PEFT implements these only for linear layers (LoRA itself can also wrap embeddings/convs).
                _require(
                    name in linear,
                    "placement",
                    f"{c.method} can only adapt linear layers; {name!r} in {arch} is not one",
                )
    if c.method in VIRTUAL_TOKEN_METHODS:
        needed = ("num_hidden_layers", "num_attention_heads", "hidden_size")
        text_config = (
            model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
        )
        lacking = [k for k in needed if getattr(text_config, k, None) is None]
        _require(
            not lacking,
            "method",
            f"{c.method} tuning is not supported for {arch}: its config lacks {', '.join(lacking)}",
        )
        if c.method == "prefix":
            _require(
                getattr(model, "_supports_cache_class", True) is not False
                and getattr(text_config, "is_encoder_decoder", False) is False,
                "method",
                f"prefix tuning needs a decoder with a key/value cache; {arch} has none",
            )
