"""Agreement, per-annotator quality and results of a campaign, computed with pandas and `evalhub.stats`.

`agreement_report` and `annotator_report` are blind (no model identity) and serve reviewers and leads;
`results_report` and `export_frame` join outputs to model versions and are for leads only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from evalhub.core.charts import figure_json, heatmap
from evalhub.reviews.models import (
    AdjudicatedValue,
    AdjudicationStatus,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignItem,
    Correction,
    Criterion,
    Rating,
    RatingValue,
    Scale,
)
from evalhub.stats import (
    Estimate,
    annotator_consensus_agreement,
    bootstrap_ci,
    by_slice,
    gold_accuracy,
    krippendorff_alpha,
    pairwise_kappa,
)

N_RESAMPLES = 2000


# --------------------------------------------------------------------------------------------------------------------
# Raw values


def values_frame(campaign: Campaign) -> pd.DataFrame:
    """Every rating value of the campaign: item_id, is_gold, criterion_id, annotator_id, annotator, number, label,
    labels, text. No output or model identity."""
    rows = RatingValue.objects.filter(rating__campaign=campaign).values_list(
        "rating__item_id", "rating__item__is_gold", "criterion_id", "rating__annotator_id",
        "rating__annotator__username", "number", "label", "labels", "text",
    )
    return pd.DataFrame.from_records(
        list(rows),
        columns=["item_id", "is_gold", "criterion_id", "annotator_id", "annotator", "number", "label", "labels", "text"],
    )


def _unit_value(c: Criterion, row: Any) -> Any:
    if c.is_numeric:
        return row.number
    if c.scale == Scale.CATEGORICAL:
        return row.label or None
    return None


@dataclass
class Matrix:
    """A raters x units matrix for one criterion (or one label of a multi-label criterion)."""

    title: str
    level: str
    raters: list[int]
    rater_names: list[str]
    units: list[int]
    data: np.ndarray
    domain: list[Any] | None


def criterion_matrices(campaign: Campaign, criteria: list[Criterion], frame: pd.DataFrame) -> list[tuple[Criterion, Matrix]]:
    """Matrices for agreement: gold items left out; multi-label criteria give one pass/fail matrix per label."""
    out: list[tuple[Criterion, Matrix]] = []
    regular = frame[~frame["is_gold"]] if len(frame) else frame
    for c in criteria:
        if c.level is None:
            continue
        sub = regular[regular["criterion_id"] == c.pk] if len(regular) else regular
        raters = sorted(sub["annotator_id"].unique().tolist()) if len(sub) else []
        names = dict(zip(sub["annotator_id"], sub["annotator"], strict=False)) if len(sub) else {}
        units = sorted(sub["item_id"].unique().tolist()) if len(sub) else []
        r_index = {r: i for i, r in enumerate(raters)}
        u_index = {u: i for i, u in enumerate(units)}
        if c.scale == Scale.MULTILABEL:
            for option in c.options:
                data = np.full((len(raters), len(units)), np.nan)
                for row in sub.itertuples():
                    data[r_index[row.annotator_id], u_index[row.item_id]] = 1.0 if option in (row.labels or []) else 0.0
                out.append((c, Matrix(f"{c.name}: {option}", "nominal", raters, [names[r] for r in raters], units,
                                      data, [0.0, 1.0])))
            continue
        numeric = c.is_numeric
        data = np.full((len(raters), len(units)), np.nan if numeric else None, dtype=float if numeric else object)
        for row in sub.itertuples():
            v = _unit_value(c, row)
            if v is not None:
                data[r_index[row.annotator_id], u_index[row.item_id]] = v
        out.append((c, Matrix(c.name, c.level or "nominal", raters, [names[r] for r in raters], units, data,
                              c.value_domain())))
    return out


# --------------------------------------------------------------------------------------------------------------------
# Agreement


def _finite(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


@dataclass
class CriterionAgreement:
    title: str
    level: str
    alpha: float | None
    n_units: int  # units rated by at least two people
    n_ratings: int
    kappa: list[list[float | None]]
    rater_names: list[str]
    mean_kappa: float | None
    kappa_chart: dict[str, Any] | None = None

    @property
    def alpha_words(self) -> str:
        """How to read alpha, in the words of Krippendorff's own guidance (0.8 reliable, 0.667 tentative)."""
        if self.alpha is None:
            return "undefined (too few shared ratings or no variation)"
        if self.alpha >= 0.8:
            return "reliable"
        if self.alpha >= 0.667:
            return "tentative; usable with care"
        if self.alpha > 0:
            return "weak; clarify the rubric or guidelines"
        return "no agreement beyond chance"


def agreement_report(campaign: Campaign, criteria: list[Criterion] | None = None, *, charts: bool = True) -> list[CriterionAgreement]:
    criteria = criteria if criteria is not None else list(campaign.rubric_version.criteria.all())
    frame = values_frame(campaign)
    out: list[CriterionAgreement] = []
    for c, m in criterion_matrices(campaign, criteria, frame):
        present = ~_missing(m.data)
        n_units = int((present.sum(axis=0) >= 2).sum()) if m.data.size else 0
        alpha = None
        if m.data.size:
            alpha = _finite(krippendorff_alpha(m.data, level=m.level, value_domain=m.domain))  # type: ignore[arg-type]
        weights = "linear" if c.scale == Scale.LIKERT else None
        kappa = pairwise_kappa(m.data, weights=weights) if len(m.raters) >= 2 else np.full((len(m.raters),) * 2, np.nan)
        k_list = [[_finite(float(x)) for x in row] for row in kappa]
        off = [kappa[i, j] for i in range(len(m.raters)) for j in range(len(m.raters)) if i < j and not np.isnan(kappa[i, j])]
        chart = None
        if charts and len(m.raters) >= 2:
            chart = heatmap(k_list, m.rater_names, m.rater_names, title=f"Cohen's kappa · {m.title}", height=260 + 14 * len(m.raters))
        out.append(CriterionAgreement(
            title=m.title, level=m.level, alpha=alpha, n_units=n_units, n_ratings=int(present.sum()),
            kappa=k_list, rater_names=m.rater_names, mean_kappa=float(np.mean(off)) if off else None, kappa_chart=chart,
        ))
    return out


def _missing(data: np.ndarray) -> np.ndarray:
    if data.dtype == object:
        return np.vectorize(lambda v: v is None or (isinstance(v, float) and math.isnan(v)), otypes=[bool])(data) if data.size else np.zeros(data.shape, bool)
    return np.isnan(data)


# --------------------------------------------------------------------------------------------------------------------
# Per annotator


@dataclass
class AnnotatorRow:
    annotator_id: int
    annotator: str
    ratings: int = 0
    skipped: int = 0
    expired: int = 0
    corrections: int = 0
    median_seconds: float | None = None
    consensus: float | None = None  # mean over criteria of agreement with the others' consensus
    consensus_units: int = 0
    gold: Estimate | None = None
    gold_n: int = 0
    by_criterion: dict[str, float | None] = field(default_factory=dict)


def _canonical(c: Criterion, v: Any) -> str | None:
    if v is None:
        return None
    if c.is_numeric:
        return f"{float(v):g}"
    if c.scale == Scale.MULTILABEL:
        return "|".join(sorted(v)) if isinstance(v, (list, tuple)) else str(v)
    return str(v)


def annotator_report(campaign: Campaign, criteria: list[Criterion] | None = None) -> list[AnnotatorRow]:
    criteria = criteria if criteria is not None else list(campaign.rubric_version.criteria.all())
    frame = values_frame(campaign)
    rows: dict[int, AnnotatorRow] = {}
    for a in (
        Assignment.objects.filter(campaign=campaign).values("annotator_id", "annotator__username", "status")
    ):
        row = rows.setdefault(a["annotator_id"], AnnotatorRow(a["annotator_id"], a["annotator__username"]))
        if a["status"] == AssignmentStatus.SUBMITTED:
            row.ratings += 1
        elif a["status"] == AssignmentStatus.SKIPPED:
            row.skipped += 1
        elif a["status"] == AssignmentStatus.EXPIRED:
            row.expired += 1
    seconds: dict[int, list[float]] = defaultdict(list)
    for annotator_id, s in Rating.objects.filter(campaign=campaign).values_list("annotator_id", "seconds_on_item"):
        seconds[annotator_id].append(s)
    for annotator_id, values in seconds.items():
        if annotator_id in rows and values:
            rows[annotator_id].median_seconds = float(np.median(values))
    for annotator_id in Correction.objects.filter(item__campaign=campaign).values_list("rating__annotator_id", flat=True):
        if annotator_id in rows:
            rows[annotator_id].corrections += 1

    # Agreement with the leave-one-out consensus of the others, per criterion, then averaged over criteria.
    per: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for _c, m in criterion_matrices(campaign, criteria, frame):
        if len(m.raters) < 2:
            continue
        for res in annotator_consensus_agreement(m.data, level="nominal"):
            rater = m.raters[res.rater]
            if rater in rows:
                rows[rater].by_criterion[m.title] = _finite(res.agreement)
                if res.n_units:
                    per[rater].append((res.agreement, res.n_units))
    for rater, parts in per.items():
        n = sum(u for _, u in parts)
        rows[rater].consensus = float(sum(a * u for a, u in parts) / n) if n else None
        rows[rater].consensus_units = n

    # Gold accuracy: every (gold item, criterion with an expected value) an annotator answered.
    gold_items = {
        item_id: expected
        for item_id, expected in CampaignItem.objects.filter(campaign=campaign, is_gold=True).values_list("pk", "gold_expected")
    }
    if gold_items and len(frame):
        by_id = {c.pk: c for c in criteria}
        gold_frame = frame[frame["item_id"].isin(list(gold_items))]
        answers: dict[int, tuple[list[str | None], list[str | None]]] = defaultdict(lambda: ([], []))
        for row in gold_frame.itertuples():
            c = by_id.get(row.criterion_id)
            if c is None or c.name not in gold_items[row.item_id]:
                continue
            given = row.number if c.is_numeric else (row.labels if c.scale == Scale.MULTILABEL else (row.label or row.text))
            answers[row.annotator_id][0].append(_canonical(c, given))
            answers[row.annotator_id][1].append(_canonical(c, gold_items[row.item_id][c.name]))
        for annotator_id, (given, expected) in answers.items():
            if annotator_id in rows and given:
                rows[annotator_id].gold = gold_accuracy(given, expected)
                rows[annotator_id].gold_n = len(given)
    return sorted(rows.values(), key=lambda r: r.annotator)


# --------------------------------------------------------------------------------------------------------------------
# Results (leads only: joins outputs to model versions)


def items_frame(campaign: Campaign) -> pd.DataFrame:
    """item_id, output_id, model_version_id, model_version (label), run_id, example_id, attributes."""
    rows = CampaignItem.objects.filter(campaign=campaign).values_list(
        "pk", "output_id", "output__run__model_version_id", "output__run__model_version__number",
        "output__run__model_version__name", "output__run_id", "output__example_id", "output__example__attributes",
        "is_gold",
    )
    records = [
        (pk, oid, mv_id, f"v{num} {name}", run_id, ex_id, attrs or {}, gold)
        for pk, oid, mv_id, num, name, run_id, ex_id, attrs, gold in rows.iterator(chunk_size=5000)
    ]
    return pd.DataFrame.from_records(
        records,
        columns=["item_id", "output_id", "model_version_id", "model_version", "run_id", "example_id", "attributes", "is_gold"],
    )


def final_values(campaign: Campaign, criteria: list[Criterion]) -> pd.DataFrame:
    """Per (item, numeric criterion): the final value (adjudicated when a reviewer decided, else the mean rating),
    `adjudicated` flag and the number of ratings. Gold items left out."""
    frame = values_frame(campaign)
    numeric = {c.pk: c for c in criteria if c.is_numeric}
    columns = ["item_id", "criterion_id", "value", "adjudicated", "n_ratings"]
    if not len(frame):
        return pd.DataFrame(columns=columns)
    sub = frame[(~frame["is_gold"]) & frame["criterion_id"].isin(list(numeric)) & frame["number"].notna()]
    means = sub.groupby(["item_id", "criterion_id"])["number"].agg(["mean", "count"]).reset_index()
    means.columns = ["item_id", "criterion_id", "value", "n_ratings"]
    means["adjudicated"] = False
    adjudicated = pd.DataFrame.from_records(
        list(AdjudicatedValue.objects.filter(
            adjudication__campaign=campaign, adjudication__status=AdjudicationStatus.RESOLVED,
            criterion_id__in=list(numeric), number__isnull=False,
        ).values_list("adjudication__item_id", "criterion_id", "number")),
        columns=["item_id", "criterion_id", "adj"],
    )
    if len(adjudicated):
        means = means.merge(adjudicated, on=["item_id", "criterion_id"], how="left")
        has = means["adj"].notna()
        means.loc[has, "value"] = means.loc[has, "adj"]
        means.loc[has, "adjudicated"] = True
        means = means.drop(columns=["adj"])
    return means[columns]


@dataclass
class ResultCell:
    model_version: str
    criterion: str
    estimate: Estimate
    adjudicated: int

    @property
    def value(self) -> float | None:
        return _finite(self.estimate.value)


@dataclass
class Results:
    criteria: list[str]
    model_versions: list[str]
    cells: list[ResultCell]
    table: dict[str, dict[str, ResultCell]]  # criterion -> model version -> cell
    charts: list[dict[str, Any]]
    slice_by: str
    slice_values: list[str]
    slices: dict[str, dict[str, dict[str, Estimate]]]  # criterion -> slice -> model version -> estimate
    attributes: list[str]
    label_tables: list[dict[str, Any]]


OVERALL = "Overall (weighted, 0-1)"


def results_report(campaign: Campaign, *, slice_by: str = "", n_resamples: int = N_RESAMPLES, seed: int = 0) -> Results:
    """Per model version and criterion: mean of the outputs' final values with a bootstrap interval over outputs,
    the distribution of individual ratings, an overall weighted score (Likert scaled to 0-1, weights from the
    rubric), and the same means sliced by an example attribute."""
    criteria = list(campaign.rubric_version.criteria.all())
    items = items_frame(campaign)
    items = items[~items["is_gold"]]
    attributes = sorted({k for a in items["attributes"] for k in a}) if len(items) else []
    finals = final_values(campaign, criteria)
    versions = sorted(items["model_version"].unique().tolist()) if len(items) else []
    merged = finals.merge(items[["item_id", "model_version", "attributes"]], on="item_id") if len(finals) else None
    numeric = [c for c in criteria if c.is_numeric]

    cells: list[ResultCell] = []
    table: dict[str, dict[str, ResultCell]] = {}
    slices: dict[str, dict[str, dict[str, Estimate]]] = {}
    slice_values: set[str] = set()
    series: dict[str, pd.DataFrame] = {}
    if merged is not None:
        for c in numeric:
            series[c.name] = merged[merged["criterion_id"] == c.pk]
        weights = {c.pk: c.weight for c in numeric}
        # Likert levels scaled to 0-1 so criteria with different N (and pass/fail) can be averaged.
        span = merged["criterion_id"].map(
            {c.pk: (c.levels - 1.0 if c.scale == Scale.LIKERT else 1.0) for c in numeric}
        )
        low = merged["criterion_id"].map({c.pk: (1.0 if c.scale == Scale.LIKERT else 0.0) for c in numeric})
        merged = merged.assign(norm=(merged["value"] - low) / span, w=merged["criterion_id"].map(weights))
        merged["wv"] = merged["norm"] * merged["w"]
        overall = merged.groupby(["item_id", "model_version"]).agg(wv=("wv", "sum"), w=("w", "sum")).reset_index()
        overall = overall[overall["w"] > 0]
        overall["value"] = overall["wv"] / overall["w"]
        overall = overall.merge(items[["item_id", "attributes"]], on="item_id")
        if len(numeric) > 1:
            series[OVERALL] = overall
    for name, df in series.items():
        table[name] = {}
        for mv in versions:
            part = df[df["model_version"] == mv]
            est = bootstrap_ci(part["value"].to_numpy(dtype=float), n_resamples=n_resamples, seed=seed)
            adj = int(part["adjudicated"].sum()) if "adjudicated" in part else 0
            cell = ResultCell(mv, name, est, adj)
            cells.append(cell)
            table[name][mv] = cell
        if slice_by:
            labels = [str(a.get(slice_by, "(none)")) for a in df["attributes"]]
            per_slice: dict[str, dict[str, Estimate]] = defaultdict(dict)
            for mv in versions:
                mask = (df["model_version"] == mv).to_numpy()
                vals = df["value"].to_numpy(dtype=float)[mask]
                labs = [lab for lab, m in zip(labels, mask, strict=True) if m]
                if not len(vals):
                    continue
                for lab, est in by_slice(vals, labs, lambda x: bootstrap_ci(x, n_resamples=n_resamples, seed=seed)).items():
                    per_slice[str(lab)][mv] = est
                    slice_values.add(str(lab))
            slices[name] = dict(sorted(per_slice.items()))

    charts = [_means_chart(table, versions)] if table else []
    raw = values_frame(campaign)
    if len(raw):
        raw = raw[~raw["is_gold"]].merge(items[["item_id", "model_version"]], on="item_id")
    label_tables: list[dict[str, Any]] = []
    for c in criteria:
        if c.scale == Scale.TEXT or not len(raw):
            continue
        sub = raw[raw["criterion_id"] == c.pk]
        if c.scale == Scale.LIKERT:
            cats = [str(i) for i in range(1, c.levels + 1)]
            keys = sub["number"].map(lambda x: str(int(x)) if pd.notna(x) else None)
        elif c.scale == Scale.BINARY:
            cats = ["pass", "fail"]
            keys = sub["number"].map(lambda x: None if pd.isna(x) else ("pass" if x >= 1 else "fail"))
        elif c.scale == Scale.CATEGORICAL:
            cats = list(c.options)
            keys = sub["label"]
        else:
            cats = list(c.options)
            sub = sub.explode("labels")
            keys = sub["labels"]
        counts: dict[str, dict[str, int]] = {mv: dict.fromkeys(cats, 0) for mv in versions}
        totals: dict[str, int] = dict.fromkeys(versions, 0)
        for mv, key in zip(sub["model_version"], keys, strict=True):
            if key in counts.get(mv, {}):
                counts[mv][key] += 1
        for mv in versions:
            totals[mv] = sum(counts[mv].values())
        charts.append(_distribution_chart(c, cats, counts))
        label_tables.append({"criterion": c.name, "categories": cats, "counts": counts, "totals": totals})
    return Results(
        criteria=list(table), model_versions=versions, cells=cells, table=table, charts=charts, slice_by=slice_by,
        slice_values=sorted(slice_values), slices=slices, attributes=attributes, label_tables=label_tables,
    )


def _means_chart(table: dict[str, dict[str, ResultCell]], versions: list[str]) -> dict[str, Any]:
    fig = go.Figure()
    names = [n for n in table if n != OVERALL]
    for mv in versions:
        ys, lo, hi = [], [], []
        for n in names:
            e = table[n][mv].estimate
            ys.append(_finite(e.value))
            lo.append(0 if math.isnan(e.low) else e.value - e.low)
            hi.append(0 if math.isnan(e.high) else e.high - e.value)
        fig.add_trace(go.Bar(name=mv, x=names, y=ys, error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}))
    return figure_json(fig, title="Mean rating per criterion (95 % bootstrap interval)", barmode="group", height=340)


def _distribution_chart(c: Criterion, cats: list[str], counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    fig = go.Figure()
    for mv, per in counts.items():
        total = sum(per.values()) or 1
        fig.add_trace(go.Bar(
            name=mv, x=cats, y=[per[k] / total for k in cats], customdata=[per[k] for k in cats],
            hovertemplate="%{x}: %{y:.0%} (%{customdata} ratings)<extra>" + mv.replace("<", "&lt;") + "</extra>",
        ))
    return figure_json(
        fig, title=f"{c.name}: share of ratings per level", barmode="group", height=280,
        yaxis={"tickformat": ".0%"}, xaxis={"type": "category"},
    )


# --------------------------------------------------------------------------------------------------------------------
# Export (leads only)


EXPORT_COLUMNS = [
    "campaign", "item", "output_id", "model_version_id", "model_version", "run_id", "example_id", "is_gold",
    "annotator", "criterion", "scale", "value", "number", "adjudicated", "comment", "seconds_on_item",
    "original_text", "corrected_text",
]


def export_frame(campaign: Campaign) -> pd.DataFrame:
    """One row per rating and criterion, plus one row per adjudicated value (adjudicated=True, annotator = the
    reviewer), with the model version, the example's attributes (attr_<name>) and any correction."""
    criteria = {c.pk: c for c in campaign.rubric_version.criteria.all()}
    items = items_frame(campaign).set_index("item_id")
    corrections = {
        rating_id: (orig, edit)
        for rating_id, orig, edit in Correction.objects.filter(item__campaign=campaign).values_list(
            "rating_id", "original_text", "edited_text"
        )
    }
    records: list[dict[str, Any]] = []

    def base(item_id: int) -> dict[str, Any]:
        it = items.loc[item_id]
        row = {
            "campaign": campaign.name, "item": _item_token(item_id), "output_id": int(it["output_id"]),
            "model_version_id": int(it["model_version_id"]), "model_version": it["model_version"],
            "run_id": int(it["run_id"]), "example_id": int(it["example_id"]), "is_gold": bool(it["is_gold"]),
        }
        for k, v in (it["attributes"] or {}).items():
            row[f"attr_{k}"] = v if isinstance(v, (str, int, float, bool)) or v is None else str(v)
        return row

    tokens = dict(CampaignItem.objects.filter(campaign=campaign).values_list("pk", "token"))

    def _item_token(item_id: int) -> str:
        return tokens[item_id]

    values = RatingValue.objects.filter(rating__campaign=campaign).select_related("rating__annotator").order_by(
        "rating__item_id", "rating_id", "criterion_id"
    )
    for v in values.iterator(chunk_size=2000):
        c = criteria[v.criterion_id]
        v.criterion = c
        orig, edit = corrections.get(v.rating_id, ("", ""))
        records.append({
            **base(v.rating.item_id), "annotator": v.rating.annotator.username, "criterion": c.name, "scale": c.scale,
            "value": v.display(), "number": v.number, "adjudicated": False, "comment": v.rating.comment,
            "seconds_on_item": v.rating.seconds_on_item, "original_text": orig, "corrected_text": edit,
        })
    adjudicated = AdjudicatedValue.objects.filter(
        adjudication__campaign=campaign, adjudication__status=AdjudicationStatus.RESOLVED
    ).select_related("adjudication__reviewer", "adjudication")
    for v in adjudicated:
        c = criteria[v.criterion_id]
        v.criterion = c
        reviewer = v.adjudication.reviewer.username if v.adjudication.reviewer else ""
        records.append({
            **base(v.adjudication.item_id), "annotator": reviewer, "criterion": c.name, "scale": c.scale,
            "value": v.display(), "number": v.number, "adjudicated": True, "comment": v.adjudication.note,
            "seconds_on_item": None, "original_text": "", "corrected_text": "",
        })
    frame = pd.DataFrame.from_records(records)
    if not len(frame):
        return pd.DataFrame(columns=EXPORT_COLUMNS)
    attr_cols = sorted(c for c in frame.columns if c.startswith("attr_"))
    frame = frame[EXPORT_COLUMNS + attr_cols]
    for col in attr_cols:
        # Parquet needs one type per column; attributes can mix numbers and text across examples.
        if frame[col].map(type).nunique() > 1:
            frame[col] = frame[col].map(lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else str(x))
    return frame.astype({"number": "float64", "seconds_on_item": "float64", "adjudicated": "bool", "is_gold": "bool"})
