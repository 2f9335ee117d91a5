"""Metric-trust computation on synthetic human ratings (the reviews app will supply real ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from evalhub.metrics.trust import human_ratings_for_outputs, trust_table


def synthetic(n: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two raters per output. 'accuracy' follows rougeL closely; 'tone' is unrelated to every metric."""
    rng = np.random.default_rng(seed)
    rouge = rng.uniform(0, 1, n)
    length = rng.integers(5, 80, n).astype(float)
    scores = pd.DataFrame(
        [(i, "rougeL", rouge[i]) for i in range(n)] + [(i, "output_length", length[i]) for i in range(n)],
        columns=["output_id", "metric", "value"],
    )
    ratings = []
    for i in range(n):
        for _rater in range(2):
            ratings.append((i, "accuracy", float(np.clip(np.round(1 + 4 * rouge[i] + rng.normal(0, 0.4)), 1, 5))))
            ratings.append((i, "tone", float(rng.integers(1, 6))))
    return scores, pd.DataFrame(ratings, columns=["output_id", "criterion", "value"])


def test_correlations_equal_scipy_on_the_mean_rating_per_output() -> None:
    scores, ratings = synthetic()
    cells = {(c.metric, c.criterion): c for c in trust_table(scores, ratings, n_resamples=300)}
    assert set(cells) == {("rougeL", "accuracy"), ("rougeL", "tone"), ("output_length", "accuracy"), ("output_length", "tone")}
    mean_acc = ratings[ratings.criterion == "accuracy"].groupby("output_id")["value"].mean().sort_index()
    rouge = scores[scores.metric == "rougeL"].set_index("output_id")["value"].sort_index()
    cell = cells[("rougeL", "accuracy")]
    assert cell.kendall.value == pytest.approx(sps.kendalltau(rouge, mean_acc).statistic)
    assert cell.spearman.value == pytest.approx(sps.spearmanr(rouge, mean_acc).statistic)
    assert cell.n == 60
    assert cell.kendall.low > 0.5  # a metric that tracks the criterion is told apart ...
    tone = cells[("rougeL", "tone")]
    assert tone.kendall.low < 0 < tone.kendall.high  # ... from one that does not


def test_outputs_without_either_side_are_left_out() -> None:
    scores, ratings = synthetic(n=20)
    scores.loc[scores.output_id == 3, "value"] = np.nan
    ratings = ratings[ratings.output_id != 4]
    extra = pd.DataFrame([(999, "accuracy", 5.0)], columns=["output_id", "criterion", "value"])  # rated, never scored
    cells = trust_table(scores, pd.concat([ratings, extra]), n_resamples=100)
    cell = next(c for c in cells if c.metric == "rougeL" and c.criterion == "accuracy")
    assert cell.n == 18


def test_same_name_for_a_metric_and_a_criterion_does_not_collide() -> None:
    scores = pd.DataFrame([(i, "length", float(i)) for i in range(10)], columns=["output_id", "metric", "value"])
    ratings = pd.DataFrame([(i, "length", float(10 - i)) for i in range(10)], columns=["output_id", "criterion", "value"])
    [cell] = trust_table(scores, ratings, n_resamples=100)
    assert cell.kendall.value == pytest.approx(-1.0)


def test_no_ratings_yet_gives_an_empty_table(world) -> None:  # type: ignore[no-untyped-def]
    ratings = human_ratings_for_outputs(world.project)
    assert list(ratings.columns) == ["output_id", "criterion", "value"] and ratings.empty
    assert trust_table(synthetic()[0], ratings) == []


def test_wrong_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="criterion"):
        trust_table(synthetic()[0], pd.DataFrame({"output_id": [1], "value": [1.0]}))
