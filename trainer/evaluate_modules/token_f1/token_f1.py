"""SQuAD-style token F1 per prediction, for short-answer tasks."""

from __future__ import annotations

from statistics import fmean

import datasets
import evaluate

from trainer.metrics.text import token_f1

_DESCRIPTION = """F1 over the bag of tokens of prediction and reference after SQuAD normalisation (the official SQuAD
script's definition: when either side has no tokens, 1.0 if both are empty, else 0.0). Corpus: the mean."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
Returns:
    {"per_item": {"token_f1": [...]}, "corpus": {"token_f1": mean}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class TokenF1(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Rajpurkar, P. et al. (2016). SQuAD: 100,000+ Questions for Machine Comprehension of Text.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions: list[str], references: list[str]) -> dict:
        per_item = [token_f1(p, r) for p, r in zip(predictions, references)]
        return {"per_item": {"token_f1": per_item}, "corpus": {"token_f1": fmean(per_item) if per_item else None}}
