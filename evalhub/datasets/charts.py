"""Plotly figures for the quality report page, built from the report's JSON (evalhub.datasets.quality)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import plotly.graph_objects as go

from evalhub.core.charts import figure_json

ACCENT = "#2454c5"
WARN = "#b06000"
BAD = "#b3261e"
OK = "#137333"
MAX_BARS = 20


def _histogram(dist: dict[str, Any], title: str, unit: str) -> dict[str, Any]:
    """A bar chart of the report's precomputed histogram, with the outlier fences drawn as dashed lines."""
    edges = dist["histogram"]["edges"]
    counts = dist["histogram"]["counts"]
    bins = list(pairwise(edges))
    centers = [(a + b) / 2 for a, b in bins]
    widths = [max(b - a, 1e-9) * 0.95 for a, b in bins]
    hover = [f"{a:g}–{b:g} {unit}: {c} rows" for (a, b), c in zip(bins, counts, strict=True)]
    fig = go.Figure(go.Bar(x=centers, y=counts, width=widths, marker_color=ACCENT, hovertext=hover,
                           hoverinfo="text"))
    outliers = dist.get("outliers")
    if outliers:
        for name, value in (("low", outliers["low"]), ("high", outliers["high"])):
            if edges[0] <= value <= edges[-1]:
                fig.add_vline(x=value, line_dash="dash", line_color=WARN,
                              annotation_text=f"outlier fence ({name})", annotation_font_size=10)
    return figure_json(fig, title=title, xaxis_title=unit, yaxis_title="rows", bargap=0.02)


def _bars(labels: list[str], values: list[int], *, title: str, colors: list[str] | None = None,
          yaxis_title: str = "rows") -> dict[str, Any]:
    shown = [label if label else "(empty)" for label in labels]
    fig = go.Figure(go.Bar(x=shown, y=values, marker_color=colors or ACCENT, text=values, textposition="outside",
                           cliponaxis=False))
    return figure_json(fig, title=title, yaxis_title=yaxis_title, xaxis_type="category")


def _overview(items: list[tuple[str, int]], n: int) -> dict[str, Any]:
    """Horizontal bars, one per kind of problem, so every label reads level; zero rows show as a green tick."""
    labels = [k for k, _ in items][::-1]  # plotly draws the first category at the bottom
    values = [v for _, v in items][::-1]
    top = max(max(values, default=0), 1)
    shown = [max(v, top * 0.015) for v in values]  # a sliver for 0, so "nothing here" is visible too
    fig = go.Figure(go.Bar(
        y=labels, x=shown, orientation="h", marker_color=[BAD if v else OK for v in values],
        text=[f"{v:,}" for v in values], textposition="outside", cliponaxis=False,
        hovertext=[f"{k}: {v:,} of {n:,} rows" for k, v in zip(labels, values, strict=True)], hoverinfo="text",
    ))
    return figure_json(fig, title=f"Rows affected, of {n:,}", xaxis_title="rows", yaxis_type="category",
                       height=max(220, 34 * len(items) + 90), margin={"l": 170, "r": 40, "t": 40, "b": 45},
                       xaxis_range=[0, top * 1.15])


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """{key: figure JSON}; keys: overview, prompt_length, reference_length, labels, leakage, coverage (a list)."""
    figs: dict[str, Any] = {}
    n = report.get("n_rows", 0)

    fields = report.get("fields") or {}
    exact = report.get("exact_duplicates") or {}
    near = report.get("near_duplicates") or {}
    overview: list[tuple[str, int]] = [
        ("exact duplicates", exact.get("rows", 0)),
        ("near duplicates", near.get("rows", 0)),
    ]
    for field, stats in fields.items():
        if stats:
            overview.append((f"empty {field}", stats["empty"]["count"]))
            overview.append((f"near-empty {field}", stats["near_empty"]["count"]))
    for field, lengths in (report.get("lengths") or {}).items():
        if lengths and lengths.get("words") and lengths["words"].get("outliers"):
            overview.append((f"{field} length outliers", lengths["words"]["outliers"]["count"]))
    overlap = report.get("overlap")
    if overlap:
        overview.append(("leaked (vs compared)", overlap["leaked_rows"]))
    figs["overview"] = _overview(overview, n)

    for field in ("prompt", "reference"):
        lengths = (report.get("lengths") or {}).get(field)
        if lengths and lengths.get("words"):
            figs[f"{field}_length"] = _histogram(lengths["words"], f"{field.capitalize()} length", "words")

    labels = report.get("labels")
    if labels:
        keys = list(labels["counts"])
        figs["labels"] = _bars(keys, [labels["counts"][k] for k in keys], title="Label balance")

    coverage: list[dict[str, Any]] = []
    for name, cov in (report.get("coverage") or {}).items():
        values = list(cov["values"])  # most common first
        counts = [cov["values"][v]["count"] for v in values]
        colors = [WARN if cov["values"][v]["under_represented"] else ACCENT for v in values]
        title = f"Coverage of {name}"
        if len(values) > MAX_BARS:
            # A free-text attribute (materials, say) has more values than a chart can name: show the commonest.
            title = f"Coverage of {name}: the {MAX_BARS} commonest of {len(values)} values"
            values, counts, colors = values[:MAX_BARS], counts[:MAX_BARS], colors[:MAX_BARS]
        if cov.get("missing"):
            values.append("")
            counts.append(cov["missing"])
            colors.append(BAD)
        coverage.append({"id": f"fig-coverage-{len(coverage) + 1}", "name": name,
                         "figure": _bars(values, counts, title=title, colors=colors),
                         "under": cov.get("under_represented", []), "missing": cov.get("missing", 0)})
    figs["coverage"] = coverage

    if overlap:
        clean = max(0, n - overlap["leaked_rows"])
        figs["leakage"] = _bars(["not in the compared version", "exact overlap", "near overlap"],
                                [clean, overlap["exact"]["rows"], overlap["near"]["rows"]],
                                title="Prompts shared with the compared version", colors=[OK, BAD, WARN])
    return figs


def field_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per text field: empty, near-empty and length-outlier counts with their lines."""
    rows = []
    for field, stats in (report.get("fields") or {}).items():
        if not stats:
            continue
        lengths = (report.get("lengths") or {}).get(field) or {}
        words = lengths.get("words") or {}
        rows.append({"field": field, "empty": stats["empty"], "near_empty": stats["near_empty"],
                     "outliers": words.get("outliers")})
    return rows
