"""The comparison chart puts metrics of different scales side by side: each bar is B − A in % of A's mean."""

from __future__ import annotations

from typing import Any

from evalhub.metrics.aggregates import MetricComparison
from evalhub.metrics.charts import comparison_figure
from evalhub.metrics.selectors import ComparisonTable
from evalhub.stats import Comparison


def _row(metric: str, mean_a: float, mean_b: float, low: float, high: float) -> MetricComparison:
    c = Comparison(delta=mean_b - mean_a, low=low, high=high, p_value=0.01, n=20, n_dropped=0, mean_a=mean_a,
                   mean_b=mean_b, method="paired bootstrap")
    return MetricComparison(metric=metric, slice_value=None, comparison=c, n_unmatched=0)


def test_bars_are_relative_so_a_0_to_1_metric_is_as_visible_as_bleu() -> None:
    table = ComparisonTable(a=None, b=None, slice_by=None, slice_names=[], rows=[  # type: ignore[arg-type]
        _row("rougeL", 0.20, 0.25, 0.01, 0.09),   # +0.05 raw: invisible next to BLEU's +4, but +25 %
        _row("bleu", 4.0, 8.0, 1.0, 7.0),         # +100 %
        _row("empty", 0.0, 0.1, 0.0, 0.2),        # no relative change from 0: left to the table
    ])
    fig: dict[str, Any] = comparison_figure(table)
    bar = fig["data"][0]
    assert list(bar["x"]) == ["rougeL", "bleu"]
    assert [round(v, 6) for v in bar["y"]] == [25.0, 100.0]
    # The interval is scaled alike: rougeL [0.01, 0.09] of 0.20 -> [5 %, 45 %].
    assert round(bar["y"][0] - bar["error_y"]["arrayminus"][0], 6) == 5.0
    assert round(bar["y"][0] + bar["error_y"]["array"][0], 6) == 45.0
    assert "%" in fig["layout"]["title"]["text"]
