"""Exact match per prediction (SQuAD normalisation by default), for short-answer and classification tasks."""

from __future__ import annotations

from statistics import fmean

import datasets
import evaluate

from trainer.metrics.text import exact_match

_DESCRIPTION = """1.0 when the prediction equals the reference after SQuAD normalisation (lower case, punctuation and
the articles a/an/the removed, whitespace collapsed), else 0.0. Corpus: the mean (accuracy)."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
    normalize: apply SQuAD normalisation first (default True); False compares the raw strings.
Returns:
    {"per_item": {"exact_match": [0.0 | 1.0, ...]}, "corpus": {"exact_match": mean}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ExactMatch(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar, P. et al. (2016). SQuAD: 100,000+ Questions for Machine Comprehension of Text.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str], normalize: bool = True) -> dict:
        per_item = [exact_match(p, r, normalize=normalize) for p, r in zip(predictions, references)]
        return {"per_item": {"exact_match": per_item}, "corpus": {"exact_match": fmean(per_item) if per_item else None}}
