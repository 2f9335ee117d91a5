"""Plotly figures (JSON) for the metrics pages, built on evalhub.core.charts. Undefined numbers are left out of a
chart rather than drawn as 0."""

from __future__ import annotations

import math
from typing import Any

from evalhub.core import charts
from evalhub.metrics.selectors import AggregateTable, ComparisonTable


def _ok(*xs: float) -> bool:
    return all(x is not None and not math.isnan(x) for x in xs)


def _bars(labels: list[str], values: list[float], lows: list[float], highs: list[float], *, title: str, **layout: Any) -> dict[str, Any]:
    keep = [i for i in range(len(labels)) if _ok(values[i], lows[i], highs[i])]
    return charts.bar(
        [labels[i] for i in keep], [values[i] for i in keep], title=title,
        error=[(lows[i], highs[i]) for i in keep], **layout,
    )


def overview_figure(table: AggregateTable) -> dict[str, Any] | None:
    """Bars of every metric scored on a 0..1 scale (others, like length, would flatten them) with interval whiskers."""
    from evalhub.metrics.services import unit_scale

    unit = [r for r in table.overall() if unit_scale(r.metric)]
    if not unit:
        return None
    return _bars(
        [r.metric for r in unit], [r.estimate.value for r in unit], [r.estimate.low for r in unit],
        [r.estimate.high for r in unit], title="Mean per metric with 95 % bootstrap interval", yaxis={"range": [0, 1]},
    )


def distribution_figure(table: AggregateTable, metric: str) -> dict[str, Any] | None:
    values = table.per_output.get(metric, [])
    if not values:
        return None
    return charts.histogram(values, title=f"{metric}: distribution over outputs", nbins=20, height=240)


def slices_figure(table: AggregateTable, metric: str) -> dict[str, Any] | None:
    rows = table.slices_of(metric)
    if not rows:
        return None
    return _bars(
        [r.slice_value or "" for r in rows], [r.estimate.value for r in rows], [r.estimate.low for r in rows],
        [r.estimate.high for r in rows], title=f"{metric} by {table.slice_by} (95 % interval)", height=260,
    )


def comparison_figure(table: ComparisonTable) -> dict[str, Any] | None:
    """B − A per metric as a percentage of A's mean, with the paired-bootstrap interval scaled alike.

    Metrics live on different scales (ROUGE 0..1, BLEU and chrF 0..100, length in words), so raw differences would
    flatten the 0..1 metrics to nothing; relative change puts them side by side. Metrics whose mean A is 0 have no
    relative change and stay in the table only.
    """
    rows = [
        r for r in table.overall()
        if _ok(r.comparison.delta, r.comparison.low, r.comparison.high, r.comparison.mean_a) and r.comparison.mean_a
    ]
    if not rows:
        return None

    def pct(x: float, base: float) -> float:
        return 100.0 * x / abs(base)

    return _bars(
        [r.metric for r in rows],
        [pct(r.comparison.delta, r.comparison.mean_a) for r in rows],
        [pct(r.comparison.low, r.comparison.mean_a) for r in rows],
        [pct(r.comparison.high, r.comparison.mean_a) for r in rows],
        title="B − A in % of A's mean, with 95 % paired-bootstrap interval",
        yaxis={"ticksuffix": " %", "zeroline": True},
    )
