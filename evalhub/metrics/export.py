"""CSV and Parquet export of a metric run's per-output scores, built with pandas and written to a temporary file
that is streamed back and deleted when the response closes (memory stays flat however large the run)."""

from __future__ import annotations

import math
import tempfile
from typing import Literal

import pandas as pd
from django.http import FileResponse

from evalhub.generation.models import Output
from evalhub.metrics.models import MetricRun, MetricScore

ExportFormat = Literal["csv", "parquet"]
FORMATS: dict[str, str] = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def _attribute_text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def scores_frame(metric_run: MetricRun) -> pd.DataFrame:
    """One row per output: ids, the example's attributes (`attr.<name>`), text, token counts, one column per score.

    A score that is undefined for an output (no reference, failed generation) is empty, never 0.
    """
    gen = metric_run.generation_run
    outputs = list(
        Output.objects.filter(run=gen).order_by("example__index", "sample_index").values(
            "pk", "example_id", "example__index", "example__external_id", "example__attributes", "example__reference",
            "sample_index", "text", "prompt_tokens", "output_tokens", "latency_s", "finish_reason", "error", "flags",
        )
    )
    base = pd.DataFrame(
        {
            "output_id": pd.Series([o["pk"] for o in outputs], dtype="int64"),
            "example_id": pd.Series([o["example_id"] for o in outputs], dtype="int64"),
            "example_index": pd.Series([o["example__index"] for o in outputs], dtype="int64"),
            "external_id": pd.Series([o["example__external_id"] for o in outputs], dtype="object"),
            "sample_index": pd.Series([o["sample_index"] for o in outputs], dtype="int64"),
            "model_version": str(gen.model_version),
            "generation_run_id": gen.pk,
            "metric_run_id": metric_run.pk,
            "output_text": pd.Series([o["text"] for o in outputs], dtype="object"),
            "reference": pd.Series([o["example__reference"] for o in outputs], dtype="object"),
            "prompt_tokens": pd.Series([o["prompt_tokens"] for o in outputs], dtype="int64"),
            "output_tokens": pd.Series([o["output_tokens"] for o in outputs], dtype="int64"),
            "latency_s": pd.Series([o["latency_s"] for o in outputs], dtype="float64"),
            "finish_reason": pd.Series([o["finish_reason"] for o in outputs], dtype="object"),
            "error": pd.Series([o["error"] for o in outputs], dtype="object"),
            "flags": pd.Series([",".join(o["flags"] or []) for o in outputs], dtype="object"),
        }
    )
    attrs = pd.DataFrame([o["example__attributes"] or {} for o in outputs], index=base.index)
    for column in sorted(attrs.columns, key=str):
        # Attributes hold mixed JSON types; strings keep the file's column type stable across rows.
        base[f"attr.{column}"] = attrs[column].map(_attribute_text).astype("object")
    scores = pd.DataFrame(
        list(MetricScore.objects.filter(metric_run=metric_run).values_list("output_id", "metric", "value")),
        columns=["output_id", "metric", "value"],
    )
    if not scores.empty:
        scores["value"] = pd.to_numeric(scores["value"], errors="coerce").astype("float64")
        wide = scores.pivot_table(index="output_id", columns="metric", values="value", aggfunc="first", dropna=False)
        wide.columns = [f"score.{c}" for c in wide.columns]
        base = base.merge(wide, left_on="output_id", right_index=True, how="left")
    return base


def export_response(metric_run: MetricRun, fmt: str) -> FileResponse:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use csv or parquet")
    frame = scores_frame(metric_run)
    # delete=True: the file vanishes when FileResponse closes it after streaming.
    handle = tempfile.NamedTemporaryFile(prefix=f"metric-run-{metric_run.pk}-", suffix=f".{fmt}")  # noqa: SIM115
    if fmt == "csv":
        frame.to_csv(handle.name, index=False, encoding="utf-8")
    else:
        frame.to_parquet(handle.name, index=False, engine="pyarrow")
    handle.seek(0)
    return FileResponse(
        handle, as_attachment=True, filename=f"metric-run-{metric_run.pk}-scores.{fmt}", content_type=FORMATS[fmt]
    )
