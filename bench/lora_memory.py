"""Peak memory of LoRA vs full fine-tuning of the demo model (SmolLM2-135M-Instruct), same batches.

Each measurement runs in its own fresh Python subprocess (so none inherits another's allocations), one after the
other. All run `trainer.train.train_sft` with the same data (the 64 product chats of bench/train_throughput.py),
batch size 4, seed, max_seq_len and 3 optimizer steps (AdamW allocates its state on the first step, so steps 2-3
show the steady state); each method uses its own defaults otherwise (`TrainConfig.defaults_for`: LoRA r=16 on all
linear layers; full fine-tuning updates all 134.5M weights).

Method: peak resident set size of the process (getrusage ru_maxrss) read at the end of the last training step,
before anything is written to disk, minus the process's resident size just before the model is loaded (Python,
torch and transformers imported). So it covers what training costs: base weights (the same 540 MB on both sides),
gradients, optimizer state, activations and temporaries. glibc's malloc raises its mmap threshold after large frees
and then keeps freed activation memory in the heap, so RSS would show allocator caching rather than live memory;
the children run with MALLOC_MMAP_THRESHOLD_=131072 (glibc's default, made fixed) so big tensors are returned on
free, which is the CPU analogue of torch.cuda.max_memory_allocated.

Two pairs are measured. Activations of this small model with a 49k-token vocabulary, at batch 4 x ~150 tokens,
are ~1.5 GB, the same for both methods, which hides what LoRA saves (gradients + AdamW state = 3x the weights).
`ratio` is the pair with gradient checkpointing on both sides (the setting for memory-tight runs: activations are
recomputed instead of stored); `ratio_without_gradient_checkpointing` is the default-settings pair.

ratio = LoRA peak / full fine-tuning peak (target <= 0.4).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

STEPS = 3
BATCH_SIZE = 4
MAX_SEQ_LEN = 256
SEED = 1234
_MARK = "LORA_MEMORY_RESULT "


class _Measured(Exception):
    """Raised from the progress callback to stop right after the measured step, before any saving."""


def _child(method: str, workdir: str, gradient_checkpointing: bool) -> None:
    import resource

    import psutil
    import torch  # noqa: F401  (imported before the baseline reading, like every real worker)

    from bench.train_throughput import product_chats, write_jsonl
    from trainer.config import TrainConfig
    from trainer.models import default_cache_dir, demo_model_source
    from trainer.train import train_sft

    work = Path(workdir)
    train_file = write_jsonl(product_chats(64, seed=1), work / f"train-{method}.jsonl")
    config = TrainConfig.defaults_for(
        method,
        max_steps=STEPS,
        batch_size=BATCH_SIZE,
        max_seq_len=MAX_SEQ_LEN,
        seed=SEED,
        save_every_steps=10_000,
        gradient_checkpointing=gradient_checkpointing,
    )
    before = psutil.Process().memory_info().rss
    seen: dict[str, Any] = {}

    def progress(event: dict[str, Any]) -> None:
        if event["event"] == "step":
            seen.setdefault("losses", []).append(event["train_loss"])
            if event["step"] == STEPS:
                seen["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                raise _Measured

    try:
        train_sft(
            config,
            base=demo_model_source(),
            train_file=train_file,
            val_file=None,
            output_dir=work / f"out-{method}",
            cache_dir=default_cache_dir(),
            progress=progress,
        )
    except _Measured:
        pass
    print(
        _MARK
        + json.dumps(
            {
                "method": method,
                "gradient_checkpointing": config.gradient_checkpointing,
                "rss_before_load": before,
                "peak_rss": seen["peak"],
                "peak_delta": seen["peak"] - before,
                "train_losses": seen["losses"],
            }
        ),
        flush=True,
    )


def _measure(method: str, workdir: Path, gradient_checkpointing: bool) -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    code = (
        "from bench.lora_memory import _child; "
        f"_child({method!r}, {str(workdir)!r}, {gradient_checkpointing!r})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "131072"},
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    raise RuntimeError(f"{method} child failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")


def run() -> dict[str, Any]:
    import tempfile

    from trainer.models import default_cache_dir, demo_model_source, resolve_local_dir

    # Convert the GGUF once, outside the measurements.
    resolve_local_dir(demo_model_source(), default_cache_dir())
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lora-memory-") as tmp:
        for gc in (True, False):
            for method in ("lora", "full"):
                measured = _measure(method, Path(tmp), gc)
                assert measured["gradient_checkpointing"] is gc, "the child ignored the requested setting"
                runs[f"{method}{'_gc' if gc else ''}"] = measured
    mib = 1024 * 1024
    lora, full = runs["lora_gc"], runs["full_gc"]
    ratio = lora["peak_delta"] / full["peak_delta"]
    ratio_plain = runs["lora"]["peak_delta"] / runs["full"]["peak_delta"]
    first_losses = [r["train_losses"][0] for r in runs.values()]
    return {
        "load_average_1min_at_end": os.getloadavg()[0],
        "ratio": ratio,
        "ours": lora["peak_delta"] / mib,
        "baseline": full["peak_delta"] / mib,
        "unit": "MiB peak RSS above the pre-load process (training cost incl. base weights), "
        "gradient checkpointing on both sides",
        "target_ratio_max": 0.4,
        "meets_target": ratio <= 0.4,
        "ratio_without_gradient_checkpointing": ratio_plain,
        "peak_delta_mib": {name: r["peak_delta"] / mib for name, r in runs.items()},
        "peak_rss_mib": {name: r["peak_rss"] / mib for name, r in runs.items()},
        "rss_before_load_mib": {name: r["rss_before_load"] / mib for name, r in runs.items()},
        # Parity: all four ran the same first batch from the same base; LoRA's B matrices start at zero, so every
        # first-step loss must be the base model's loss on that batch.
        "first_step_losses": {name: r["train_losses"][0] for name, r in runs.items()},
        "same_first_batch_loss": max(first_losses) - min(first_losses) < 1e-3,
        "steps": STEPS,
        "batch_size": BATCH_SIZE,
        "method": "fresh subprocess per run, MALLOC_MMAP_THRESHOLD_=131072; getrusage ru_maxrss at the end of the "
        "last step minus psutil RSS before model load",
        "summary": (
            f"peak training memory, batch {BATCH_SIZE}, gradient checkpointing: LoRA {lora['peak_delta'] / mib:.0f} "
            f"MiB vs full {full['peak_delta'] / mib:.0f} MiB (ratio {ratio:.2f}); without checkpointing "
            f"{runs['lora']['peak_delta'] / mib:.0f} vs {runs['full']['peak_delta'] / mib:.0f} MiB "
            f"(ratio {ratio_plain:.2f}, activations dominate at this model size)"
        ),
    }
