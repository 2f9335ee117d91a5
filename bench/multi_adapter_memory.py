"""Memory of serving several adapters from one loaded base: peak RSS with five LoRA adapters / with one.

The demo base (SmolLM2-135M-Instruct, fp32) is loaded once by `trainer.generate.Generator`; LoRA adapters (r=8 on
q_proj and v_proj, the size the tuning app trains by default, B drawn at random so each adapter really changes the
outputs) are attached with PEFT's multi-adapter API. Each configuration runs in a fresh subprocess that loads the
base, adds the adapters, generates a few tokens with every adapter and with the base, and reports its peak resident
set size (`ru_maxrss`). A naive server would load one model per adapter, which the `naive_estimate_mb` field sizes.

ratio = peak RSS with five adapters / peak RSS with one (target <= 1.2).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

N_ADAPTERS = 5
PROMPTS = [
    [{"role": "user", "content": "Describe a ceramic mug in one sentence."}],
    [{"role": "user", "content": "Write a tagline for running shoes."}],
]


def _make_adapters(folder: Path, count: int) -> list[Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from trainer.models import default_cache_dir, demo_model_source, load_base

    model, _ = load_base(demo_model_source(), default_cache_dir())
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config, adapter_name="a0")
    paths = []
    for i in range(count):
        name = f"a{i}"
        if i:
            peft_model.add_adapter(name, config)
        torch.manual_seed(i)
        with torch.no_grad():
            for param_name, param in peft_model.named_parameters():
                if f".{name}." in param_name and "lora_" in param_name:
                    param.normal_(0.0, 0.1)
        peft_model.save_pretrained(folder, selected_adapters=[name])
        # save_pretrained writes an adapter not named "default" into a subfolder named after it.
        paths.append(folder / name)
    return paths


def _child(adapter_paths: list[str]) -> dict[str, Any]:
    import torch

    from trainer.generate import DecodeSettings, Generator
    from trainer.models import default_cache_dir, demo_model_source

    if os.environ.get("EVALHUB_BENCH_THREADS"):
        # Same knob as the other benches: on an oversubscribed shared machine one thread avoids OpenMP stalls.
        torch.set_num_threads(int(os.environ["EVALHUB_BENCH_THREADS"]))
    generator = Generator(demo_model_source(), cache_dir=default_cache_dir())
    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = DecodeSettings(max_new_tokens=6, batch_size=2)
    texts: dict[str, list[str]] = {"base": [g.text for g in generator.generate(PROMPTS, settings=settings)]}
    for i, path in enumerate(adapter_paths):
        generator.add_adapter(f"a{i}", path)
    for i in range(len(adapter_paths)):
        texts[f"a{i}"] = [g.text for g in generator.generate(PROMPTS, adapter=f"a{i}", settings=settings)]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_mb": peak_kb / 1024, "after_load_mb": after_load / 1024, "texts": texts}


def _measure(adapter_paths: list[Path]) -> dict[str, Any]:
    code = (
        "import json, sys; from bench.multi_adapter_memory import _child; "
        "print('RESULT' + json.dumps(_child(sys.argv[1:])))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, adapter_paths)], cwd=root, env=env, capture_output=True, text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement subprocess failed:\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def run() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from trainer.models import default_cache_dir, demo_model_source, resolve_local_dir

    resolve_local_dir(demo_model_source(), default_cache_dir())  # convert the GGUF here, not inside a measurement
    with tempfile.TemporaryDirectory(prefix="evalhub-bench-adapters-") as tmp:
        paths = _make_adapters(Path(tmp), N_ADAPTERS)
        one = _measure(paths[:1])
        five = _measure(paths)
    distinct = len({tuple(t) for t in five["texts"].values()})
    adapter_overhead = five["peak_mb"] - one["peak_mb"]
    return {
        "ratio": five["peak_mb"] / one["peak_mb"],
        "ours": five["peak_mb"],
        "baseline": one["peak_mb"],
        "unit": "peak RSS in MB (fresh process: load base, add adapters, generate with each)",
        "peak_mb_one_adapter": one["peak_mb"],
        "peak_mb_five_adapters": five["peak_mb"],
        "rss_after_base_load_mb": five["after_load_mb"],
        "extra_mb_for_four_more_adapters": adapter_overhead,
        "naive_estimate_mb": one["peak_mb"] * N_ADAPTERS,
        "distinct_outputs": distinct,
        "outputs_checked": f"{distinct} distinct output sets among base + {N_ADAPTERS} adapters",
        "summary": (
            f"peak RSS {five['peak_mb']:.0f} MB with {N_ADAPTERS} LoRA adapters vs {one['peak_mb']:.0f} MB with one "
            f"(+{adapter_overhead:.0f} MB); {distinct} of {N_ADAPTERS + 1} output sets distinct"
        ),
    }
