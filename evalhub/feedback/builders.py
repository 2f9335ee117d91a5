"""Export builders: annotations -> training records, streamed from the database.

Sources
- SFT `rated`: outputs whose final score is at least `min_score` on every chosen criterion; the output is the target.
- SFT `corrections`: an annotator's edit of an output; the corrected text is the target. With both sources chosen,
  an output whose correction is exported is not exported as rated too: someone judged it worth fixing, so its
  original would teach the very thing they fixed, next to the fix, for the same prompt.
- SFT `curated`: curation decisions "accept" and "fix" (the fixed prompt/answer), with a reference answer.
- DPO `arena`: per comparison, the side its votes prefer is chosen, the other rejected.
- DPO `rubric_pairs`: two outputs for the same prompt whose final rubric scores differ by at least `margin`.

Scores are normalised to 0..1 per criterion ((value - lowest level) / (highest - lowest); pass/fail is 0/1), so one
threshold and one margin work across Likert and pass/fail criteria. A criterion's final value for an output is the
reviewer's adjudicated value when there is one, else the (reliability-weighted) mean of its ratings.

Filters (each drop is counted by reason)
- `min_agreement`: ratings: 1 - spread / scale range among an output's ratings of a criterion; votes: the winning
  side's share of a comparison's counted votes. A single rating or vote has no agreement and fails any
  `min_agreement` above 0; an adjudicated value counts as full agreement. Not applied to corrections and curation
  decisions (one person's edit has nothing to agree with).
- `adjudicated_only`: only values a reviewer adjudicated (and corrections on adjudicated items); arena votes and
  curation decisions are never adjudicated, so this option leaves them out.
- `min_gold_accuracy`: annotators whose accuracy on gold items (all review campaigns in scope) is below it are left
  out everywhere; annotators who answered no gold item are kept.
- `reliability`: an annotator's agreement with the leave-one-out consensus of the others (review campaigns and arena
  campaigns in scope, weighted by the units they shared). "weight": ratings and votes count with that weight when
  scores are averaged and comparisons decided (an annotator without a measurable reliability counts 1); "drop":
  annotators below `min_reliability` are left out.
- Leakage guard: records whose prompt equals (after normalisation) or near-duplicates (word Jaccard >=
  `leakage_threshold`) a prompt of a held-out version (every eval/test split of the project plus the ones given) are
  dropped, whatever else they pass.

Streaming: every query is `.values_list(...).iterator(chunk_size=...)`; votes are merged with their comparisons'
texts in comparison order, so memory holds one comparison's votes, not the export. Per-output aggregates of
ratings are kept in memory (one small entry per rated output, not per rating).
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from evalhub.datasets.quality import overlapping_prompts
from evalhub.projects.models import Project

SFT_SOURCES = ("rated", "corrections", "curated")
DPO_SOURCES = ("arena", "rubric_pairs")
HELD_OUT_SPLITS = ("eval", "test")
RELIABILITY_MODES = ("ignore", "weight", "drop")
CHUNK = 5000

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ExportOptions:
    """Everything that decides what an export contains. Stored with the export, defaults included."""

    kind: str  # "sft" | "dpo"
    sources: tuple[str, ...] = ()
    review_campaign_ids: tuple[int, ...] | None = None  # None: every review campaign of the project
    arena_campaign_ids: tuple[int, ...] | None = None
    curation_queue_ids: tuple[int, ...] | None = None
    criteria: tuple[str, ...] = ()  # rubric criteria to judge by; empty: every numeric criterion rated
    min_score: float = 0.75  # rated SFT: normalised score every chosen criterion must reach
    margin: float = 0.25  # rubric pairs: normalised score difference
    max_pairs_per_prompt: int = 3
    include_ties: bool = (
        False  # arena: tie votes count (lower the winner's share; a tie plurality gives no pair)
    )
    include_both_bad: bool = False
    include_imported: bool = True  # arena: imported preference labels (origin "import")
    min_agreement: float = 0.0
    adjudicated_only: bool = False
    min_gold_accuracy: float | None = None
    reliability: str = "ignore"
    min_reliability: float = 0.5
    held_out_version_ids: tuple[int, ...] = ()
    leakage_threshold: float = 0.8

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        allowed = SFT_SOURCES if self.kind == "sft" else DPO_SOURCES if self.kind == "dpo" else ()
        if not allowed:
            errors["kind"] = "Choose sft or dpo."
        elif not self.sources:
            errors["sources"] = f"Choose at least one source: {', '.join(allowed)}."
        elif set(self.sources) - set(allowed):
            errors["sources"] = (
                f"A {self.kind} export takes {', '.join(allowed)}; not {', '.join(sorted(set(self.sources) - set(allowed)))}."
            )
        for name in ("min_score", "margin", "min_agreement", "min_reliability"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                errors[name] = "A number from 0 to 1."
        if self.margin == 0 and "rubric_pairs" in self.sources:
            errors["margin"] = "A pair needs a margin above 0 (equal scores prefer nothing)."
        if self.min_gold_accuracy is not None and not (0 <= self.min_gold_accuracy <= 1):
            errors["min_gold_accuracy"] = "A number from 0 to 1, or empty."
        if self.reliability not in RELIABILITY_MODES:
            errors["reliability"] = f"Choose one of {', '.join(RELIABILITY_MODES)}."
        if not 0 < self.leakage_threshold <= 1:
            errors["leakage_threshold"] = "A Jaccard similarity above 0 and at most 1."
        if not 1 <= self.max_pairs_per_prompt <= 100:
            errors["max_pairs_per_prompt"] = "Between 1 and 100."
        if errors:
            raise ValidationError(errors)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportOptions:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValidationError({unknown[0]: f"Unknown option {unknown[0]!r}."})
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


@dataclass
class Record:
    """One training record plus what the dataset version stores for it."""

    source: str
    key: str  # "<table>:<id>" of what the record is about (an output, a comparison, a correction...)
    prompt: Messages
    answer: str  # SFT target, or DPO chosen
    rejected: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)

    def trl(self) -> dict[str, Any]:
        """TRL's conversational format, plus two provenance keys TRL ignores."""
        if self.rejected:
            return {
                "prompt": self.prompt,
                "chosen": [{"role": "assistant", "content": self.answer}],
                "rejected": [{"role": "assistant", "content": self.rejected}],
                "source": self.source,
                "id": self.key,
            }
        return {
            "messages": [*self.prompt, {"role": "assistant", "content": self.answer}],
            "source": self.source,
            "id": self.key,
        }


class IdSet:
    """Ids of the annotations used, in a compact int64 array; `ranges()` = sorted, merged [first, last] runs."""

    def __init__(self) -> None:
        self._ids = array("q")

    def add(self, *ids: int | None) -> None:
        self._ids.extend(i for i in ids if i is not None)

    def ranges(self) -> list[list[int]]:
        out: list[list[int]] = []
        for i in sorted(set(self._ids)):
            if out and i == out[-1][1] + 1:
                out[-1][1] = i
            else:
                out.append([i, i])
        return out

    def __len__(self) -> int:
        return len(set(self._ids))


@dataclass
class Tally:
    """What happened to the candidates of each source, and the annotations the kept records rest on."""

    candidates: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kept: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    used: dict[str, IdSet] = field(default_factory=lambda: defaultdict(IdSet))

    def drop(self, source: str, reason: str, n: int = 1) -> None:
        self.dropped[source][reason] += n

    def as_counts(self) -> dict[str, Any]:
        return {
            "candidates": dict(self.candidates),
            "kept": dict(self.kept),
            "dropped": {s: dict(r) for s, r in self.dropped.items()},
            "written": sum(self.kept.values()),
            "annotations": sum(len(ids) for ids in self.used.values()),
            "annotations_by_table": {t: len(ids) for t, ids in self.used.items()},
            "leaked": sum(r.get("leakage", 0) for r in self.dropped.values()),
        }

    def lineage(self) -> dict[str, list[list[int]]]:
        return {table: ids.ranges() for table, ids in self.used.items()}


# --------------------------------------------------------------------------------------------------------------------
# Prompts


def chat_prompt(prompt: str, messages: Any) -> Messages:
    """An example's prompt as chat turns, without a trailing reference turn (what generation was given)."""
    if messages:
        msgs = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in messages]
        if msgs and msgs[-1]["role"] == "assistant":
            msgs = msgs[:-1]
        return msgs
    return [{"role": "user", "content": prompt or ""}]


def prompt_text(prompt: str, messages: Any) -> str:
    """The text the leakage guard compares (the same rule as the datasets quality report)."""
    if messages:
        return "\n".join(m["content"] for m in chat_prompt(prompt, messages))
    return prompt or ""


def held_out_versions(project: Project, extra_ids: Iterable[int] = ()) -> list[int]:
    from evalhub.datasets.models import DatasetVersion

    ids = set(
        DatasetVersion.objects.filter(dataset__project=project, split_name__in=HELD_OUT_SPLITS).values_list(
            "pk", flat=True
        )
    )
    extra = set(extra_ids)
    found = set(
        DatasetVersion.objects.filter(dataset__project=project, pk__in=extra).values_list("pk", flat=True)
    )
    if extra - found:
        raise ValidationError(
            {"held_out_version_ids": "Some held-out versions are not part of this project."}
        )
    return sorted(ids | found)


def held_out_texts(version_ids: list[int]) -> list[str]:
    from evalhub.datasets.models import Example

    rows = Example.objects.filter(version_id__in=version_ids).values_list("prompt", "messages")
    return sorted({prompt_text(p, m) for p, m in rows.iterator(chunk_size=CHUNK)})


def leaked_keys(prompts: dict[Any, str], held_out: list[str], threshold: float) -> set[Any]:
    """Keys of `prompts` whose text is (nearly) one of the held-out prompts."""
    keys = list(prompts)
    hits = overlapping_prompts([prompts[k] for k in keys], held_out, threshold=threshold)
    return {keys[i] for i in hits}


# --------------------------------------------------------------------------------------------------------------------
# Annotator quality


@dataclass(frozen=True)
class AnnotatorQuality:
    excluded: frozenset[int]
    weights: dict[int, float]  # only in "weight" mode; missing = 1
    gold: dict[int, float]
    reliability: dict[int, float]
    reasons: dict[int, str]

    def weight(self, annotator_id: int | None) -> float:
        return self.weights.get(annotator_id, 1.0) if annotator_id is not None else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "excluded": sorted(self.excluded),
            "reasons": {str(k): v for k, v in self.reasons.items()},
            "gold_accuracy": {str(k): round(v, 4) for k, v in self.gold.items()},
            "reliability": {str(k): round(v, 4) for k, v in self.reliability.items()},
        }


def review_campaigns(project: Project, ids: tuple[int, ...] | None) -> list[Any]:
    from evalhub.reviews.models import Campaign

    qs = Campaign.objects.filter(project=project)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
        if qs.count() != len(set(ids)):
            raise ValidationError(
                {"review_campaign_ids": "Some review campaigns are not part of this project."}
            )
    return list(qs.select_related("rubric_version"))


def arena_campaigns(project: Project, ids: tuple[int, ...] | None) -> list[Any]:
    from evalhub.arena.models import Campaign

    qs = Campaign.objects.filter(project=project)
    if ids is not None:
        qs = qs.filter(pk__in=ids)
        if qs.count() != len(set(ids)):
            raise ValidationError(
                {"arena_campaign_ids": "Some arena campaigns are not part of this project."}
            )
    return list(qs)


def annotator_quality(project: Project, opts: ExportOptions) -> AnnotatorQuality:
    """Gold accuracy and reliability per annotator over the campaigns in scope; who is left out and why."""
    gold: dict[int, float] = {}
    reliability: dict[int, float] = {}
    needs_gold = opts.min_gold_accuracy is not None
    needs_reliability = opts.reliability != "ignore"
    if not (needs_gold or needs_reliability):
        return AnnotatorQuality(frozenset(), {}, {}, {}, {})
    from evalhub.reviews.analysis import annotator_report

    gold_parts: dict[int, list[tuple[float, int]]] = defaultdict(list)
    rel_parts: dict[int, list[tuple[float, int]]] = defaultdict(list)
    if opts.kind == "sft" or "rubric_pairs" in opts.sources:
        for campaign in review_campaigns(project, opts.review_campaign_ids):
            for row in annotator_report(campaign):
                if row.gold is not None and row.gold_n and not math.isnan(row.gold.value):
                    gold_parts[row.annotator_id].append((row.gold.value, row.gold_n))
                if row.consensus is not None and row.consensus_units:
                    rel_parts[row.annotator_id].append((row.consensus, row.consensus_units))
    if needs_reliability and "arena" in opts.sources:
        from evalhub.arena.selectors import annotator_stats

        for campaign in arena_campaigns(project, opts.arena_campaign_ids):
            for stats in annotator_stats(campaign):
                if stats.shared_units and not math.isnan(stats.agreement):
                    rel_parts[stats.user_id].append((stats.agreement, stats.shared_units))

    def pooled(parts: list[tuple[float, int]]) -> float:
        return sum(v * n for v, n in parts) / sum(n for _, n in parts)

    gold = {a: pooled(p) for a, p in gold_parts.items()}
    reliability = {a: pooled(p) for a, p in rel_parts.items()}
    excluded: set[int] = set()
    reasons: dict[int, str] = {}
    if needs_gold:
        for a, value in gold.items():
            if value < opts.min_gold_accuracy:  # type: ignore[operator]
                excluded.add(a)
                reasons[a] = f"gold accuracy {value:.0%} < {opts.min_gold_accuracy:.0%}"
    weights: dict[int, float] = {}
    if opts.reliability == "drop":
        for a, value in reliability.items():
            if value < opts.min_reliability and a not in excluded:
                excluded.add(a)
                reasons[a] = f"agreement with the others {value:.0%} < {opts.min_reliability:.0%}"
    elif opts.reliability == "weight":
        weights = {a: max(v, 0.0) for a, v in reliability.items()}
    return AnnotatorQuality(frozenset(excluded), weights, gold, reliability, reasons)


# --------------------------------------------------------------------------------------------------------------------
# Rubric scores per output


@dataclass
class _Scale:
    name: str
    low: float
    high: float

    def normalise(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low) if self.high > self.low else 0.0


@dataclass
class OutputScore:
    """Final normalised values of one output per criterion name, with agreement and the annotations behind them."""

    values: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float | None] = field(default_factory=dict)
    adjudicated: dict[str, bool] = field(default_factory=dict)
    ratings: list[int] = field(default_factory=list)
    adjudications: list[int] = field(default_factory=list)
    items: list[int] = field(default_factory=list)


def _criterion_scales(campaigns: list[Any]) -> dict[int, _Scale]:
    from evalhub.reviews.models import Criterion, Scale

    scales: dict[int, _Scale] = {}
    versions = {c.rubric_version_id for c in campaigns}
    for pk, name, scale, anchors in Criterion.objects.filter(
        version_id__in=versions, scale__in=[Scale.LIKERT, Scale.BINARY]
    ).values_list("pk", "name", "scale", "anchors"):
        scales[pk] = (
            _Scale(name, 1.0, float(len(anchors or []))) if scale == Scale.LIKERT else _Scale(name, 0.0, 1.0)
        )
    return scales


def output_scores(
    project: Project, opts: ExportOptions, quality: AnnotatorQuality, tally: Tally, source: str
) -> dict[int, OutputScore]:
    """Final normalised scores per output (gold items left out), with the filters on annotators applied."""
    from evalhub.reviews.models import AdjudicatedValue, AdjudicationStatus, RatingValue

    campaigns = review_campaigns(project, opts.review_campaign_ids)
    scales = _criterion_scales(campaigns)
    wanted = set(opts.criteria)
    known_names = {s.name for s in scales.values()}
    if wanted - known_names:
        raise ValidationError(
            {
                "criteria": f"No numeric criterion called {', '.join(sorted(wanted - known_names))} "
                "in the review campaigns in scope."
            }
        )
    crit_ids = [pk for pk, s in scales.items() if not wanted or s.name in wanted]
    campaign_ids = [c.pk for c in campaigns]
    adjudicated: dict[tuple[int, int], tuple[float, int]] = {
        (item_id, crit_id): (number, adj_id)
        for item_id, crit_id, number, adj_id in AdjudicatedValue.objects.filter(
            adjudication__campaign_id__in=campaign_ids,
            adjudication__status=AdjudicationStatus.RESOLVED,
            adjudication__item__is_gold=False,
            criterion_id__in=crit_ids,
            number__isnull=False,
        ).values_list("adjudication__item_id", "criterion_id", "number", "adjudication_id")
    }
    # (output, criterion name) -> [(value, weight, rating id)]; adjudicated ones separately.
    per: dict[tuple[int, str], list[tuple[float, float, int]]] = defaultdict(list)
    adj_per: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
    items_of: dict[int, set[int]] = defaultdict(set)
    rows = RatingValue.objects.filter(
        rating__campaign_id__in=campaign_ids,
        rating__item__is_gold=False,
        criterion_id__in=crit_ids,
        number__isnull=False,
    ).values_list(
        "rating_id",
        "rating__item_id",
        "rating__item__output_id",
        "criterion_id",
        "number",
        "rating__annotator_id",
    )
    seen_adjudicated: set[tuple[int, int]] = set()
    excluded_ratings: set[int] = set()
    for rating_id, item_id, output_id, crit_id, number, annotator_id in rows.iterator(chunk_size=CHUNK):
        scale = scales[crit_id]
        items_of[output_id].add(item_id)
        key = (output_id, scale.name)
        if (item_id, crit_id) in adjudicated:
            if (item_id, crit_id) not in seen_adjudicated:
                seen_adjudicated.add((item_id, crit_id))
                value, adj_id = adjudicated[(item_id, crit_id)]
                adj_per[key].append((scale.normalise(float(value)), adj_id))
            continue
        if annotator_id in quality.excluded:
            excluded_ratings.add(rating_id)
            continue
        per[key].append((scale.normalise(float(number)), quality.weight(annotator_id), rating_id))
    if excluded_ratings:
        tally.drop(source, "ratings_by_excluded_annotators", len(excluded_ratings))
    scores: dict[int, OutputScore] = {}
    for output_id, name in set(per) | set(adj_per):
        score = scores.setdefault(output_id, OutputScore(items=sorted(items_of[output_id])))
        if adj_per.get((output_id, name)):
            values = adj_per[(output_id, name)]
            score.values[name] = sum(v for v, _ in values) / len(values)
            score.agreement[name] = 1.0
            score.adjudicated[name] = True
            score.adjudications += [a for _, a in values]
            continue
        ratings = per[(output_id, name)]
        total = sum(w for _, w, _ in ratings)
        if total <= 0:
            continue
        score.values[name] = sum(v * w for v, w, _ in ratings) / total
        spread = max(v for v, _, _ in ratings) - min(v for v, _, _ in ratings)
        score.agreement[name] = 1.0 - spread if len(ratings) >= 2 else None
        score.adjudicated[name] = False
        score.ratings += [r for _, _, r in ratings]
    return scores


def _judged(score: OutputScore, opts: ExportOptions) -> tuple[str | None, list[str]]:
    """(reason it is not usable or None, the criterion names it is judged on)."""
    names = sorted(opts.criteria) if opts.criteria else sorted(score.values)
    if not names or any(n not in score.values for n in names):
        return "missing_criteria", names
    if opts.adjudicated_only and not all(score.adjudicated.get(n) for n in names):
        return "not_adjudicated", names
    if opts.min_agreement > 0:
        for n in names:
            agreement = score.agreement.get(n)
            if agreement is None or agreement < opts.min_agreement - 1e-12:
                return "low_agreement", names
    return None, names


def _output_rows(output_ids: list[int]) -> Iterator[tuple[Any, ...]]:
    """(id, text, error, example_id, prompt, messages, attributes) of outputs, in chunks of ids."""
    from evalhub.generation.models import Output

    for start in range(0, len(output_ids), CHUNK):
        chunk = output_ids[start : start + CHUNK]
        yield from (
            Output.objects.filter(pk__in=chunk)
            .order_by("pk")
            .values_list(
                "pk",
                "text",
                "error",
                "example_id",
                "example__prompt",
                "example__messages",
                "example__attributes",
            )
            .iterator(chunk_size=CHUNK)
        )


def _used(tally: Tally, score: OutputScore) -> None:
    tally.used["ratings"].add(*score.ratings)
    tally.used["adjudications"].add(*score.adjudications)


def _attrs(attributes: Any, source: str) -> dict[str, Any]:
    return {**(attributes or {}), "feedback_source": source}


# --------------------------------------------------------------------------------------------------------------------
# Sources. Each gives the prompts it would use (for the leakage guard) and then its records.


class Source:
    name = ""

    def __init__(
        self, project: Project, opts: ExportOptions, quality: AnnotatorQuality, tally: Tally
    ) -> None:
        self.project, self.opts, self.quality, self.tally = project, opts, quality, tally

    def prompts(self) -> dict[Any, str]:
        raise NotImplementedError

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        raise NotImplementedError


class RatedOutputs(Source):
    """SFT: outputs scored at or above `min_score` on every chosen criterion."""

    name = "rated"

    def _scores(self) -> dict[int, OutputScore]:
        if not hasattr(self, "_cached"):
            self._cached = output_scores(self.project, self.opts, self.quality, self.tally, self.name)
        return self._cached

    def prompts(self) -> dict[Any, str]:
        from evalhub.generation.models import Output

        ids = list(self._scores())
        out: dict[Any, str] = {}
        for start in range(0, len(ids), CHUNK):
            for ex_id, prompt, messages in (
                Output.objects.filter(pk__in=ids[start : start + CHUNK])
                .values_list("example_id", "example__prompt", "example__messages")
                .distinct()
                .iterator(chunk_size=CHUNK)
            ):
                out[("example", ex_id)] = prompt_text(prompt, messages)
        return out

    def _corrected_outputs(self) -> set[int]:
        """Outputs whose correction the `corrections` source of this export keeps (when that source is chosen)."""
        if Corrections.name not in self.opts.sources:
            return set()
        corrections = Corrections(self.project, self.opts, self.quality, Tally())
        return set(corrections.kept_output_ids())

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        scores = self._scores()
        corrected = self._corrected_outputs()
        passing: list[int] = []
        for output_id, score in scores.items():
            self.tally.candidates[self.name] += 1
            reason, names = _judged(score, self.opts)
            if reason is None and any(score.values[n] < self.opts.min_score - 1e-12 for n in names):
                reason = "below_min_score"
            if reason is None and output_id in corrected:
                reason = "superseded_by_correction"
            if reason:
                self.tally.drop(self.name, reason)
                continue
            passing.append(output_id)
        for out_id, text, error, ex_id, prompt, messages, attributes in _output_rows(sorted(passing)):
            if ("example", ex_id) in leaked:
                self.tally.drop(self.name, "leakage")
                continue
            if error or not text.strip():
                self.tally.drop(self.name, "empty_output")
                continue
            score = scores[out_id]
            _used(self.tally, score)
            yield Record(
                self.name,
                f"output:{out_id}",
                chat_prompt(prompt, messages),
                text,
                attributes=_attrs(attributes, self.name),
            )


class Corrections(Source):
    """SFT: the corrected text of an output is the target."""

    name = "corrections"

    def _qs(self) -> Any:
        from evalhub.reviews.models import Correction

        campaigns = [c.pk for c in review_campaigns(self.project, self.opts.review_campaign_ids)]
        return Correction.objects.filter(item__campaign_id__in=campaigns, item__is_gold=False)

    def prompts(self) -> dict[Any, str]:
        rows = (
            self._qs()
            .values_list(
                "item__output__example_id", "item__output__example__prompt", "item__output__example__messages"
            )
            .distinct()
        )
        return {("example", e): prompt_text(p, m) for e, p, m in rows.iterator(chunk_size=CHUNK)}

    def kept_output_ids(self) -> Iterator[int]:
        """The outputs whose corrections `records` keeps, leakage aside (a leaked prompt drops its rated output
        anyway)."""
        from evalhub.reviews.models import AdjudicationStatus

        qs = self._qs()
        if self.quality.excluded:
            qs = qs.exclude(rating__annotator_id__in=list(self.quality.excluded))
        if self.opts.adjudicated_only:
            qs = qs.filter(item__adjudication__status=AdjudicationStatus.RESOLVED)
        for output_id, edited in qs.values_list("item__output_id", "edited_text").iterator(chunk_size=CHUNK):
            if edited.strip():  # the same test as `records`
                yield output_id

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        from evalhub.reviews.models import AdjudicationStatus

        adjudicated_items = set()
        if self.opts.adjudicated_only:
            adjudicated_items = set(
                self._qs()
                .filter(item__adjudication__status=AdjudicationStatus.RESOLVED)
                .values_list("item_id", flat=True)
            )
        rows = (
            self._qs()
            .order_by("pk")
            .values_list(
                "pk",
                "rating_id",
                "rating__annotator_id",
                "item_id",
                "edited_text",
                "item__output__example_id",
                "item__output__example__prompt",
                "item__output__example__messages",
                "item__output__example__attributes",
            )
        )
        for (
            pk,
            rating_id,
            annotator_id,
            item_id,
            edited,
            ex_id,
            prompt,
            messages,
            attributes,
        ) in rows.iterator(chunk_size=CHUNK):
            self.tally.candidates[self.name] += 1
            if annotator_id in self.quality.excluded:
                self.tally.drop(self.name, "excluded_annotator")
            elif self.opts.adjudicated_only and item_id not in adjudicated_items:
                self.tally.drop(self.name, "not_adjudicated")
            elif ("example", ex_id) in leaked:
                self.tally.drop(self.name, "leakage")
            elif not edited.strip():
                self.tally.drop(self.name, "empty_output")
            else:
                self.tally.used["corrections"].add(pk)
                self.tally.used["ratings"].add(rating_id)
                yield Record(
                    self.name,
                    f"correction:{pk}",
                    chat_prompt(prompt, messages),
                    edited,
                    attributes=_attrs(attributes, self.name),
                )


class Curated(Source):
    """SFT: examples an annotator accepted or fixed in a curation queue (with a reference answer)."""

    name = "curated"

    def _qs(self) -> Any:
        from evalhub.datasets.models import CurationItem, CurationQueue

        queues = CurationQueue.objects.filter(version__dataset__project=self.project)
        if self.opts.curation_queue_ids is not None:
            queues = queues.filter(pk__in=self.opts.curation_queue_ids)
            if queues.count() != len(set(self.opts.curation_queue_ids)):
                raise ValidationError(
                    {"curation_queue_ids": "Some curation queues are not part of this project."}
                )
        return CurationItem.objects.filter(
            queue__in=queues, decision__in=[CurationItem.Decision.ACCEPT, CurationItem.Decision.FIX]
        )

    def _rows(self) -> Iterator[tuple[Any, ...]]:
        rows = (
            self._qs()
            .order_by("pk")
            .values_list(
                "pk",
                "decided_by_id",
                "fixed_prompt",
                "fixed_reference",
                "example_id",
                "example__prompt",
                "example__messages",
                "example__reference",
                "example__attributes",
            )
        )
        for pk, who, fixed_prompt, fixed_ref, ex_id, prompt, messages, reference, attributes in rows.iterator(
            chunk_size=CHUNK
        ):
            chat = chat_prompt(prompt, messages)
            if fixed_prompt:
                users = [i for i, m in enumerate(chat) if m["role"] == "user"]
                if users:
                    chat[users[-1]] = {"role": "user", "content": fixed_prompt}
            yield pk, who, chat, fixed_ref or reference, attributes

    def prompts(self) -> dict[Any, str]:
        return {
            ("curation", pk): "\n".join(m["content"] for m in chat) for pk, _w, chat, _r, _a in self._rows()
        }

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        for pk, who, chat, answer, attributes in self._rows():
            self.tally.candidates[self.name] += 1
            if self.opts.adjudicated_only:
                self.tally.drop(self.name, "not_adjudicated")
            elif who in self.quality.excluded:
                self.tally.drop(self.name, "excluded_annotator")
            elif ("curation", pk) in leaked:
                self.tally.drop(self.name, "leakage")
            elif not (answer or "").strip():
                self.tally.drop(self.name, "no_reference")
            else:
                self.tally.used["curation_items"].add(pk)
                yield Record(
                    self.name, f"curation_item:{pk}", chat, answer, attributes=_attrs(attributes, self.name)
                )


class ArenaVotes(Source):
    """DPO: one pair per comparison, the side its (counted, weighted) votes prefer being chosen."""

    name = "arena"

    def _campaign_ids(self) -> list[int]:
        return [c.pk for c in arena_campaigns(self.project, self.opts.arena_campaign_ids)]

    def prompts(self) -> dict[Any, str]:
        from evalhub.arena.models import Prompt

        # Every prompt of the campaigns, voted on or not: cheaper than joining a million votes to find the voted.
        rows = Prompt.objects.filter(campaign_id__in=self._campaign_ids()).values_list(
            "pk", "example_id", "text", "messages", "example__prompt", "example__messages"
        )
        out: dict[Any, str] = {}
        for pk, ex_id, text, messages, ex_prompt, ex_messages in rows.iterator(chunk_size=CHUNK):
            if ex_id is not None:
                out[("example", ex_id)] = prompt_text(ex_prompt, ex_messages)
            else:
                out[("arena_prompt", pk)] = prompt_text(text, messages)
        return out

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        from evalhub.arena.models import Choice, Comparison, Vote, VoteOrigin

        opts, tally, name = self.opts, self.tally, self.name
        campaigns = self._campaign_ids()
        origins = (
            [VoteOrigin.ANNOTATOR, VoteOrigin.IMPORT] if opts.include_imported else [VoteOrigin.ANNOTATOR]
        )
        votes = (
            Vote.objects.filter(campaign_id__in=campaigns, origin__in=origins)
            .order_by("comparison_id", "pk")
            .values_list("comparison_id", "pk", "choice", "annotator_id")
            .iterator(chunk_size=CHUNK)
        )
        # Texts come once per comparison, in the same order, merged with the votes (no per-vote join of long texts).
        texts = (
            Comparison.objects.filter(campaign_id__in=campaigns)
            .order_by("pk")
            .values_list(
                "pk",
                "prompt_id",
                "prompt__example_id",
                "prompt__text",
                "prompt__messages",
                "prompt__example__prompt",
                "prompt__example__messages",
                "prompt__attributes",
                "left__text",
                "left__output__text",
                "left__output__error",
                "right__text",
                "right__output__text",
                "right__output__error",
            )
            .iterator(chunk_size=CHUNK)
        )
        counted = {Choice.A, Choice.B}
        if opts.include_ties:
            counted.add(Choice.TIE)
        if opts.include_both_bad:
            counted.add(Choice.BOTH_BAD)
        row = next(texts, None)
        group: list[tuple[int, str, int | None]] = []
        current: int | None = None

        def decide(comparison_id: int, group: list[tuple[int, str, int | None]]) -> Record | None:
            nonlocal row
            while row is not None and row[0] < comparison_id:
                row = next(texts, None)
            if row is None or row[0] != comparison_id:
                return None  # votes of a comparison outside the scope cannot happen; be safe
            tally.candidates[name] += 1
            if opts.adjudicated_only:
                tally.drop(name, "not_adjudicated")
                return None
            weights: dict[str, float] = defaultdict(float)
            kept: list[int] = []
            excluded = 0
            for vote_id, choice, annotator_id in group:
                if annotator_id in self.quality.excluded:
                    excluded += 1
                    continue
                if choice not in counted:
                    continue
                weights[choice] += self.quality.weight(annotator_id)
                kept.append(vote_id)
            if not kept:
                tally.drop(name, "excluded_annotator" if excluded else "no_preference")
                return None
            total = sum(weights.values())
            best = max(weights.values())
            winners = [c for c, w in weights.items() if w == best]
            if len(winners) > 1:
                tally.drop(name, "split_vote")
                return None
            if winners[0] not in (Choice.A, Choice.B):
                tally.drop(name, "no_preference")
                return None
            agreement = best / total if len(kept) >= 2 and total > 0 else None
            if opts.min_agreement > 0 and (agreement is None or agreement < opts.min_agreement - 1e-12):
                tally.drop(name, "low_agreement")
                return None
            (
                _,
                prompt_id,
                ex_id,
                p_text,
                p_messages,
                ex_prompt,
                ex_messages,
                attributes,
                l_text,
                l_out,
                l_err,
                r_text,
                r_out,
                r_err,
            ) = row
            if (("example", ex_id) if ex_id is not None else ("arena_prompt", prompt_id)) in leaked:
                tally.drop(name, "leakage")
                return None
            if l_err or r_err:
                tally.drop(name, "empty_output")
                return None
            left = l_out if l_out is not None else l_text
            right = r_out if r_out is not None else r_text
            if left == right or not left.strip() or not right.strip():
                tally.drop(name, "identical_or_empty")
                return None
            chosen, rejected = (left, right) if winners[0] == Choice.A else (right, left)
            prompt = (
                chat_prompt(ex_prompt, ex_messages) if ex_id is not None else chat_prompt(p_text, p_messages)
            )
            tally.used["votes"].add(*kept)
            return Record(
                name,
                f"comparison:{comparison_id}",
                prompt,
                chosen,
                rejected,
                attributes=_attrs(attributes, name),
            )

        for comparison_id, vote_id, choice, annotator_id in votes:
            if comparison_id != current:
                if group and current is not None and (record := decide(current, group)) is not None:
                    yield record
                current, group = comparison_id, []
            group.append((vote_id, choice, annotator_id))
        if group and current is not None and (record := decide(current, group)) is not None:
            yield record


class RubricPairs(Source):
    """DPO: outputs for the same prompt whose scores differ by at least `margin` (largest differences first)."""

    name = "rubric_pairs"

    def _scores(self) -> dict[int, OutputScore]:
        if not hasattr(self, "_cached"):
            self._cached = output_scores(self.project, self.opts, self.quality, self.tally, self.name)
        return self._cached

    def prompts(self) -> dict[Any, str]:
        return RatedOutputs.prompts(self)  # type: ignore[arg-type]

    def records(self, leaked: set[Any]) -> Iterator[Record]:
        scores = self._scores()
        usable: dict[int, float] = {}
        for output_id, score in scores.items():
            reason, names = _judged(score, self.opts)
            if reason:
                self.tally.drop(self.name, f"output_{reason}")
                continue
            usable[output_id] = sum(score.values[n] for n in names) / len(names)
        by_example: dict[int, list[tuple[int, str, Messages, dict[str, Any]]]] = defaultdict(list)
        for out_id, text, error, ex_id, prompt, messages, attributes in _output_rows(sorted(usable)):
            if error or not text.strip():
                self.tally.drop(self.name, "output_empty")
                continue
            by_example[ex_id].append((out_id, text, chat_prompt(prompt, messages), attributes or {}))
        for ex_id in sorted(by_example):
            outs = sorted(by_example[ex_id], key=lambda o: (-usable[o[0]], o[0]))
            pairs = [
                (usable[a[0]] - usable[b[0]], a, b)
                for i, a in enumerate(outs)
                for b in outs[i + 1 :]
                if a[1] != b[1]
            ]
            self.tally.candidates[self.name] += len(pairs)
            wide = sorted(
                (p for p in pairs if p[0] >= self.opts.margin - 1e-12),
                key=lambda p: (-p[0], p[1][0], p[2][0]),
            )
            self.tally.drop(self.name, "below_margin", len(pairs) - len(wide))
            if ("example", ex_id) in leaked:
                self.tally.drop(self.name, "leakage", len(wide))
                continue
            if len(wide) > self.opts.max_pairs_per_prompt:
                self.tally.drop(
                    self.name, "over_max_pairs_per_prompt", len(wide) - self.opts.max_pairs_per_prompt
                )
                wide = wide[: self.opts.max_pairs_per_prompt]
            for _diff, a, b in wide:
                _used(self.tally, scores[a[0]])
                _used(self.tally, scores[b[0]])
                yield Record(
                    self.name, f"outputs:{a[0]}>{b[0]}", a[2], a[1], b[1], attributes=_attrs(a[3], self.name)
                )


SOURCES: dict[str, type[Source]] = {
    s.name: s for s in (RatedOutputs, Corrections, Curated, ArenaVotes, RubricPairs)
}


# --------------------------------------------------------------------------------------------------------------------
# The whole export


@dataclass
class Plan:
    """What building an export needs besides the database: the held-out prompts and the annotators left out."""

    held_out_ids: list[int]
    quality: AnnotatorQuality
    tally: Tally
    sources: list[Source]
    leaked: set[Any]


def plan_export(project: Project, opts: ExportOptions, *, extra_held_out: Iterable[int] = ()) -> Plan:
    """Scope, annotator quality and the leakage guard: everything decided before the first record is written."""
    tally = Tally()
    quality = annotator_quality(project, opts)
    sources = [SOURCES[name](project, opts, quality, tally) for name in opts.sources]
    held_ids = held_out_versions(project, [*opts.held_out_version_ids, *extra_held_out])
    prompts: dict[Any, str] = {}
    for source in sources:
        prompts.update(source.prompts())
    leaked = leaked_keys(prompts, held_out_texts(held_ids), opts.leakage_threshold) if held_ids else set()
    return Plan(held_out_ids=held_ids, quality=quality, tally=tally, sources=sources, leaked=leaked)


def records(plan: Plan) -> Iterator[Record]:
    """Every kept record, sources in order, duplicates (same prompt and answer(s)) dropped."""
    seen: set[bytes] = set()
    for source in plan.sources:
        for record in source.records(plan.leaked):
            digest = hashlib.blake2b(
                "\x00".join([repr(record.prompt), record.answer, record.rejected]).encode(
                    "utf-8", "surrogatepass"
                ),
                digest_size=8,
            ).digest()
            if digest in seen:
                plan.tally.drop(source.name, "duplicate")
                continue
            seen.add(digest)
            plan.tally.kept[source.name] += 1
            yield record
