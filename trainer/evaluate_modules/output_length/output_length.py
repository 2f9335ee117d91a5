"""Output length per prediction (reference-free)."""

from __future__ import annotations

from statistics import fmean

import datasets
import evaluate

UNITS = ("words", "chars")

_DESCRIPTION = """Length of each prediction: whitespace-separated words (default) or characters. Needs no reference.
Corpus: the mean length. (Token counts come with each generation, from the model's own tokenizer.)"""

_KWARGS = """
Args:
    predictions: list of str.
    unit: "words" (default) or "chars".
Returns:
    {"per_item": {"output_length": [...]}, "corpus": {"output_length": mean}}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class OutputLength(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    def _compute(self, predictions: list[str], unit: str = "words") -> dict:
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; choose from {list(UNITS)}")
        per_item = [float(len(p.split()) if unit == "words" else len(p)) for p in predictions]
        return {
            "per_item": {"output_length": per_item},
            "corpus": {"output_length": fmean(per_item) if per_item else None},
        }
