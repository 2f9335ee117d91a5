"""chrF (and chrF++) with sacrebleu: sentence chrF per prediction, corpus chrF as the corpus figure (0-100)."""

from __future__ import annotations

import datasets
import evaluate
from sacrebleu.metrics import CHRF

_DESCRIPTION = """sacrebleu chrF. Per prediction: sacrebleu.sentence_chrf; corpus: sacrebleu.corpus_chrf (character
n-gram statistics pooled over the corpus). word_order=2 gives chrF++."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
    char_order: character n-gram order (default 6).
    word_order: word n-gram order (default 0; 2 = chrF++).
    beta: recall weight (default 2).
    lowercase: case-insensitive (default False).
Returns:
    {"per_item": {"chrf": [...]}, "corpus": {"chrf": corpus chrF}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Chrf(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Popovic, M. (2015). chrF: character n-gram F-score for automatic MT evaluation.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/mjpost/sacrebleu"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        char_order: int = 6,
        word_order: int = 0,
        beta: int = 2,
        lowercase: bool = False,
    ) -> dict:
        metric = CHRF(char_order=char_order, word_order=word_order, beta=beta, lowercase=lowercase)
        per_item = [float(metric.sentence_score(p, [r]).score) for p, r in zip(predictions, references)]
        corpus = float(metric.corpus_score(list(predictions), [list(references)]).score) if predictions else None
        return {"per_item": {"chrf": per_item}, "corpus": {"chrf": corpus}}
