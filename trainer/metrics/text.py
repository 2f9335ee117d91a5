"""Text helpers shared by the metric modules: making any output safe to score, and SQuAD-style answer matching.

`exact_match` and `token_f1` follow the official SQuAD v1.1/v2.0 evaluation script's definitions (normalise: lower
case, drop punctuation, drop the articles a/an/the, collapse whitespace; F1 over the bag of normalised tokens; when
either side has no tokens, F1 is 1 if both are empty and 0 otherwise). No maintained PyPI package exposes them as
functions (the evaluate "squad" metric is a hub script), so they are written here and tested on worked examples.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_SURROGATES = re.compile("[\ud800-\udfff]")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def clean_text(value: str | bytes) -> str:
    """Any model output as valid Unicode: bytes are decoded as UTF-8 with U+FFFD for bad sequences, and lone
    surrogates (what `surrogateescape` leaves for undecodable bytes) become U+FFFD, because tokenizers and Arrow
    reject them."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _SURROGATES.sub("\ufffd", value)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str, *, normalize: bool = True) -> float:
    """1.0 when the (normalised) texts are equal, else 0.0."""
    if normalize:
        return float(normalize_answer(prediction) == normalize_answer(reference))
    return float(prediction == reference)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between normalised prediction and reference."""
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)
