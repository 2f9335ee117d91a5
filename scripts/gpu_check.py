"""The CUDA path of fine-tuning, checked on a real GPU: bf16 LoRA and QLoRA (4-bit NF4) on the demo model.

Run on a machine with a CUDA GPU and the `gpu` extra installed (bitsandbytes):

    .venv/bin/pip install -e '.[gpu]' && .venv/bin/python scripts/gpu_check.py [--out result.json]

Each check trains SmolLM2-135M-Instruct for a few steps on the benchmark's product chats with a validation file,
then loads the saved adapter back and generates. A check passes when every loss is finite, the validation loss went
down, the adapter reloads and the reply is not empty. Prints one JSON line per check and writes them all to --out.
Exit status: 0 all passed, 1 a check failed, 2 no CUDA here (nothing could be checked).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = 30
PROMPT = [
    {"role": "system", "content": "You write short product descriptions."},
    {"role": "user", "content": "Describe the wool scarf for commuters. Material: merino wool. Tone: practical."},
]


def _check(method: str, work: Path, device: str) -> dict[str, Any]:
    import torch

    from bench.train_throughput import product_chats, write_jsonl
    from trainer.config import TrainConfig
    from trainer.models import default_cache_dir, demo_model_source
    from trainer.train import load_trained, train_sft

    train = write_jsonl(product_chats(96, seed=1), work / f"train-{method}.jsonl")
    val = write_jsonl(product_chats(16, seed=2), work / f"val-{method}.jsonl")
    config = TrainConfig.defaults_for(
        method, max_steps=STEPS, eval_every_steps=STEPS // 3, bf16=device == "cuda", batch_size=8, seed=7
    )
    started = time.perf_counter()
    result = train_sft(
        config, base=demo_model_source(), train_file=train, val_file=val, output_dir=work / f"out-{method}",
        cache_dir=default_cache_dir(),
    )
    losses = [h["train_loss"] for h in result.loss_history] + [h["val_loss"] for h in result.val_history]
    model, tokenizer = load_trained(demo_model_source(), Path(result.final_dir), default_cache_dir(),
                                    dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = model.to(device)
    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True).to(device)
    out = model.generate(**inputs, max_new_tokens=60, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    reply = tokenizer.decode(out, skip_special_tokens=True).strip()
    first_val, last_val = result.val_history[0]["val_loss"], result.val_history[-1]["val_loss"]
    checks = {
        "finite_losses": all(math.isfinite(x) for x in losses),
        "validation_loss_went_down": last_val < first_val,
        "reply_not_empty": bool(reply),
    }
    return {
        "method": method,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "bf16": config.bf16,
        "steps": result.steps_done,
        "trainable_params": result.trainable_params,
        "peak_memory_mib": round(result.peak_memory_bytes / 2**20, 1),
        "peak_memory_kind": result.peak_memory_kind,
        "tokens_per_s": round(result.tokens_per_s, 1),
        "val_loss_first_last": [first_val, last_val],
        "wall_s": round(time.perf_counter() - started, 1),
        "reply": reply[:300],
        "checks": checks,
        "passed": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--methods", default="lora,qlora", help="comma-separated: lora (bf16), qlora (4-bit NF4)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="run the LoRA check on the CPU in fp32: tests this script where there is no GPU")
    args = parser.parse_args()
    import torch

    device = "cuda"
    if args.cpu_dry_run:
        device, args.methods = "cpu", "lora"
    elif not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "message": "no CUDA device here: the CUDA path could not be checked"}))
        return 2
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            try:
                res = _check(method, Path(tmp), device)
            except Exception as exc:  # noqa: BLE001 - reported as a failed check, the next one still runs
                res = {"method": method, "passed": False, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(res), flush=True)
            results.append(res)
    qlora = next((r for r in results if r["method"] == "qlora" and r.get("passed")), None)
    lora = next((r for r in results if r["method"] == "lora" and r.get("passed")), None)
    summary = {"all_passed": all(r.get("passed") for r in results)}
    if qlora and lora:
        summary["qlora_over_bf16_lora_peak_memory"] = round(qlora["peak_memory_mib"] / lora["peak_memory_mib"], 3)
    print(json.dumps(summary))
    if args.out:
        args.out.write_text(json.dumps({"results": results, "summary": summary}, indent=2))
    return 0 if summary["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
