"""How metric names read on pages: one table, so the overview, the timeline and the story agree."""

from __future__ import annotations

METRIC_LABELS: dict[str, str] = {
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
    "rougeLsum": "ROUGE-Lsum",
    "bleu": "BLEU",
    "chrf": "chrF",
    "bertscore": "BERTScore",
    "bertscore_precision": "BERTScore precision",
    "bertscore_recall": "BERTScore recall",
    "exact_match": "exact match",
    "token_f1": "token F1",
    "output_length": "length",
}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)
