"""Which automated metric to trust: rank correlation of each metric with each rubric criterion of human ratings.

Contract with the reviews app
-----------------------------
`human_ratings_for_outputs(project)` is the only function the reviews app needs to fill in. It must return a pandas
DataFrame with exactly these columns, one row per individual rating (several raters of one output give several
rows; they are averaged here):

    output_id  int    generation.Output primary key, an output of `project`
    criterion  str    the rubric criterion's name as shown to people (e.g. "persuasiveness")
    value      float  the rating on the criterion's numeric scale; nan / missing rows are ignored

With no ratings yet it returns an empty frame with those columns, and the trust page says so.

The computation (`trust_table`) is pure pandas + `evalhub.stats.rank_correlation`, so it is tested on synthetic
ratings. Per (metric, criterion) it pairs each output's metric value with the mean rating of that output on the
criterion, and reports Kendall's tau-b and Spearman's rho with percentile-bootstrap 95 % intervals over outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from evalhub.stats import Estimate, rank_correlation

if TYPE_CHECKING:
    from evalhub.projects.models import Project

RATING_COLUMNS = ["output_id", "criterion", "value"]
SCORE_COLUMNS = ["output_id", "metric", "value"]
MIN_PAIRS = 3  # fewer paired outputs than this give no correlation worth showing


@dataclass(frozen=True)
class TrustCell:
    metric: str
    criterion: str
    kendall: Estimate
    spearman: Estimate

    @property
    def n(self) -> int:
        return self.kendall.n


def human_ratings_for_outputs(project: Project) -> pd.DataFrame:
    """Rubric ratings of `project`'s outputs as DataFrame(output_id, criterion, value), from the reviews app:
    one row per rating, an adjudicated value replacing the annotators' rows it settled, gold items left out."""
    from evalhub.reviews.selectors import ratings_frame

    return ratings_frame(project)[RATING_COLUMNS]


def metric_values_for_outputs(project: Project) -> pd.DataFrame:
    """Automated scores of `project`'s outputs as DataFrame(output_id, metric, value).

    An output scored by several metric runs keeps the value of the latest succeeded run for each metric.
    """
    from evalhub.generation.models import RunStatus
    from evalhub.metrics.models import MetricScore

    rows = (
        MetricScore.objects.filter(metric_run__project=project, metric_run__status=RunStatus.SUCCEEDED)
        .order_by("metric_run__created_at", "metric_run_id")
        .values_list("output_id", "metric", "value")
    )
    frame = pd.DataFrame(list(rows), columns=SCORE_COLUMNS)
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame.drop_duplicates(subset=["output_id", "metric"], keep="last")


def trust_table(
    scores: pd.DataFrame, ratings: pd.DataFrame, *, n_resamples: int = 2000, seed: int = 0
) -> list[TrustCell]:
    """Kendall tau-b and Spearman rho (bootstrap 95 % intervals) of every metric against every criterion.

    `scores`: DataFrame(output_id, metric, value); `ratings`: DataFrame(output_id, criterion, value), several rows
    per output allowed (averaged). Outputs missing either side are left out; pairs with fewer than MIN_PAIRS
    outputs are omitted.
    """
    for frame, columns, name in ((scores, SCORE_COLUMNS, "scores"), (ratings, RATING_COLUMNS, "ratings")):
        missing = set(columns) - set(frame.columns)
        if missing:
            raise ValueError(f"{name} lacks columns {sorted(missing)}")
    if scores.empty or ratings.empty:
        return []
    clean_scores = scores.dropna(subset=["value"])
    wide_scores = clean_scores.pivot_table(index="output_id", columns="metric", values="value", aggfunc="mean")
    clean_ratings = ratings.dropna(subset=["value"]).astype({"value": "float64"})
    wide_ratings = clean_ratings.pivot_table(index="output_id", columns="criterion", values="value", aggfunc="mean")
    # Metric and criterion names may coincide ("length"); keep them apart in the joined frame.
    joined = wide_scores.add_prefix("m:").join(wide_ratings.add_prefix("c:"), how="inner")
    cells: list[TrustCell] = []
    for metric in sorted(wide_scores.columns):
        for criterion in sorted(wide_ratings.columns):
            pair = joined[[f"m:{metric}", f"c:{criterion}"]].dropna()
            if len(pair) < MIN_PAIRS:
                continue
            x, y = pair.iloc[:, 0].to_numpy(np.float64), pair.iloc[:, 1].to_numpy(np.float64)
            cells.append(
                TrustCell(
                    metric=str(metric),
                    criterion=str(criterion),
                    kendall=rank_correlation(x, y, method="kendall", n_resamples=n_resamples, seed=seed),
                    spearman=rank_correlation(x, y, method="spearman", n_resamples=n_resamples, seed=seed),
                )
            )
    return cells


def project_trust(project: Project, *, n_resamples: int = 2000) -> tuple[list[TrustCell], int]:
    """(trust cells, number of rated outputs) for a project, from its stored scores and human ratings.

    Kendall's bootstrap costs about a second per (metric, criterion) pair at 500 outputs, so the table is cached
    under a fingerprint of its inputs: it is recomputed exactly when a score or a rating changed.
    """
    from django.core.cache import cache

    ratings = human_ratings_for_outputs(project)
    if ratings.empty:
        return [], 0
    scores = metric_values_for_outputs(project)
    digest = hashlib.sha256()
    for frame in (scores, ratings):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    key = f"metrics-trust:{project.pk}:{n_resamples}:{digest.hexdigest()}"
    cells = cache.get(key)
    if cells is None:
        cells = trust_table(scores, ratings, n_resamples=n_resamples)
        cache.set(key, cells, timeout=24 * 3600)
    return cells, int(ratings["output_id"].nunique())
