"""ROUGE-1/2/L/Lsum per prediction, with Google's `rouge-score` package (F-measure, as the evaluate hub module)."""

from __future__ import annotations

from statistics import fmean

import datasets
import evaluate
from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

_DESCRIPTION = """ROUGE F-measure of each prediction against its reference (rouge_score.RougeScorer.score), plus the
mean over predictions as the corpus figure. rougeLsum treats newlines as sentence boundaries. The default rouge_score
tokenizer keeps only ASCII letters and digits, so text in other scripts scores 0."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
    rouge_types: which of rouge1, rouge2, rougeL, rougeLsum to compute (default: all four).
    use_stemmer: Porter-stem tokens before matching (default False).
Returns:
    {"per_item": {type: [f-measure, ...]}, "corpus": {type: mean f-measure}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Rouge(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        rouge_types: list[str] | tuple[str, ...] = ROUGE_TYPES,
        use_stemmer: bool = False,
    ) -> dict:
        unknown = [t for t in rouge_types if t not in ROUGE_TYPES]
        if unknown:
            raise ValueError(f"unknown rouge types {unknown}; choose from {list(ROUGE_TYPES)}")
        scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
        per_item: dict[str, list[float]] = {t: [] for t in rouge_types}
        for prediction, reference in zip(predictions, references):
            scores = scorer.score(reference, prediction)
            for t in rouge_types:
                per_item[t].append(float(scores[t].fmeasure))
        return {"per_item": per_item, "corpus": {t: fmean(v) if v else None for t, v in per_item.items()}}
