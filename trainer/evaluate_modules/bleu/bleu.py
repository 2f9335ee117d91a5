"""BLEU with sacrebleu: sentence BLEU per prediction, corpus BLEU as the corpus figure (0-100 scale)."""

from __future__ import annotations

import datasets
import evaluate
from sacrebleu.metrics import BLEU

_DESCRIPTION = """sacrebleu BLEU. Per prediction: sentence BLEU (what sacrebleu.sentence_bleu computes: exponential
smoothing, effective n-gram order). Corpus: corpus BLEU from pooled n-gram statistics (sacrebleu.corpus_bleu), which
is the standard figure and is not the mean of the sentence scores."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
    tokenize: sacrebleu tokenizer name (default "13a"; "intl", "zh", "ja-mecab", "char", "none", ...).
    lowercase: case-insensitive BLEU (default False).
    smooth_method: sentence-level smoothing, "exp" (default), "floor", "add-k" or "none".
Returns:
    {"per_item": {"bleu": [...]}, "corpus": {"bleu": corpus BLEU}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Bleu(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Post, M. (2018). A Call for Clarity in Reporting BLEU Scores.",
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
        tokenize: str | None = None,
        lowercase: bool = False,
        smooth_method: str = "exp",
    ) -> dict:
        sentence = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method, effective_order=True)
        per_item = [float(sentence.sentence_score(p, [r]).score) for p, r in zip(predictions, references)]
        corpus = None
        if predictions:
            corpus_metric = BLEU(lowercase=lowercase, tokenize=tokenize, smooth_method=smooth_method)
            corpus = float(corpus_metric.corpus_score(list(predictions), [list(references)]).score)
        return {"per_item": {"bleu": per_item}, "corpus": {"bleu": corpus}}
