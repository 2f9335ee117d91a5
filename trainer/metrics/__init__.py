"""Automated metrics, scored per output, through EvalHub's local Hugging Face `evaluate` modules.

    from trainer.metrics import score
    results = score(["rouge1", "bleu", "bertscore", "output_length"], predictions, references)
    results["bleu"].per_item   # sentence BLEU of each prediction (None where it has no prediction/reference)
    results["bleu"].corpus     # corpus BLEU

Metrics (name: module, scale):
- rouge1, rouge2, rougeL, rougeLsum: `rouge` (rouge-score F-measure, 0-1; corpus = mean)
- bleu: `bleu` (sacrebleu sentence BLEU per item, corpus BLEU as corpus; 0-100)
- chrf: `chrf` (sacrebleu sentence chrF per item, corpus chrF as corpus; 0-100)
- bertscore (F1), bertscore_precision, bertscore_recall: `bertscore` (0-1; corpus = mean)
- exact_match, token_f1: SQuAD-style (0-1; corpus = mean)
- output_length: words per output (reference-free; corpus = mean)

Every module lives in `trainer/evaluate_modules/<module>/<module>.py` and is loaded with `evaluate.load(<folder>)`,
so nothing is fetched from the evaluate hub. A hub metric name is accepted only with `allow_downloads=True`.

Per-output states: a prediction of None (no output was produced) or, for reference-based metrics, a reference of
None scores None and is left out of the corpus figure. Empty outputs score what the library gives them (0 for every
reference-based metric here, except exact_match/token_f1 where an empty prediction matches an empty reference).
Bytes are decoded as UTF-8 with replacement characters and lone surrogates are replaced, so no text crashes a run.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

from trainer.errors import TrainerError
from trainer.metrics.text import clean_text

__all__ = [
    "METRICS",
    "MetricError",
    "MetricResult",
    "MetricSpec",
    "available_metrics",
    "metric_specs",
    "module_path",
    "needs_reference",
    "plan",
    "score",
]

MODULES_DIR = Path(__file__).resolve().parent.parent / "evaluate_modules"


class MetricError(TrainerError, ValueError):
    """A metric that cannot be computed as asked; `metric` names it (None for errors about the inputs)."""

    def __init__(self, metric: str | None, message: str) -> None:
        self.metric = metric
        self.message = message
        super().__init__(f"{metric}: {message}" if metric else message)


@dataclass(frozen=True)
class MetricResult:
    """One metric over a list of outputs: a score per output (None where it cannot be scored) and the metric's
    standard corpus-level figure (corpus BLEU/chrF; the mean of the per-output scores for the others)."""

    per_item: list[float | None]
    corpus: float | None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    module: str
    needs_references: bool
    higher_is_better: bool | None  # None: it describes the text (length) rather than grading it
    scale: str
    description: str


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec("rouge1", "rouge", True, True, "0-1", "ROUGE-1 F-measure (unigram overlap)"),
        MetricSpec("rouge2", "rouge", True, True, "0-1", "ROUGE-2 F-measure (bigram overlap)"),
        MetricSpec("rougeL", "rouge", True, True, "0-1", "ROUGE-L F-measure (longest common subsequence)"),
        MetricSpec("rougeLsum", "rouge", True, True, "0-1", "ROUGE-Lsum F-measure (LCS per newline-split sentence)"),
        MetricSpec("bleu", "bleu", True, True, "0-100", "sacrebleu BLEU (sentence per output, corpus overall)"),
        MetricSpec("chrf", "chrf", True, True, "0-100", "sacrebleu chrF (sentence per output, corpus overall)"),
        MetricSpec("bertscore", "bertscore", True, True, "0-1", "BERTScore F1 (all-MiniLM-L6-v2 layer 6 default)"),
        MetricSpec("bertscore_precision", "bertscore", True, True, "0-1", "BERTScore precision"),
        MetricSpec("bertscore_recall", "bertscore", True, True, "0-1", "BERTScore recall"),
        MetricSpec("exact_match", "exact_match", True, True, "0-1", "exact match after SQuAD normalisation"),
        MetricSpec("token_f1", "token_f1", True, True, "0-1", "SQuAD token F1"),
        MetricSpec("output_length", "output_length", False, None, "words", "output length (no reference needed)"),
    ]
}

# Options each module accepts, passed as `options={<module or metric name>: {...}}`.
MODULE_OPTIONS: dict[str, frozenset[str]] = {
    "rouge": frozenset({"use_stemmer"}),
    "bleu": frozenset({"tokenize", "lowercase", "smooth_method"}),
    "chrf": frozenset({"char_order", "word_order", "beta", "lowercase"}),
    "bertscore": frozenset({"model_path", "num_layers", "batch_size", "device"}),
    "exact_match": frozenset({"normalize"}),
    "token_f1": frozenset(),
    "output_length": frozenset({"unit"}),
}

# What may be handed to evaluate.load as a hub metric: "name" or "owner/name", never a path (evaluate.load runs the
# Python script it finds, so a path from a form would be code execution).
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)?$")

_loaded: dict[str, Any] = {}
_load_lock = threading.Lock()
_compute_locks: dict[str, threading.Lock] = {}


def available_metrics() -> list[str]:
    """Names of the local metrics, in display order."""
    return list(METRICS)


def metric_specs() -> list[MetricSpec]:
    return list(METRICS.values())


def needs_reference(metric: str) -> bool:
    """Whether a local metric compares against a reference text (MetricError for an unknown name)."""
    spec = METRICS.get(metric)
    if spec is None:
        raise MetricError(metric, f"unknown metric; local metrics are {', '.join(METRICS)}")
    return spec.needs_references


def module_path(module: str) -> Path:
    """The local evaluate module folder for `module` (e.g. "rouge")."""
    return MODULES_DIR / module


def _load(module_id: str, *, hub: bool = False) -> Any:
    import evaluate

    with _load_lock:
        if module_id not in _loaded:
            target = module_id if hub else str(module_path(module_id))
            # keep_in_memory: the Arrow buffer of predictions stays in RAM, so parallel workers never contend for
            # cache-file locks and nothing is left on disk.
            _loaded[module_id] = evaluate.load(target, keep_in_memory=True)
            _compute_locks[module_id] = threading.Lock()
        return _loaded[module_id]


def plan(
    metric_names: Sequence[str], *, has_references: bool, allow_downloads: bool = False
) -> tuple[list[str], dict[str, MetricError]]:
    """Split requested metrics into those that can run and those refused (name -> error), without computing
    anything: lets a caller run what it can and record a clear state for the rest."""
    runnable: list[str] = []
    refused: dict[str, MetricError] = {}
    for name in dict.fromkeys(metric_names):
        spec = METRICS.get(name)
        if spec is None:
            if not allow_downloads:
                refused[name] = MetricError(
                    name,
                    f"unknown metric; local metrics are {', '.join(METRICS)}. A metric from the evaluate hub can "
                    "only be used when the operator allows downloads",
                )
            elif not _HUB_NAME.match(name):
                refused[name] = MetricError(name, "not a valid evaluate hub metric name")
            else:
                runnable.append(name)
        elif spec.needs_references and not has_references:
            refused[name] = MetricError(
                name, "needs reference texts, and this eval set has none (reference-free metrics: output_length)"
            )
        else:
            runnable.append(name)
    return runnable, refused


def _clean_list(values: Sequence[str | bytes | None], label: str) -> list[str | None]:
    out: list[str | None] = []
    for i, value in enumerate(values):
        if value is None:
            out.append(None)
        elif isinstance(value, (str, bytes)):
            out.append(clean_text(value))
        else:
            raise MetricError(None, f"{label}[{i}] is {type(value).__name__}, expected text")
    return out


def _resolve_options(
    names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """Options per module; keys may be module names ("rouge") or metric names ("rouge1"). When the request
    involves exactly one module, a flat dict of that module's options (`{"num_layers": 4}`) is accepted too."""
    per_module: dict[str, dict[str, Any]] = {}
    options = options or {}
    modules = {METRICS[n].module for n in names if n in METRICS}
    named = set(MODULE_OPTIONS) | set(METRICS) | set(names)
    if options and len(modules) == 1 and len(names) == 1 and not (set(options) & named):
        options = {next(iter(modules)): options}
    for key, values in options.items():
        if key in MODULE_OPTIONS:
            module = key
        elif key in METRICS:
            module = METRICS[key].module
        elif key in names:  # a hub metric: options go through unchecked
            per_module[key] = dict(values)
            continue
        else:
            # Options are keyed by metric or module name; anything else is most likely a flat option dict.
            raise MetricError(
                key, "options must be keyed by metric or module name, e.g. {\"bertscore\": {\"num_layers\": 6}}"
            )
        if not isinstance(values, Mapping):
            raise MetricError(key, "options for a metric must be a mapping of option name to value")
        if module not in {METRICS[n].module for n in names if n in METRICS}:
            continue  # options for a metric not asked for this time (one options dict may cover a whole run)
        unknown = set(values) - MODULE_OPTIONS[module]
        if unknown:
            allowed = ", ".join(sorted(MODULE_OPTIONS[module])) or "none"
            raise MetricError(key, f"unknown option(s) {sorted(unknown)}; allowed: {allowed}")
        per_module.setdefault(module, {}).update(values)
    return per_module


def score(
    metric_names: Sequence[str],
    predictions: Sequence[str | bytes | None],
    references: Sequence[str | bytes | None] | None = None,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    allow_downloads: bool = False,
) -> dict[str, MetricResult]:
    """Score every prediction with every named metric.

    `references`: one per prediction, or None for an eval set without references (then any reference-based metric
    raises MetricError naming it; use `plan()` first to run only the reference-free ones). `options`: per module or
    metric name, e.g. `{"bertscore": {"model_path": "/models/x", "num_layers": 4}, "rouge": {"use_stemmer": True}}`;
    entries for metrics not requested in this call are ignored, so one options dict can serve a whole run. For a
    single metric a flat dict of its options is accepted (`score(["bertscore"], ..., options={"num_layers": 4})`).
    Raises MetricError for unknown or refused metrics, bad options, or a module that fails.
    """
    names = list(dict.fromkeys(metric_names))
    runnable, refused = plan(names, has_references=references is not None, allow_downloads=allow_downloads)
    if refused:
        first = next(iter(refused.values()))
        if len(refused) > 1:
            raise MetricError(first.metric, f"{first.message} (also refused: {', '.join(list(refused)[1:])})")
        raise first
    preds = _clean_list(predictions, "predictions")
    refs = _clean_list(references, "references") if references is not None else None
    if refs is not None and len(refs) != len(preds):
        raise MetricError(None, f"{len(preds)} predictions but {len(refs)} references")
    module_options = _resolve_options(names, options)

    results: dict[str, MetricResult] = {}
    by_module: dict[str, list[str]] = {}
    for name in runnable:
        module = METRICS[name].module if name in METRICS else name
        by_module.setdefault(module, []).append(name)
    for module, module_names in by_module.items():
        hub = module not in MODULE_OPTIONS
        needs_refs = (not hub and METRICS[module_names[0]].needs_references) or (hub and refs is not None)
        keep = [
            i for i, p in enumerate(preds) if p is not None and (refs is None or not needs_refs or refs[i] is not None)
        ]
        kwargs: dict[str, Any] = dict(module_options.get(module, {}))
        if module == "rouge":
            kwargs["rouge_types"] = module_names
        if module == "bertscore":
            kwargs["allow_downloads"] = allow_downloads
        if not keep:
            for name in module_names:
                results[name] = MetricResult([None] * len(preds), None)
            continue
        inputs: dict[str, Any] = {"predictions": [preds[i] for i in keep]}
        if needs_refs:
            inputs["references"] = [refs[i] for i in keep]  # type: ignore[index]
        try:
            evaluation_module = _load(module, hub=hub)
            with _compute_locks[module]:
                raw = evaluation_module.compute(**inputs, **kwargs)
        except MetricError:
            raise
        except Exception as exc:
            raise MetricError(module_names[0], f"{type(exc).__name__}: {exc}") from exc
        for name in module_names:
            per_kept, corpus = _hub_values(name, raw, len(keep)) if hub else (
                raw["per_item"][name],
                raw["corpus"][name],
            )
            per_item: list[float | None] = [None] * len(preds)
            for i, value in zip(keep, per_kept):
                per_item[i] = None if value is None else float(value)
            results[name] = MetricResult(per_item, None if corpus is None else float(corpus))
    return {name: results[name] for name in names}


def _hub_values(name: str, raw: Mapping[str, Any] | None, n: int) -> tuple[list[float | None], float | None]:
    """Best-effort reading of a hub metric's result: a list of n numbers is the per-item score (preferring the key
    named like the metric), a number the corpus figure."""
    raw = raw or {}
    short = name.rsplit("/", 1)[-1]
    keys = sorted(raw, key=lambda k: k != short)
    per_item: list[float | None] = [None] * n
    corpus: float | None = None
    for key in keys:
        value = raw[key]
        if isinstance(value, (list, tuple)) and len(value) == n and all(isinstance(v, Real) for v in value):
            per_item = [float(v) for v in value]
            break
    for key in keys:
        value = raw[key]
        if isinstance(value, Real) and not isinstance(value, bool):
            corpus = float(value)
            break
    return per_item, corpus
