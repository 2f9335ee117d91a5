"""BERTScore: EvalHub's fast scorer vs `bert_score.score()` on 2,000 candidate/reference pairs.

Same model (the local all-MiniLM-L6-v2 folder), same layer (6), same batch size (64), idf off, both in this process.
The pairs look like a real eval set for product copy: ~400 reference descriptions, five candidates each (as if from
several model versions or samples), some candidates repeated verbatim across versions, lengths from a short
one-liner to a multi-sentence paragraph, with the numbers, units and model codes that make word counts a poor
guide to token counts.

ratio = bert_score seconds / EvalHub seconds (both timed end to end from strings, model loading included).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

N_PAIRS = 2000
CANDIDATES_PER_REFERENCE = 5
BATCH_SIZE = 64
LAYER = 6
ROUNDS = 3

_PRODUCTS = [
    ("insulated water bottle", ["750 ml", "1.2 L", "500 ml"], ["18/8 stainless steel", "BPA-free Tritan"]),
    ("wireless earbuds", ["Bluetooth 5.3", "IPX4", "30-hour battery"], ["ANC", "USB-C fast charging (10 min = 2 h)"]),
    ("running shoe", ["EU 38-46", "280 g", "8 mm drop"], ["breathable mesh upper", "EVA midsole"]),
    ("laptop backpack", ["fits 15.6\" laptops", "28 L", "1.1 kg"], ["water-resistant 600D polyester", "YKK zips"]),
    ("cast-iron skillet", ["26 cm", "2.3 kg", "oven-safe to 260 °C"], ["pre-seasoned", "dual pour spouts"]),
    ("LED desk lamp", ["5 brightness levels", "3000-6500K", "10 W"], ["USB-A charging port", "60-min auto-off"]),
    ("yoga mat", ["183 x 61 cm", "6 mm", "1.8 kg"], ["non-slip TPE", "alignment lines"]),
    ("electric kettle", ["1.7 L", "2200 W", "boils in ~4 min"], ["keep-warm mode", "auto shut-off"]),
    ("merino wool sweater", ["sizes XS-XXL", "18.5 micron", "320 g/m²"], ["ribbed cuffs", "machine washable at 30 °C"]),
    ("portable power bank", ["20,000 mAh", "65 W PD", "2x USB-C + 1x USB-A"], ["LED display", "airline-safe"]),
    ("noise-cancelling headphones", ["40 mm drivers", "-35 dB ANC", "250 g"], ["multipoint pairing", "3.5 mm jack"]),
    ("ceramic coffee mug", ["350 ml", "dishwasher-safe", "microwave-safe"], ["speckled glaze", "handmade in Portugal"]),
]
_OPENERS = [
    "Meet the {name}:",
    "This {name} is built for everyday use.",
    "Upgrade your routine with our {name}.",
    "The {name} you will reach for first.",
    "Designed for people on the move, the {name} delivers.",
]
_BENEFITS = [
    "It keeps up with busy days and still looks good.",
    "Easy to clean, easy to carry, hard to put down.",
    "Backed by a 2-year warranty and free 30-day returns.",
    "A thoughtful gift for commuters, students and travellers.",
    "Every detail was tested by our team for months before launch.",
    "Order today and it ships within 24 hours.",
]


def _describe(rng: random.Random, product: tuple[str, list[str], list[str]], n_sentences: int) -> str:
    name, specs, features = product
    parts = [rng.choice(_OPENERS).format(name=name)]
    spec_text = ", ".join(rng.sample(specs, k=rng.randint(1, len(specs))))
    parts.append(f"It offers {spec_text} and {rng.choice(features)}.")
    parts.extend(rng.sample(_BENEFITS, k=min(len(_BENEFITS), max(0, n_sentences - 2))))
    return " ".join(parts)


def make_pairs(n_pairs: int = N_PAIRS, seed: int = 0) -> tuple[list[str], list[str]]:
    """(candidates, references): references repeat once per candidate, ~20 % of candidates repeat verbatim."""
    rng = random.Random(seed)
    candidates: list[str] = []
    references: list[str] = []
    while len(candidates) < n_pairs:
        product = rng.choice(_PRODUCTS)
        reference = _describe(rng, product, rng.choice([1, 2, 2, 3, 4, 6]))
        version_outputs: list[str] = []
        for _ in range(CANDIDATES_PER_REFERENCE):
            if version_outputs and rng.random() < 0.2:
                # Two model versions (or a greedy rerun) often produce the very same text.
                candidate = rng.choice(version_outputs)
            elif rng.random() < 0.05:
                candidate = reference
            else:
                candidate = _describe(rng, product, rng.choice([1, 2, 3, 3, 5]))
            version_outputs.append(candidate)
            candidates.append(candidate)
            references.append(reference)
    return candidates[:n_pairs], references[:n_pairs]


def _set_threads(torch: Any) -> None:
    # Both sides always share one thread setting. EVALHUB_BENCH_THREADS exists because on an oversubscribed shared
    # machine two OpenMP threads per process stall each other far more than they help.
    threads = os.environ.get("EVALHUB_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))


def run() -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import bert_score
    import torch

    from trainer.metrics.bertscore_fast import FastBertScorer, default_model_path

    _set_threads(torch)
    load_before = os.getloadavg()[0]

    candidates, references = make_pairs()
    model_path = str(default_model_path())

    ours_times: list[float] = []
    base_times: list[float] = []
    ours_f1: list[float] = []
    base_f1: list[float] = []
    # Interleaved rounds, median time: the 2 shared cores are noisy, and alternating keeps the noise fair.
    for _ in range(ROUNDS):
        started = time.perf_counter()
        _, _, f1 = bert_score.score(
            candidates, references, model_type=model_path, num_layers=LAYER, idf=False, batch_size=BATCH_SIZE
        )
        base_times.append(time.perf_counter() - started)
        base_f1 = f1.tolist()

        started = time.perf_counter()
        scorer = FastBertScorer(model_path, num_layers=LAYER, batch_size=BATCH_SIZE)
        result = scorer.score(candidates, references)
        ours_times.append(time.perf_counter() - started)
        ours_f1 = result.f1

    max_abs_diff = max(abs(a - b) for a, b in zip(ours_f1, base_f1))
    ours = statistics.median(ours_times)
    baseline = statistics.median(base_times)
    ratio = baseline / ours
    unique = len(set(candidates) | set(references))
    return {
        "ratio": ratio,
        "ours": ours,
        "baseline": baseline,
        "unit": "seconds for 2,000 pairs (median of 3 interleaved rounds, model load included)",
        "ours_times": ours_times,
        "baseline_times": base_times,
        "max_abs_diff": max_abs_diff,
        "parity_ok": max_abs_diff <= 1e-4,
        "pairs": len(candidates),
        "unique_sentences": unique,
        "torch_threads": torch.get_num_threads(),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "summary": (
            f"BERTScore F1 on {len(candidates)} pairs ({unique} unique sentences), MiniLM layer {LAYER}, batch "
            f"{BATCH_SIZE}: ours {ours:.2f} s vs bert_score {baseline:.2f} s, max |F1 diff| {max_abs_diff:.1e}"
        ),
    }
