"""Plotly figures as JSON for templates. Pages embed them with `json_script` (escaped) and draw with plotly.js."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go

LAYOUT: dict[str, Any] = {
    "margin": {"l": 50, "r": 20, "t": 40, "b": 50},
    "height": 300,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def figure_json(fig: go.Figure, **layout: Any) -> dict[str, Any]:
    fig.update_layout(**{**LAYOUT, **layout})
    return json.loads(fig.to_json())


def bar(x: list[Any], y: list[float], *, title: str = "", error: list[tuple[float, float]] | None = None, **layout: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if error is not None:
        kwargs["error_y"] = {
            "type": "data",
            "symmetric": False,
            "array": [hi - v for v, (_, hi) in zip(y, error)],
            "arrayminus": [v - lo for v, (lo, _) in zip(y, error)],
        }
    return figure_json(go.Figure(go.Bar(x=x, y=y, **kwargs)), title=title, **layout)


def histogram(values: list[float], *, title: str = "", nbins: int = 30, **layout: Any) -> dict[str, Any]:
    return figure_json(go.Figure(go.Histogram(x=values, nbinsx=nbins)), title=title, **layout)


def lines(series: dict[str, tuple[list[float], list[float]]], *, title: str = "", **layout: Any) -> dict[str, Any]:
    fig = go.Figure([go.Scatter(x=x, y=y, mode="lines+markers", name=name) for name, (x, y) in series.items()])
    return figure_json(fig, title=title, **layout)


def heatmap(z: list[list[float | None]], labels_x: list[str], labels_y: list[str], *, title: str = "", **layout: Any) -> dict[str, Any]:
    return figure_json(go.Figure(go.Heatmap(z=z, x=labels_x, y=labels_y, colorscale="Blues")), title=title, **layout)
