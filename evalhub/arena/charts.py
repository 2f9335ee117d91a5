"""Plotly figures of the leaderboard (lead pages only: they carry contestant names)."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from evalhub.arena.ratings import Board
from evalhub.core.charts import figure_json

PALETTE = ["#2454c5", "#c5562a", "#1f8a5b", "#8a3fb8", "#b08a00", "#0f7c8c", "#b3261e", "#5a6270"]


def _ok(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def ratings_forest(names: list[str], board: Board, *, title: str = "Rating (Elo scale) with 95 % interval") -> dict[str, Any]:
    """Dots with interval whiskers, best at the top. Bars would suggest a meaningful zero, which Elo has not."""
    order = sorted(range(len(names)), key=lambda i: board.ratings[i] if _ok(board.ratings[i]) else -1e9)
    xs = [board.ratings[i] for i in order]
    fig = go.Figure(go.Scatter(
        x=xs, y=[names[i] for i in order], mode="markers",
        marker={"size": 11, "color": PALETTE[0]},
        error_x={"type": "data", "symmetric": False, "thickness": 2, "width": 6,
                 "array": [board.high[i] - board.ratings[i] for i in order],
                 "arrayminus": [board.ratings[i] - board.low[i] for i in order]},
        hovertemplate="%{y}: %{x:.0f}<extra></extra>",
    ))
    fig.add_vline(x=1000, line_dash="dot", line_color="#aaa")
    return figure_json(fig, title=title, height=max(220, 60 + 42 * len(names)),
                       margin={"l": 180, "r": 20, "t": 40, "b": 40}, xaxis_title="rating (1000 = average)")


def matrix_heatmap(names: list[str], z: list[list[float | None]], *, title: str, fmt: str, colorscale: str,
                   zmid: float | None = None, zmin: float | None = None, zmax: float | None = None) -> dict[str, Any]:
    """Row beats column. Cells carry their number so the chart reads without hovering."""
    text = [["" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt) for v in row] for row in z]
    trace: dict[str, Any] = {"z": z, "x": names, "y": names, "colorscale": colorscale, "text": text,
                             "texttemplate": "%{text}", "hoverongaps": False,
                             "hovertemplate": "%{y} vs %{x}: %{text}<extra></extra>"}
    if zmid is not None:
        trace["zmid"] = zmid
    if zmin is not None:
        trace["zmin"] = zmin
    if zmax is not None:
        trace["zmax"] = zmax
    fig = go.Figure(go.Heatmap(**trace))
    fig.update_yaxes(autorange="reversed")
    size = max(300, 90 + 60 * len(names))
    return figure_json(fig, title=title, height=size, margin={"l": 160, "r": 20, "t": 40, "b": 110},
                       xaxis_title="opponent (column)", yaxis_title="version (row)")


def pairwise_whiskers(rows: list[dict[str, Any]], *, title: str = "P(row version beats the other) with 95 % interval") -> dict[str, Any]:
    labels = [f"{r['x']} vs {r['y']}" for r in rows]
    vals = [r["p_win"].value for r in rows]
    fig = go.Figure(go.Scatter(
        x=vals, y=labels, mode="markers", marker={"size": 10, "color": PALETTE[2]},
        error_x={"type": "data", "symmetric": False, "thickness": 2, "width": 6,
                 "array": [r["p_win"].high - r["p_win"].value for r in rows],
                 "arrayminus": [r["p_win"].value - r["p_win"].low for r in rows]},
        hovertemplate="%{y}: %{x:.2f}<extra></extra>",
    ))
    fig.add_vline(x=0.5, line_dash="dot", line_color="#aaa")
    fig.update_yaxes(autorange="reversed")
    return figure_json(fig, title=title, height=max(220, 60 + 36 * len(rows)),
                       margin={"l": 260, "r": 20, "t": 40, "b": 40}, xaxis={"range": [0, 1], "title": "probability"})


def slices_forest(names: list[str], slices: list[Any], *, title: str) -> dict[str, Any]:
    """One whiskered dot per (slice value, version), grouped by slice value."""
    return grouped_forest(names, [(f"{s.value} (n={s.n_votes})", s.board) for s in slices], title=title)


def criteria_forest(names: list[str], criteria: list[Any], *, title: str) -> dict[str, Any]:
    """One whiskered dot per (criterion, version), grouped by criterion: where versions differ shows at a glance."""
    return grouped_forest(names, [(f"{c.criterion} (n={c.n_votes})", c.board) for c in criteria], title=title)


def grouped_forest(names: list[str], groups: list[tuple[str, Board]], *, title: str) -> dict[str, Any]:
    """One whiskered dot per (group, version); a group without votes draws no dots."""
    fig = go.Figure()
    bounds = [x for _, b in groups if not b.empty for x in (*b.low, *b.high) if _ok(x)]
    for i, name in enumerate(names):
        xs, ys, hi, lo = [], [], [], []
        for label, b in groups:
            if b.empty or not _ok(b.ratings[i]):
                continue
            xs.append(b.ratings[i])
            ys.append(label)
            hi.append(b.high[i] - b.ratings[i])
            lo.append(b.ratings[i] - b.low[i])
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="markers", name=name, orientation="h",
            marker={"size": 9, "color": PALETTE[i % len(PALETTE)]},
            error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "thickness": 1.5, "width": 4},
        ))
    fig.add_vline(x=1000, line_dash="dot", line_color="#aaa")
    fig.update_layout(scattermode="group", scattergap=0.35)
    fig.update_yaxes(autorange="reversed")
    return figure_json(fig, title=title, height=max(280, 90 + 22 * len(groups) * max(1, len(names))),
                       margin={"l": 180, "r": 20, "t": 40, "b": 40},
                       xaxis={"title": "rating (Elo scale)",
                              **({"range": _padded(min(bounds), max(bounds))} if bounds else {})},
                       legend={"orientation": "h", "y": -0.15})


def _padded(lo: float, hi: float) -> list[float]:
    pad = max(5.0, 0.05 * (hi - lo))
    return [min(lo, 1000.0) - pad, max(hi, 1000.0) + pad]
